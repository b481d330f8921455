//! Accepting connections, bounded before any request is read: at most `MAX_CONNECTIONS` at
//! once (more wait in the kernel's backlog), each closed if its request headers do not arrive
//! within `HEADER_TIMEOUT`, so that no local process can wear the server (and the app that
//! embeds it) down before the token is even looked at. Stopping cuts every connection, live
//! streams included.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};

/// Connections open at once.
const MAX_CONNECTIONS: usize = 128;

/// How long a client may take to send a request's headers (an idle kept-alive connection
/// included).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts until `stop` fires (or its sender goes), then cuts every connection.
pub(crate) async fn accept(listener: TcpListener, app: Router, mut stop: oneshot::Receiver<()>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (cut, cut_seen) = watch::channel(false);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, say: wait a moment rather than spin.
                    tracing::warn!("the local API could not accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let mut cut_seen = cut_seen.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                _ = connection => {}
                _ = cut_seen.wait_for(|cut| *cut) => {}
            }
        });
    }
    let _ = cut.send(true);
}
