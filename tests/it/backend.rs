//! Which database the suite runs against: a SQLite file per test (the default), or, with
//! `STEPWISE_TEST_BACKEND=postgres`, a new database per test on the PostgreSQL server
//! `STEPWISE_TEST_PG` names (an admin URL; `.ci/run` starts a private cluster and sets it).
//! Tests that cannot apply to PostgreSQL are listed, each with its reason, in
//! `tests/postgres-skips.txt`.

use std::sync::atomic::{AtomicU32, Ordering};

/// Whether the suite runs on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("STEPWISE_TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

/// A new empty database on the test server, its URL; `None` on SQLite.
pub fn new_database() -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let admin = std::env::var("STEPWISE_TEST_PG").expect(
        "STEPWISE_TEST_BACKEND=postgres needs STEPWISE_TEST_PG, the test server's admin URL",
    );
    Some(new_database_on(&admin))
}

/// The test server's admin URL, whichever backend the suite runs on: `None` where there is
/// no server (never in CI, where a test needing it would otherwise pass untested).
pub fn admin_url() -> Option<String> {
    match std::env::var("STEPWISE_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "STEPWISE_TEST_PG is not set: in CI the PostgreSQL tests must run"
            );
            eprintln!("STEPWISE_TEST_PG is not set: this PostgreSQL test does nothing here");
            None
        }
    }
}

/// A new empty database on the server `admin` names, its URL.
pub fn new_database_on(admin: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "stepwise_it_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut client =
        postgres::Client::connect(admin, postgres::NoTls).expect("connect to the test server");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create the test's database");
    with_database(admin, &name)
}

/// `url` naming database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    let query_start = url[path_start..]
        .find('?')
        .map_or(url.len(), |i| path_start + i);
    format!("{}/{name}{}", &url[..path_start], &url[query_start..])
}

/// A test's database: a SQLite file, or its own PostgreSQL database (see the module's
/// documentation), read through the store's API so that a check reads the same on both.
pub struct TestDb {
    /// The SQLite file (never made on PostgreSQL).
    pub path: std::path::PathBuf,
    /// The PostgreSQL database's URL.
    pub url: Option<String>,
    /// A connection kept for the many looks a test makes while a run goes on (PostgreSQL
    /// only: a SQLite file is opened at each look, since it may not exist yet).
    kept: std::sync::Mutex<Option<stepwise_store::Store>>,
}

impl TestDb {
    /// The database for a test whose SQLite file would be at `path`.
    pub fn new(path: std::path::PathBuf) -> TestDb {
        TestDb {
            path,
            url: new_database(),
            kept: std::sync::Mutex::new(None),
        }
    }

    /// The PostgreSQL database `url` names, whichever backend the suite runs on: for a test
    /// with a server of its own.
    pub fn on(path: std::path::PathBuf, url: String) -> TestDb {
        TestDb {
            path,
            url: Some(url),
            kept: std::sync::Mutex::new(None),
        }
    }

    /// A SQLite file whichever backend the suite runs on: for a test that moves runs between
    /// the two.
    pub fn sqlite(path: std::path::PathBuf) -> TestDb {
        TestDb {
            path,
            url: None,
            kept: std::sync::Mutex::new(None),
        }
    }

    /// What `STEPWISE_DB` names.
    pub fn name(&self) -> std::ffi::OsString {
        match &self.url {
            Some(url) => url.into(),
            None => self.path.clone().into_os_string(),
        }
    }

    /// A new connection through the store's API.
    pub fn open(&self) -> stepwise_store::Store {
        match &self.url {
            Some(url) => stepwise_store::Store::open_postgres(
                &stepwise_store::PgTarget::parse(url, None).expect("the test database's URL"),
                stepwise_store::Durability::Normal,
            )
            .expect("open the test's PostgreSQL database"),
            None => stepwise_store::Store::open_reader(&self.path).expect("open the database"),
        }
    }

