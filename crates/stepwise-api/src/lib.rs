//! Stepwise's local HTTP API: the engine on 127.0.0.1, for editors and scripts. `stepwise
//! serve` and the desktop app serve it over the same engine handle they run with, so a run
//! started over HTTP is a run like any other (in the window, in `stepwise runs`, at once).
//!
//! Every request is checked before an endpoint sees it ([`guard`]): the user's token as a
//! bearer token (kept in a file only the user can read, [`token`]), a loopback `Host`, and no
//! browser `Origin`; no CORS header is ever sent. The endpoints ([`routes`]) are documented
//! by an OpenAPI 3.1 document made from the same handlers and served at `/openapi.json`.

mod error;
mod guard;
mod routes;
mod server;
mod token;
mod views;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use stepwise_engine::Engine;
use tokio::sync::oneshot;

pub use routes::document;
pub use token::{ENV_TOKEN_FILE, TokenError, load_or_create as load_or_create_token, token_path};

/// The largest request body: an inline workflow or an edited file fits many times over.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// How many live streams (server-sent events) may be open at once.
const MAX_STREAMS: usize = 64;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The port on 127.0.0.1 (0: any free one).
    pub port: u16,
    /// Where a relative workspace or workflow path in a request is taken from, and the
    /// workspace of a request that names none.
    pub workspace: PathBuf,
    /// The token file (see [`token_path`]).
    pub token_file: PathBuf,
}

/// Why the API cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(
        "cannot listen on 127.0.0.1:{port}: {source} (is another `stepwise serve` or the app serving it? give another port with --port, or 0 for any)"
    )]
    Bind { port: u16, source: std::io::Error },
}

/// The API being served. Dropping it stops the server too.
pub struct Serving {
    addr: SocketAddr,
    token_file: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Says where it listens for clients that did not start it; removed when it stops.
    address_file: Option<token::AddressFile>,
}

impl Serving {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The file a client reads the token from.
    pub fn token_file(&self) -> &std::path::Path {
        &self.token_file
    }

    /// Stops listening and cuts every connection, live streams included.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(file) = self.address_file.take() {
            file.remove();
        }
    }

    /// Waits until the server stops (it does only when stopped, or if its task died).
    pub async fn wait(&mut self) {
        if let Some(task) = self.task.as_mut() {
            let _ = task.await;
            self.task = None;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(file) = self.address_file.take() {
            file.remove();
        }
    }
}

/// Starts serving the API over `engine` on 127.0.0.1.
pub async fn serve(engine: Engine, options: ServeOptions) -> Result<Serving, ServeError> {
    let token_file = std::path::absolute(&options.token_file).unwrap_or(options.token_file);
    let making = token_file.clone();
    let token = tokio::task::spawn_blocking(move || token::load_or_create(&making))
        .await
        .map_err(|e| {
            ServeError::Token(TokenError::Io {
                path: token_file.clone(),
                source: std::io::Error::other(e),
            })
        })??;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, options.port))
        .await
        .map_err(|source| ServeError::Bind {
            port: options.port,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        port: options.port,
        source,
    })?;
    let db_path = std::path::absolute(&engine.config().db_path)
        .unwrap_or_else(|_| engine.config().db_path.clone());
    let db_folder = db_path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let state = routes::ApiState {
        engine,
        workspace: options.workspace,
        inline_dir: db_folder.join("inline-workflows"),
        streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
        document: Arc::new(OnceLock::new()),
    };
    let (router, _) = routes::router(state);
    let app = router.layer(DefaultBodyLimit::max(MAX_BODY_BYTES)).layer(
        axum::middleware::from_fn_with_state(guard::Gate::new(&token, addr.port()), guard::check),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::accept(listener, app, stopped));
    let address_file = token::AddressFile::write(&token_file, &format!("http://{addr}"));
    tracing::info!(%addr, "serving the local API");
    Ok(Serving {
        addr,
        token_file,
        stop: Some(stop),
        task: Some(task),
        address_file,
    })
}
