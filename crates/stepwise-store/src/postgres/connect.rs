//! Which PostgreSQL database, as whom, and connecting to it.
//!
//! A target is a `postgres://` URL. Its password, where the URL holds none, comes from the
//! environment variable the settings name (`password_env`), then `PGPASSWORD`, then the
//! password file (`PGPASSFILE` or `~/.pgpass`, as libpq reads it). It is never shown: the
//! target's [`PgTarget::label`] is the URL without it, and so are its errors.

use std::time::Duration;

use postgres::config::Host;
use postgres::{Client, Config, NoTls};

use super::password;
use crate::{Durability, StoreError};

/// How long connecting may take before it is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time after which the connection is probed, so a server that vanished is noticed.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Then a probe this often, given up after this many: a vanished server is noticed within
/// about a minute.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 4;
/// A transaction left open longer than this (its client stalled or cut off) is ended by the
/// server, so that the write counter it holds does not stop every other writer.
const IDLE_IN_TRANSACTION: &str = "30s";
/// Where Debian's server listens when a URL names no host.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// A PostgreSQL database to keep the event log in.
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    label: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("database", &self.label)
            .finish_non_exhaustive()
    }
}

/// What a connection check found, changing nothing on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgProbe {
    /// The server's version (`SHOW server_version`).
    pub server_version: String,
    /// The version of stepwise's schema there; `None` before stepwise first used the database.
    pub schema_version: Option<usize>,
}

impl PgTarget {
    /// Whether the URL itself holds a password: a form refuses it, since the password belongs
    /// in an environment variable (`password_env`, `PGPASSWORD`) or the password file, never in
    /// a settings file or a log.
    pub fn url_has_password(url: &str) -> bool {
        url.parse::<Config>()
            .is_ok_and(|config| config.get_password().is_some())
    }

    /// Connects once (on a thread of its own: the blocking client may not run inside an async
    /// runtime) and says what it found; creates nothing, unlike opening a store.
    pub fn probe(&self) -> Result<PgProbe, StoreError> {
        let target = self.clone();
        let gone = |reason: String| StoreError::Unreachable {
            database: self.label.clone(),
            reason,
        };
        std::thread::Builder::new()
            .name("stepwise-pg-probe".to_owned())
            .spawn(move || target.probe_here())
            .map_err(|error| gone(format!("no thread to connect on: {error}")))?
            .join()
            .map_err(|_| gone("the connection check stopped".to_owned()))?
    }

    fn probe_here(&self) -> Result<PgProbe, StoreError> {
        let mut client = self.connect(Durability::Normal)?;
        let at =
            |error: postgres::Error| StoreError::from(error).at(std::path::Path::new(&self.label));
        let server_version: String = client
            .query_one("SHOW server_version", &[])
            .map_err(at)?
            .get(0);
        let made: bool = client
            .query_one("SELECT to_regclass('stepwise_schema') IS NOT NULL", &[])
            .map_err(at)?
            .get(0);
        let schema_version = if made {
            client
                .query_opt("SELECT version FROM stepwise_schema", &[])
                .map_err(at)?
                .map(|row| usize::try_from(row.get::<_, i32>(0)).unwrap_or(0))
        } else {
            None
        };
        Ok(PgProbe {
            server_version,
            schema_version,
        })
    }

    /// Whether `text` is a PostgreSQL URL (rather than a path to a SQLite file).
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// The database `url` names, its password found as the module says; `password_env` is the
    /// settings' name of the variable holding it, if any.
    pub fn parse(url: &str, password_env: Option<&str>) -> Result<PgTarget, StoreError> {
        PgTarget::parse_in(url, password_env, &|name| std::env::var(name).ok())
    }

