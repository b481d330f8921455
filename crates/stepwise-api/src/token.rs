//! The per-user token every request must carry: 256 random bits, hex, in a file only the user
//! can read (`$XDG_RUNTIME_DIR/stepwise/token`, else `token` in the user's stepwise data
//! directory). Every process of the user that serves the API (the app, `stepwise serve`)
//! shares the file: the first makes it, the others read it, so a script reads one file
//! whichever process answers.
//!
//! The file is never followed through a link and never trusted when another user could read or
//! write it: such a file is refused in words, not used.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where the token file lives unless the caller names one.
pub const ENV_TOKEN_FILE: &str = "STEPWISE_TOKEN_FILE";

/// A token is 64 hex digits.
const TOKEN_HEX_LEN: usize = 64;

/// Why the token cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No runtime or data directory to keep it in.
    #[error(
        "there is no place for the API token: set XDG_RUNTIME_DIR or HOME, or name a file with {ENV_TOKEN_FILE}"
    )]
    NoPlace,
    /// The file or its folder is not safe to use.
    #[error("the API token file {path}: {problem}")]
    Unsafe { path: PathBuf, problem: String },
    /// Reading or writing it failed.
    #[error("the API token file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The token file: `$STEPWISE_TOKEN_FILE`, else `$XDG_RUNTIME_DIR/stepwise/token` (when that
/// directory is the user's own and closed to others, as the XDG spec requires), else `token`
/// in the user's stepwise data directory.
pub fn token_path() -> Result<PathBuf, TokenError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(file) = var(ENV_TOKEN_FILE) {
        let file = PathBuf::from(file);
        return Ok(std::path::absolute(&file).unwrap_or(file));
    }
    if let Some(runtime) = var("XDG_RUNTIME_DIR").map(PathBuf::from)
        && std::fs::metadata(&runtime).is_ok_and(|meta| {
            meta.is_dir() && meta.uid() == current_uid() && meta.permissions().mode() & 0o077 == 0
        })
    {
        return Ok(runtime.join("stepwise").join("token"));
    }
    directories::ProjectDirs::from("", "", "stepwise")
        .map(|dirs| dirs.data_dir().join("token"))
        .ok_or(TokenError::NoPlace)
}

/// The token in `path`, made (with its folder) if there is none yet.
pub fn load_or_create(path: &Path) -> Result<String, TokenError> {
    let io = |source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let folder = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(folder) => folder.to_path_buf(),
        None => std::env::current_dir().map_err(io)?,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&folder)
        .map_err(io)?;
    check_private(&folder, path)?;
    match read_token(path)? {
        Some(token) => return Ok(token),
        None if path.symlink_metadata().is_ok() => {
            return Err(unsafe_file(
                path,
                "does not hold a token (64 hex digits); remove it and a new one is made",
            ));
        }
        None => {}
    }
    // Written whole under a name of its own, then linked into place: a process that reads the
    // file never sees half a token, and of two processes making one, the first link wins and
    // the other reads it.
    let token = new_token().map_err(io)?;
    let temporary = path.with_file_name(format!(".token-{}", uuid::Uuid::new_v4().simple()));
    let written = write_private(&temporary, &token);
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(token),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_token(path)?
            .ok_or_else(|| unsafe_file(path, "does not hold a token (64 hex digits)")),
        Err(e) => Err(io(e)),
    }
}

/// The token in the file, `None` when there is no file; refused when it is a link, not the
/// user's own, or open to others.
fn read_token(path: &Path) -> Result<Option<String>, TokenError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(unsafe_file(
                path,
                "is a symbolic link; a token file must be a file of its own",
            ));
        }
        Err(source) => {
            return Err(TokenError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    check_own_file(&file, path)?;
    let mut text = String::new();
    file.take(TOKEN_HEX_LEN as u64 + 2)
        .read_to_string(&mut text)
        .map_err(|source| TokenError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let token = text.trim();
    Ok(
        (token.len() == TOKEN_HEX_LEN && token.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| token.to_string()),
    )
}

fn check_own_file(file: &File, path: &Path) -> Result<(), TokenError> {
    let meta = file.metadata().map_err(|source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(unsafe_file(path, "is not a regular file"));
    }
    if meta.uid() != current_uid() {
        return Err(unsafe_file(path, "belongs to another user"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(unsafe_file(
            path,
            &format!(
                "can be read or written by others (mode {mode:03o}); run `chmod 600` on it or remove it"
            ),
        ));
    }
    Ok(())
}

/// The folder must be the user's and closed to others' writes (else another user could swap
/// the file).
fn check_private(folder: &Path, path: &Path) -> Result<(), TokenError> {
    let meta = std::fs::metadata(folder).map_err(|source| TokenError::Io {
        path: folder.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode();
    let sticky = mode & 0o1000 != 0;
    if meta.uid() != current_uid() && !(meta.uid() == 0 && sticky) {
        return Err(unsafe_file(path, "is in a folder another user owns"));
    }
    if mode & 0o022 != 0 && !sticky {
        return Err(unsafe_file(path, "is in a folder others can write to"));
    }
    Ok(())
}

fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()
}

/// 256 bits from the operating system's random source, as hex.
fn new_token() -> Result<String, std::io::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `api.json` beside the token: where the server that wrote it listens and its pid, for a
/// client that did not start it (an editor finding the app's API). Written whole; removed by
/// the server that wrote it when it stops, unless another has written it since.
pub(crate) struct AddressFile {
    path: PathBuf,
    written: String,
}

impl AddressFile {
    pub(crate) fn write(token_file: &Path, url: &str) -> Option<AddressFile> {
        let path = token_file.with_file_name("api.json");
        let written = serde_json::json!({ "url": url, "pid": std::process::id() }).to_string();
        let temporary = path.with_file_name(format!(".api-{}", uuid::Uuid::new_v4().simple()));
        let result =
            write_private(&temporary, &written).and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(error) = result {
            let _ = std::fs::remove_file(&temporary);
            tracing::warn!("could not write {}: {error}", path.display());
            return None;
        }
        Some(AddressFile { path, written })
    }

    pub(crate) fn remove(self) {
        let ours =
            std::fs::read_to_string(&self.path).is_ok_and(|text| text.trim() == self.written);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn current_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

fn unsafe_file(path: &Path, problem: &str) -> TokenError {
    TokenError::Unsafe {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_once_and_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stepwise").join("token");
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create(&path).unwrap(), first);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let folder = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(folder & 0o777, 0o700);
    }

    #[test]
    fn a_file_others_can_read_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{}\n", "a".repeat(64))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("mode 644"), "{error}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let error = load_or_create(&link).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
    }

    #[test]
    fn a_file_without_a_token_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "notes\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("does not hold a token"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "notes\n");
    }
}
