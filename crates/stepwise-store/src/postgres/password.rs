//! The password file, as libpq reads it: `PGPASSFILE` or `~/.pgpass`, lines of
//! `hostname:port:database:username:password` where `*` matches anything and `\` escapes `:`
//! and `\`. The first matching line wins. A file that others may read is ignored, with a
//! warning, as libpq does: a password there is no secret.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Bytes of a password file read at most.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The password file to read, if one is named or exists.
pub(super) fn file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(named) = env("PGPASSFILE") {
        return Some(PathBuf::from(named));
    }
    let home = env("HOME")?;
    let path = Path::new(&home).join(".pgpass");
    path.is_file().then_some(path)
}

/// The password of the first line of `file` matching the connection, if any.
pub(super) fn lookup(
    file: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let metadata = std::fs::metadata(file).ok()?;
    if !metadata.is_file() || metadata.len() > MAX_FILE_BYTES {
        return None;
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            file = %file.display(),
            "password file has group or world access; ignored (chmod 0600 it)"
        );
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let port = port.to_string();
    let wanted = [host, port.as_str(), dbname, user];
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(fields)
        .find(|fields| {
            fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, value)| field == "*" || field == value)
        })
        .map(|mut fields| fields.swap_remove(4))
}

/// A line's five fields, unescaped; `None` for a line that has fewer.
fn fields(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    fields.last_mut()?.push(escaped);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let (_dir, file) = write(
            "# comment\nother:5432:*:ann:nope\nlocalhost:5432:team:ann:a\\:b\\\\c\n*:*:*:ann:fallback\n",
            0o600,
        );
        assert_eq!(
            lookup(&file, "localhost", 5432, "team", "ann").as_deref(),
            Some("a:b\\c")
        );
        assert_eq!(
            lookup(&file, "db", 6000, "x", "ann").as_deref(),
            Some("fallback")
        );
        assert_eq!(lookup(&file, "db", 6000, "x", "bob"), None);
    }

    #[test]
    fn a_file_others_may_read_is_ignored() {
        let (_dir, file) = write("*:*:*:*:secret\n", 0o644);
        assert_eq!(lookup(&file, "h", 1, "d", "u"), None);
    }
}