    /// [`PgTarget::parse`] in an environment that `env` reads.
    fn parse_in(
        url: &str,
        password_env: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PgTarget, StoreError> {
        // The URL itself is never repeated: what a parser takes for its password may not be
        // what the user meant (an unencoded `@`, `/` or `?` in it).
        let bad = |reason: String| StoreError::BadUrl {
            url: url.split("://").next().unwrap_or("postgres").to_owned() + "://…",
            reason,
        };
        if !PgTarget::is_url(url) {
            return Err(bad("it must start with postgres:// or postgresql://".into()));
        }
        let mut config: Config = url.parse().map_err(|_: postgres::Error| {
            bad("it is not a PostgreSQL connection URL (postgres://user@host:port/database; write an @, : or / in the user name or password as %40, %3A or %2F)".into())
        })?;
        let host_in_userinfo = config.get_hosts().iter().any(|host| match host {
            Host::Tcp(name) => name.contains('@'),
            Host::Unix(_) => false,
        });
        if host_in_userinfo {
            return Err(bad(
                "its host name holds an @: write an @ in the password as %40".into(),
            ));
        }
        if config.get_user().is_none() {
            let user = env("USER").or_else(|| env("LOGNAME")).ok_or_else(|| {
                bad("it names no user, and neither USER nor LOGNAME is set".into())
            })?;
            config.user(&user);
        }
        if config.get_hosts().is_empty() {
            if std::path::Path::new(DEFAULT_SOCKET_DIR).is_dir() {
                config.host_path(DEFAULT_SOCKET_DIR);
            } else {
                config.host("localhost");
            }
        }
        if config.get_password().is_none()
            && let Some(found) = find_password(&config, password_env, env).map_err(bad)?
        {
            config.password(found);
        }
        config
            .application_name("stepwise")
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
        let label = label(&config);
        Ok(PgTarget { config, label })
    }

    /// The URL without its password: how the database is named wherever it is shown.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A new connection, configured for `durability`.
    pub(crate) fn connect(&self, durability: Durability) -> Result<Client, StoreError> {
        let unreachable = |error: postgres::Error| StoreError::Unreachable {
            database: self.label.clone(),
            reason: match error.as_db_error() {
                Some(db) => db.message().to_owned(),
                None => error.to_string(),
            },
        };
        let mut client = self.config.connect(NoTls).map_err(unreachable)?;
        // `off`: a commit returns before the server has flushed it; a crash of the server (not
        // of stepwise) may lose the last commits, as SQLite's NORMAL on power loss.
        let synchronous = match durability {
            Durability::Full => "on",
            Durability::Normal => "off",
        };
        client
            .batch_execute(&format!(
                "SET synchronous_commit = {synchronous}; \
                 SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'"
            ))
            .map_err(unreachable)?;
        Ok(client)
    }
}

/// The password for `config`, from the settings' variable, `PGPASSWORD` or the password file.
fn find_password(
    config: &Config,
    password_env: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    if let Some(name) = password_env.filter(|name| !name.is_empty()) {
        return match env(name) {
            Some(value) => Ok(Some(value)),
            None => Err(format!(
                "the settings' password_env names `{name}`, which is not set in this environment"
            )),
        };
    }
    if let Some(value) = env("PGPASSWORD") {
        return Ok(Some(value));
    }
    let Some(file) = password::file(env) else {
        return Ok(None);
    };
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        // libpq matches a socket directory as `localhost`.
        Some(Host::Unix(_)) | None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or_default();
    let dbname = config.get_dbname().unwrap_or(user);
    Ok(password::lookup(&file, &host, port, dbname, user))
}

/// `postgres://user@host:port/db`: the target without its password.
fn label(config: &Config) -> String {
    let user = config.get_user().unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config.get_dbname().unwrap_or(user);
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) => format!("postgres://{user}@{host}:{port}/{dbname}"),
        Some(Host::Unix(dir)) => {
            format!(
                "postgres://{user}@/{dbname}?host={}&port={port}",
                dir.display()
            )
        }
        None => format!("postgres://{user}@/{dbname}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        let target = PgTarget::parse("postgres://ann:s3cret@db.example/team", None).unwrap();
        assert_eq!(target.label(), "postgres://ann@db.example:5432/team");
        assert!(!format!("{target:?}").contains("s3cret"));
        for url in [
            "postgres://ann:s3cret@db.example:notaport/x",
            "postgres://ann:s3c@ret@db.example/x",
            "postgres://ann:s3cret@db.example/x?password=s3cret&nonsense=1",
        ] {
            let error = PgTarget::parse(url, None).unwrap_err().to_string();
            assert!(
                !error.contains("s3c") && !error.contains("ret@"),
                "{url}: {error}"
            );
            assert!(error.contains("cannot be used"), "{error}");
        }
    }

    #[test]
    fn only_postgres_urls_are_targets() {
        let error = PgTarget::parse("mysql://a@b/c", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("must start with postgres://"), "{error}");
    }

    /// The password role of the test server (`scripts/pg-cluster.sh`), if there is one.
    fn password_role() -> Option<(String, String)> {
        Some((
            std::env::var("STEPWISE_TEST_PG_PW_URL").ok()?,
            std::env::var("STEPWISE_TEST_PG_PASSWORD").ok()?,
        ))
    }

    fn connects(url: &str, password_env: Option<&str>, env: &[(&str, &str)]) -> Result<(), String> {
        let lookup = |name: &str| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        let target = PgTarget::parse_in(url, password_env, &lookup).map_err(|e| e.to_string())?;
        target
            .connect(Durability::Normal)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_password_comes_from_the_settings_variable_pgpassword_or_the_password_file() {
        let Some((url, password)) = password_role() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "STEPWISE_TEST_PG_PW_URL must be set in CI"
            );
            return;
        };
        let home = tempfile::tempdir().unwrap();
        let home_path = home.path().to_str().unwrap();
        // None: the server refuses, and the message never holds a password.
        let refused = connects(&url, None, &[("HOME", home_path)]).unwrap_err();
        assert!(refused.contains("could not be reached"), "{refused}");
        let wrong = connects(&url, None, &[("PGPASSWORD", "wrong-guess")]).unwrap_err();
        assert!(
            wrong.contains("password authentication failed") && !wrong.contains("wrong-guess"),
            "{wrong}"
        );
        connects(
            &url,
            Some("TEAM_DB_PASSWORD"),
            &[("TEAM_DB_PASSWORD", &password), ("PGPASSWORD", "wrong")],
        )
        .unwrap();
        connects(&url, None, &[("PGPASSWORD", &password)]).unwrap();
        let pgpass = home.path().join(".pgpass");
        let port = url
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        std::fs::write(
            &pgpass,
            format!("127.0.0.1:{port}:postgres:stepwise_pw:{password}\n"),
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        connects(&url, None, &[("HOME", home_path)]).unwrap();
        // The password in the URL itself is used too, and never shown.
        let inline = url.replace("stepwise_pw@", &format!("stepwise_pw:{password}@"));
        connects(&inline, None, &[]).unwrap();
        let target = PgTarget::parse_in(&inline, None, &|_| None).unwrap();
        assert!(!target.label().contains(&password));
    }

    #[test]
    fn a_missing_password_variable_is_named() {
        let error = PgTarget::parse(
            "postgres://ann@db.example/team",
            Some("STEPWISE_TEST_SURELY_UNSET_VARIABLE"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("password_env names `STEPWISE_TEST_SURELY_UNSET_VARIABLE`"),
            "{error}"
        );
    }
}
