//! The database connection as a person sets it in the app's Settings view: a connection is
//! checked before it is kept, and kept as the `database:` section of the user's settings file,
//! written without touching anything else in the file (comments included). The password is
//! never taken here: it stays in the environment variable the section names (`password_env`),
//! `PGPASSWORD` or `~/.pgpass`, so it reaches neither the file nor a log.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

use serde::Serialize;

use crate::config::SharedDatabase;
use crate::error::EngineError;

/// What checking a connection found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseCheck {
    /// The database, as it is shown (never with a password).
    pub database: String,
    /// The server's version.
    pub server_version: String,
    /// The version of stepwise's schema there; `None` before stepwise first used it.
    pub schema_version: Option<usize>,
}

/// The most a settings file may be for it to be rewritten (real ones are a few KiB).
const MAX_SETTINGS_BYTES: u64 = 1024 * 1024;

fn refused(message: impl Into<String>) -> EngineError {
    EngineError::Settings {
        message: message.into(),
    }
}

/// Refuses a connection that cannot be kept: not a `postgres://` URL, a password in the URL,
/// characters no URL holds, or a `password_env` that is not a variable's name.
pub fn check_form(connection: &SharedDatabase) -> Result<(), EngineError> {
    let url = connection.url.trim();
    if !SharedDatabase::is_url(url) {
        return Err(refused(
            "the database URL must start with postgres:// or postgresql://",
        ));
    }
    if url.len() > 2048 || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(refused(
            "the database URL may not hold spaces or control characters, nor be longer than 2 KiB",
        ));
    }
    if url_has_password(url) {
        return Err(refused(
            "the database URL holds a password: leave it out, and put it in an environment variable named under \"password variable\", in PGPASSWORD, or in ~/.pgpass",
        ));
    }
    // A URL the PostgreSQL client cannot use is refused now, in its words (which never repeat
    // the URL), not at the next start.
    #[cfg(feature = "postgres")]
    stepwise_store::PgTarget::parse(url, None)?;
    if let Some(name) = &connection.password_env {
        let mut chars = name.chars();
        let named = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.len() <= 128;
        if !named {
            return Err(refused(format!(
                "`{}` is not an environment variable's name (letters, digits and _, not starting with a digit)",
                name.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// The connection the user's settings file at `path` keeps (its `database:` section), if any;
/// its URL as it is shown (without a user's password, were one written there).
pub fn saved_connection(path: &Path) -> Result<Option<SharedDatabase>, EngineError> {
    let saved = crate::service_settings::database_settings(path, false)?;
    Ok(saved.and_then(|section| {
        section.url.map(|url| SharedDatabase {
            url: if url_has_password(&url) {
                "postgres://… (the URL in the settings file holds a password: not shown)".to_owned()
            } else {
                url
            },
            password_env: section.password_env,
        })
    }))
}

/// Connects once to the database `connection` names and says what is there; changes nothing.
/// Blocks for up to the connection timeout: call it off async workers.
pub fn check_connection(connection: &SharedDatabase) -> Result<DatabaseCheck, EngineError> {
    check_form(connection)?;
    #[cfg(feature = "postgres")]
    {
        let target = stepwise_store::PgTarget::parse(
            connection.url.trim(),
            connection.password_env.as_deref(),
        )?;
        let probe = target.probe()?;
        Ok(DatabaseCheck {
            database: target.label().to_owned(),
            server_version: probe.server_version,
            schema_version: probe.schema_version,
        })
    }
    #[cfg(not(feature = "postgres"))]
    Err(refused("this stepwise was built without PostgreSQL"))
}

/// Writes `connection` as the `database:` section of the user's settings file at `path`
/// (`None` removes the section: runs go back to the SQLite file), leaving every other line as
/// it was. A missing file is made (0600, in a 0700 directory); the file is replaced whole, by a
/// rename, so a reader never sees half of it. A settings file that is a link is written where
/// it points.
pub fn save_connection(
    path: &Path,
    connection: Option<&SharedDatabase>,
) -> Result<(), EngineError> {
    if let Some(connection) = connection {
        check_form(connection)?;
    }
    let io = |source: std::io::Error| EngineError::Io {
        path: path.to_path_buf(),
        source,
    };
    let path = match std::fs::canonicalize(path) {
        Ok(target) => target,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(error) => return Err(io(error)),
    };
    let text = match std::fs::metadata(&path) {
        Ok(meta) if meta.len() > MAX_SETTINGS_BYTES => {
            return Err(refused(format!(
                "settings file {} is larger than 1 MiB; edit its database: section by hand",
                path.display()
            )));
        }
        // Not a FIFO or a device, which would never end (or never begin).
        Ok(meta) if !meta.is_file() => {
            return Err(refused(format!(
                "settings file {} is not a plain file; edit its database: section by hand",
                path.display()
            )));
        }
        Ok(_) => std::fs::read_to_string(&path).map_err(io)?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(io(error)),
    };
    let section = connection.map(database_section);
    let updated = with_database_section(&text, section.as_deref());
    let dir = path
        .parent()
        .ok_or_else(|| refused(format!("settings file {} has no folder", path.display())))?;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let mut file = tempfile::Builder::new()
        .prefix(".settings-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io)?;
    file.write_all(updated.as_bytes()).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    // The file as it would be is read back as stepwise reads settings: it must load, and say
    // exactly what the form said (a section written in a form this edit does not follow, as
    // JSON or a quoted key, would otherwise end up twice or broken). Nothing is written if not.
    let reads = crate::service_settings::database_settings(file.path(), true);
    let says = reads.map(|section| section.and_then(|s| s.url.map(|url| (url, s.password_env))));
    let meant = connection.map(|c| (c.url.trim().to_owned(), c.password_env.clone()));
    match says {
        Ok(says) if says == meant => {}
        Ok(_) => {
            return Err(refused(format!(
                "the database: section of settings file {} is written in a form this view does not edit; edit it by hand",
                path.display()
            )));
        }
        Err(error) => {
            return Err(refused(format!(
                "settings file {} would not load after the change ({error}); edit it by hand",
                path.display()
            )));
        }
    }
    file.persist(&path).map_err(|error| io(error.error))?;
    Ok(())
}

/// Whether a URL holds a password: a `:` in what comes before its host's `@` (whether or not
/// the rest of it parses), or a password as the PostgreSQL client reads it.
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    #[cfg(feature = "postgres")]
    let parsed = stepwise_store::PgTarget::url_has_password(url);
    #[cfg(not(feature = "postgres"))]
    let parsed = reqwest::Url::parse(url).is_ok_and(|parsed| parsed.password().is_some());
    in_userinfo || parsed
}

/// The section as written: each value a double-quoted string (JSON's quoting is YAML's).
fn database_section(connection: &SharedDatabase) -> String {
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    let mut section = format!("database:\n  url: {}\n", quoted(connection.url.trim()));
    if let Some(name) = &connection.password_env {
        section.push_str(&format!("  password_env: {}\n", quoted(name)));
    }
    section
}

/// `text` with its top-level `database:` section (the line and the indented, blank or comment
/// lines under it) replaced by `section`, in place, or `section` added at the end; `None`
/// removes it.
pub(crate) fn with_database_section(text: &str, section: Option<&str>) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let starts = |line: &str| {
        line.strip_prefix("database")
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    };
    let Some(at) = lines.iter().position(|line| starts(line)) else {
        let mut out = text.to_owned();
        if let Some(section) = section {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(section);
        }
        return out;
    };
    // The section goes on while lines are indented (or blank); a comment at the margin
    // belongs to what follows.
    let mut end = at + 1;
    while end < lines.len() {
        let line = lines[end];
        let blank = line.trim().is_empty();
        if !(blank || line.starts_with(' ') || line.starts_with('\t')) {
            break;
        }
        end += 1;
    }
    // Blank lines that close the section stay with what follows.
    while end > at + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let mut out: String = lines[..at].concat();
    if let Some(section) = section {
        out.push_str(section);
    }
    out.push_str(&lines[end..].concat());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(url: &str, password_env: Option<&str>) -> SharedDatabase {
        SharedDatabase {
            url: url.to_owned(),
            password_env: password_env.map(str::to_owned),
        }
    }

    #[test]
    fn the_section_is_replaced_in_place_and_the_rest_kept() {
        let text = "# my settings\nmodels:\n  fast: {provider: local}\ndatabase:\n  url: postgres://old@h/db\n  # a note\n\n# about the api\napi:\n  port: 4000\n";
        let section = database_section(&connection("postgres://ann@db/s", Some("PW")));
        let updated = with_database_section(text, Some(&section));
        assert_eq!(
            updated,
            "# my settings\nmodels:\n  fast: {provider: local}\ndatabase:\n  url: \"postgres://ann@db/s\"\n  password_env: \"PW\"\n\n# about the api\napi:\n  port: 4000\n"
        );
        let removed = with_database_section(&updated, None);
        assert_eq!(
            removed,
            "# my settings\nmodels:\n  fast: {provider: local}\n\n# about the api\napi:\n  port: 4000\n"
        );
        assert_eq!(
            with_database_section("models: {}", Some("database:\n  url: \"x\"\n")),
            "models: {}\ndatabase:\n  url: \"x\"\n"
        );
    }

    #[test]
    fn a_form_with_a_password_or_a_bad_name_is_refused_in_words() {
        let with_password = check_form(&connection("postgres://ann:secret@db/s", None))
            .unwrap_err()
            .to_string();
        assert!(
            with_password.contains("holds a password"),
            "{with_password}"
        );
        assert!(!with_password.contains("secret"), "{with_password}");
        let bad_name = check_form(&connection("postgres://ann@db/s", Some("1PW")))
            .unwrap_err()
            .to_string();
        assert!(bad_name.contains("`1PW`"), "{bad_name}");
        let injected = check_form(&connection("postgres://ann@db/s\napi: {}", None))
            .unwrap_err()
            .to_string();
        assert!(injected.contains("control characters"), "{injected}");
        assert!(check_form(&connection("sqlite.db", None)).is_err());
        // A password in a URL the client would not even parse is still found.
        let unparsed = check_form(&connection(
            "postgres://ann:secret@db/s?sslmode=bogus",
            None,
        ))
        .unwrap_err()
        .to_string();
        assert!(unparsed.contains("holds a password"), "{unparsed}");
        assert!(check_form(&connection("postgres://ann@db/s", Some("STEPWISE_PW"))).is_ok());
    }

    #[test]
    fn saving_writes_the_file_private_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stepwise").join("settings.yaml");
        save_connection(&path, Some(&connection("postgres://ann@db/s", None))).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written, "database:\n  url: \"postgres://ann@db/s\"\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(
            &path,
            "api:\n  port: 1\ndatabase:\n  url: \"postgres://x@y/z\"\n",
        )
        .unwrap();
        save_connection(&path, None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "api:\n  port: 1\n");
        // A section this edit does not follow (a quoted key) is left alone, said in words.
        let quoted = "\"database\": {url: \"postgres://x@y/z\"}\n";
        std::fs::write(&path, quoted).unwrap();
        let error = save_connection(&path, Some(&connection("postgres://ann@db/s", None)))
            .unwrap_err()
            .to_string();
        assert!(error.contains("edit it by hand"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), quoted);
    }
}
