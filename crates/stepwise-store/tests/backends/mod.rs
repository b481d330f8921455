//! The backends a contract test runs against: a SQLite file always, and a new PostgreSQL
//! database of its own on the server `STEPWISE_TEST_PG` names (an admin URL; `.ci/run` starts
//! a private cluster and sets it). In CI the variable must be set, so that a missing server
//! fails the suite rather than leaving PostgreSQL untested.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use stepwise_store::{Durability, Store};

/// An open store, and what keeps its database alive.
pub struct Backend {
    pub name: &'static str,
    pub store: Store,
    /// Opens another connection to the same database.
    pub reopen: Box<dyn Fn() -> Store + Send + Sync>,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database's URL.
    pub url: Option<String>,
}

/// One of each backend available, each on a new, empty database.
pub fn all() -> Vec<Backend> {
    let mut backends = vec![sqlite()];
    if let Some(postgres) = postgres() {
        backends.push(postgres);
    }
    backends
}

pub fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stepwise.db");
    let store = Store::open(&path, Durability::Normal).unwrap();
    Backend {
        name: "sqlite",
        store,
        reopen: Box::new(move || Store::open(&path, Durability::Normal).unwrap()),
        _dir: Some(dir),
        url: None,
    }
}

/// The admin URL of the test server, if there is one (see the module's documentation).
pub fn admin_url() -> Option<String> {
    match std::env::var("STEPWISE_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "STEPWISE_TEST_PG is not set: in CI the PostgreSQL tests must run (.ci/run starts the server)"
            );
            eprintln!("STEPWISE_TEST_PG is not set: PostgreSQL is not tested here");
            None
        }
    }
}

/// A new empty database on the test server: its URL.
pub fn new_database() -> Option<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = admin_url()?;
    let name = format!(
        "stepwise_store_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    Some(with_database(&admin, &name))
}

/// `url` naming database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> String {
    let after_scheme = url.find("://").unwrap() + 3;
    let path_start = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    let query_start = url[path_start..]
        .find('?')
        .map_or(url.len(), |i| path_start + i);
    format!("{}/{name}{}", &url[..path_start], &url[query_start..])
}

#[cfg(feature = "postgres")]
pub fn postgres() -> Option<Backend> {
    let url = new_database()?;
    let target = stepwise_store::PgTarget::parse(&url, None).unwrap();
    let store = Store::open_postgres(&target, Durability::Normal).unwrap();
    Some(Backend {
        name: "postgres",
        store,
        reopen: Box::new(move || Store::open_postgres(&target, Durability::Normal).unwrap()),
        _dir: None,
        url: Some(url),
    })
}

#[cfg(not(feature = "postgres"))]
pub fn postgres() -> Option<Backend> {
    None
}

/// A client of the test server's admin, on database `url`: for what the store's API cannot do
/// (tampering with tables, ending connections).
pub fn raw(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}