    /// A new connection that may write (what a test plants, as a crashed process left it).
    pub fn open_to_write(&self) -> stepwise_store::Store {
        match &self.url {
            Some(_) => self.open(),
            None => stepwise_store::Store::open(&self.path, stepwise_store::Durability::Normal)
                .expect("open the database"),
        }
    }

    /// Reads with a connection: the kept one on PostgreSQL; `None` while there is no
    /// database yet.
    pub fn with<T>(&self, read: impl FnOnce(&stepwise_store::Store) -> T) -> Option<T> {
        if self.url.is_none() {
            let store = stepwise_store::Store::open_reader(&self.path).ok()?;
            return Some(read(&store));
        }
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let store = kept.get_or_insert_with(|| self.open());
        Some(read(store))
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Vec<stepwise_store::RunRow> {
        let mut runs = self
            .with(|store| store.list_runs(usize::MAX).unwrap_or_default())
            .unwrap_or_default();
        runs.reverse();
        runs
    }

    /// How many events every run holds together (0 without a database).
    pub fn event_count(&self) -> u64 {
        self.runs().iter().map(|run| run.last_seq.get()).sum()
    }

    /// The oldest run's id, if there is a run.
    pub fn first_run_id(&self) -> Option<String> {
        self.runs().first().map(|run| run.run_id.to_string())
    }

    /// Every event of every run (oldest run first, in seq order), with its run.
    pub fn events(&self) -> Vec<(String, stepwise_store::StoredEvent)> {
        self.with(|store| {
            let mut runs = store.list_runs(usize::MAX).unwrap_or_default();
            runs.reverse();
            runs.iter()
                .flat_map(|run| {
                    store
                        .load_events(&run.run_id, stepwise_core::ids::EventSeq::ZERO)
                        .expect("read a run's events")
                        .into_iter()
                        .map(|event| (run.run_id.to_string(), event))
                })
                .collect()
        })
        .unwrap_or_default()
    }
}

impl TestDb {
    /// Every text the database keeps of its runs: each event's payload as stored, and each
    /// blob's content. A secret must appear nowhere in it.
    pub fn dump(&self) -> String {
        match &self.url {
            Some(url) => {
                let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
                client
                    .query(
                        "SELECT payload FROM events
                         UNION ALL SELECT encode(content, 'escape') FROM blobs
                         UNION ALL SELECT body || COALESCE(outcome, '') FROM commands
                         UNION ALL SELECT payload FROM signals",
                        &[],
                    )
                    .expect("read every payload")
                    .iter()
                    .map(|row| row.get::<_, String>(0))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            None => {
                let Ok(db) = rusqlite::Connection::open_with_flags(
                    &self.path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                ) else {
                    return String::new();
                };
                let mut rows = db
                    .prepare(
                        "SELECT payload FROM events
                         UNION ALL SELECT CAST(content AS TEXT) FROM blobs
                         UNION ALL SELECT body || COALESCE(outcome, '') FROM commands
                         UNION ALL SELECT payload FROM signals",
                    )
                    .expect("query");
                rows.query_map([], |r| r.get::<_, String>(0))
                    .expect("rows")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("text")
                    .join("\n")
            }
        }
    }

    /// Every command sent to every run, oldest run first.
    pub fn commands(&self) -> Vec<stepwise_store::CommandRow> {
        let runs = self.runs();
        self.with(|store| {
            runs.iter()
                .flat_map(|run| store.commands(&run.run_id).expect("read the inbox"))
                .collect()
        })
        .unwrap_or_default()
    }
}

/// What a run's holder says of itself: `pid N` with lock files, `pid N on HOST` on the
/// PostgreSQL server (runs there are held from any machine).
pub fn holder_text(pid: impl std::fmt::Display) -> String {
    if on_postgres() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("pid {pid} on {}", host.trim())
    } else {
        format!("pid {pid}")
    }
}
