//! Reading and writing workspace files.
//!
//! Writes are compare-and-swap: a proposal was made against a file with a known hash, and it
//! is applied only if the file still has that hash, so an approval can never overwrite work
//! done since. Every write replaces the file atomically (temp file, fsync, rename), so a crash
//! leaves either the old or the new content, which is what [`recover_write`] relies on.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt, Permissions};
use stepwise_core::hash::content_hash;
use stepwise_core::operation::{OperationError, OperationErrorKind, OperationResult};
use stepwise_core::paths::normalize_workspace_path;

use crate::sandbox::{SandboxError, Workspace};

/// Marks our temp files so that recovery can recognise and remove leftovers of a crash.
const TEMP_MARKER: &str = ".stepwise-tmp-";

/// Keeps temp file names of concurrent writes in one process apart.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What a write that was started but never recorded (the engine crashed) actually did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteRecovery {
    /// The file holds the new content: the result to record, with `recovered: true`.
    AlreadyApplied(OperationResult),
    /// The file still holds its base content (or still does not exist): the write can run.
    NotApplied,
    /// The file holds neither, or could not be inspected; the error says which.
    Conflict(OperationError),
}

/// Reads a UTF-8 text file of the workspace.
///
/// A missing file is an error of kind `NotFound`, or with `missing_ok` a result with
/// `exists: false` (an edit that creates a file snapshots "nothing" first).
pub fn read_file(
    ws: &Workspace,
    path: &str,
    missing_ok: bool,
) -> Result<OperationResult, OperationError> {
    let (shown, real) = locate(ws, path)?;
    file_read(&shown, read_current(ws, &shown, &real)?, missing_ok)
}

/// [`read_file`] of a file of at most `max` bytes: `None` when it is a regular file larger
/// than that (to be read elsewhere, see `Driver::read_inline`), found with the same one open
/// that reads it.
pub fn read_small_file(
    ws: &Workspace,
    path: &str,
    missing_ok: bool,
    max: u64,
) -> Option<Result<OperationResult, OperationError>> {
    let (shown, real) = match locate(ws, path) {
        Ok(located) => located,
        Err(error) => return Some(Err(error)),
    };
    let current = match read_within(ws, &shown, &real, max) {
        Ok(Within::Larger) => return None,
        Ok(Within::Missing) => None,
        Ok(Within::Read(current)) => Some(current),
        Err(error) => return Some(Err(error)),
    };
    Some(file_read(&shown, current, missing_ok))
}

/// What a read found, as its result.
fn file_read(
    shown: &str,
    current: Option<Current>,
    missing_ok: bool,
) -> Result<OperationResult, OperationError> {
    match current {
        None if missing_ok => Ok(OperationResult::FileRead {
            exists: false,
            content: String::new(),
            hash: None,
        }),
        None => Err(not_found(shown)),
        Some(current) => {
            let hash = content_hash(&current.bytes);
            let content = String::from_utf8(current.bytes).map_err(|_| {
                OperationError::new(
                    OperationErrorKind::NotText,
                    format!("file `{shown}` is not UTF-8 text"),
                )
            })?;
            Ok(OperationResult::FileRead {
                exists: true,
                content,
                hash: Some(hash),
            })
        }
    }
}

/// The hash of a workspace file as it is now (`None`: it does not exist), to tell whether a
/// proposal made against it still holds.
pub fn current_hash(ws: &Workspace, path: &str) -> Result<Option<String>, OperationError> {
    let (shown, real) = locate(ws, path)?;
    Ok(read_current(ws, &shown, &real)?.map(|current| content_hash(&current.bytes)))
}

/// Replaces a file's content if it still has `base_hash` (`None`: if it does not exist yet).
///
/// Parent directories are created inside the workspace, the file is replaced atomically and an
/// existing file keeps its permissions. On a hash mismatch nothing is written.
pub fn write_file(
    ws: &Workspace,
    path: &str,
    base_hash: Option<&str>,
    content: &str,
    content_hash: &str,
) -> Result<OperationResult, OperationError> {
    let (shown, _) = locate(ws, path)?;
    // The recorded `after_hash` must describe what is on disk; a request whose hash does not
    // match its content is a bug upstream and must not be recorded as if it were applied.
    let actual = stepwise_core::hash::content_hash(content.as_bytes());
    if actual != content_hash {
        return Err(OperationError::new(
            OperationErrorKind::Io,
            format!(
                "the content for `{shown}` hashes to {actual}, not to the requested \
                 {content_hash}; nothing was written"
            ),
        ));
    }

    let found = replace_bytes(ws, path, base_hash, content.as_bytes())?;

    Ok(OperationResult::FileWritten {
        before_hash: found,
        after_hash: content_hash.to_string(),
        recovered: false,
        changes: Vec::new(),
    })
}

/// Replaces a file's bytes if it still has `base_hash` (`None`: if it does not exist), as
/// [`write_file`] does, and returns the hash it had.
pub fn replace_bytes(
    ws: &Workspace,
    path: &str,
    base_hash: Option<&str>,
    bytes: &[u8],
) -> Result<Option<String>, OperationError> {
    let (shown, real) = locate(ws, path)?;
    let current = read_current(ws, &shown, &real)?;
    let found = current.as_ref().map(|c| content_hash(&c.bytes));
    check_base(&shown, base_hash, found.as_deref())?;
    let (parent, name) = split_parent(&shown, &real)?;
    let opened;
    let dir = if parent.as_os_str().is_empty() {
        ws.dir()
    } else {
        ws.dir()
            .create_dir_all(parent)
            .map_err(|e| io_error("create the directories for", &shown, e))?;
        opened = ws
            .dir()
            .open_dir(parent)
            .map_err(|e| io_error("open the directory of", &shown, e))?;
        &opened
    };
    replace_atomically(dir, name, bytes, current.map(|c| c.permissions))
        .map_err(|e| io_error("write", &shown, e))?;
    Ok(found)
}

/// Removes a file if it still has `base_hash`.
pub fn remove_file(ws: &Workspace, path: &str, base_hash: &str) -> Result<(), OperationError> {
    let (shown, real) = locate(ws, path)?;
    let found = read_current(ws, &shown, &real)?.map(|c| content_hash(&c.bytes));
    check_base(&shown, Some(base_hash), found.as_deref())?;
    ws.dir()
        .remove_file(&real)
        .map_err(|e| io_error("remove", &shown, e))
}

/// A workspace file's bytes as they are now (`None`: it does not exist).
pub fn read_bytes(ws: &Workspace, path: &str) -> Result<Option<Vec<u8>>, OperationError> {
    let (shown, real) = locate(ws, path)?;
    Ok(read_current(ws, &shown, &real)?.map(|c| c.bytes))
}

/// Refuses to touch a file that no longer has the hash it was looked at with.
fn check_base(shown: &str, base: Option<&str>, found: Option<&str>) -> Result<(), OperationError> {
    if found == base {
        return Ok(());
    }
    Err(OperationError::new(
        OperationErrorKind::Conflict,
        format!(
            "`{shown}` changed since the proposal (expected {}, found {}); nothing was written",
            describe(base),
            describe(found),
        ),
    ))
}

/// Finds out what a write that was started but never recorded did, after a crash.
///
/// The file holding `content_hash` means it was applied; holding `base_hash` (or still missing
/// when `base_hash` is `None`) means it was not; anything else is a conflict. Leftover temp
/// files of the interrupted write are removed.
pub fn recover_write(
    ws: &Workspace,
    path: &str,
    base_hash: Option<&str>,
    content_hash: &str,
) -> WriteRecovery {
    let (shown, real) = match locate(ws, path) {
        Ok(located) => located,
        Err(err) => return WriteRecovery::Conflict(err),
    };
    let found = match read_current(ws, &shown, &real) {
        Ok(current) => current.map(|c| stepwise_core::hash::content_hash(&c.bytes)),
        Err(err) => return WriteRecovery::Conflict(err),
    };
    remove_stale_temp_files(ws, &real);

    if found.as_deref() == Some(content_hash) {
        WriteRecovery::AlreadyApplied(OperationResult::FileWritten {
            before_hash: base_hash.map(str::to_string),
            after_hash: content_hash.to_string(),
            recovered: true,
            changes: Vec::new(),
        })
    } else if found.as_deref() == base_hash {
        WriteRecovery::NotApplied
    } else {
        WriteRecovery::Conflict(OperationError::new(
            OperationErrorKind::Conflict,
            format!(
                "`{shown}` changed since the interrupted write (expected {} or {content_hash}, \
                 found {}); nothing was written",
                describe(base_hash),
                describe(found.as_deref()),
            ),
        ))
    }
}

/// The file's bytes and permissions as they are now.
struct Current {
    bytes: Vec<u8>,
    permissions: Permissions,
}

/// Checks `path` and returns it normalised (for messages) and resolved relative to the root
/// (for IO: free of symlinks, so that `cap-std` never has to follow one).
/// Files larger than this are refused: their content would be recorded in the log.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

fn locate(ws: &Workspace, path: &str) -> Result<(String, PathBuf), OperationError> {
    let shown = normalize_workspace_path(path).map_err(SandboxError::from)?;
    let real = ws.resolve_relative(&shown)?;
    // Policy judged the path as written. A link inside the workspace would let an edit of
    // `docs/x` land in `.github/ci.yml` under the rules for `docs/**`, so operations go to
    // the file they name, never through a link to another one.
    if real != Path::new(&shown) {
        return Err(OperationError::new(
            OperationErrorKind::Sandbox,
            format!(
                "`{shown}` leads through a symlink to `{}`; name that path instead, so that policy judges the file that is really used",
                real.display()
            ),
        ));
    }
    Ok((shown, real))
}

/// What [`read_within`] found.
enum Within {
    Missing,
    /// A regular file larger than the limit (not read).
    Larger,
    Read(Current),
}

/// Reads the file if it exists; a directory in its place is an error, and so is a file larger
/// than [`MAX_FILE_BYTES`].
fn read_current(
    ws: &Workspace,
    shown: &str,
    real: &Path,
) -> Result<Option<Current>, OperationError> {
    match read_within(ws, shown, real, MAX_FILE_BYTES)? {
        Within::Missing => Ok(None),
        Within::Read(current) => Ok(Some(current)),
        Within::Larger => Err(OperationError::new(
            OperationErrorKind::Io,
            format!(
                "`{shown}` is larger than {MAX_FILE_BYTES} bytes; files that large are not read into the log"
            ),
        )),
    }
}

/// Reads the file if it exists and holds at most `limit` bytes (at most [`MAX_FILE_BYTES`]);
/// a directory or anything else that is not a regular file in its place is an error.
fn read_within(
    ws: &Workspace,
    shown: &str,
    real: &Path,
    limit: u64,
) -> Result<Within, OperationError> {
    let limit = limit.min(MAX_FILE_BYTES);
    // One open, then questions to the opened file: what is checked is what is read, even if
    // the path is swapped meanwhile. Non-blocking, so that a FIFO put in its place cannot hang
    // the read (it is refused below); no following a link put in the last place.
    let mut options = OpenOptions::new();
    options
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
    let mut file = match ws.dir().open_with(real, &options) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Within::Missing),
        Err(e) => return Err(io_error("read", shown, e)),
    };
    let meta = file.metadata().map_err(|e| io_error("read", shown, e))?;
    if meta.is_dir() {
        return Err(OperationError::new(
            OperationErrorKind::Io,
            format!("`{shown}` is a directory, not a file"),
        ));
    }
    // A FIFO or device would block the read forever, and a huge file would land in the log.
    if !meta.is_file() {
        return Err(OperationError::new(
            OperationErrorKind::Io,
            format!("`{shown}` is not a regular file"),
        ));
    }
    if meta.len() > limit {
        return Ok(Within::Larger);
    }
    // The file may grow after the check: read one byte past the limit to know.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    (&mut file)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("read", shown, e))?;
    if bytes.len() as u64 > limit {
        return Ok(Within::Larger);
    }
    Ok(Within::Read(Current {
        bytes,
        permissions: meta.permissions(),
    }))
}

fn split_parent<'a>(shown: &str, real: &'a Path) -> Result<(&'a Path, &'a Path), OperationError> {
    match (real.parent(), real.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, Path::new(name))),
        _ => Err(OperationError::new(
            OperationErrorKind::Io,
            format!("`{shown}` is a directory, not a file"),
        )),
    }
}

/// Writes `bytes` to a temp file next to `name`, flushes it to disk and renames it over
/// `name`, so that readers and crashes see the old content or the new, never a mix.
fn replace_atomically(
    dir: &Dir,
    name: &Path,
    bytes: &[u8],
    permissions: Option<Permissions>,
) -> io::Result<()> {
    let (temp_name, mut file) = create_temp_file(dir, name)?;
    let written = (|| {
        file.write_all(bytes)?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions)?;
        }
        file.sync_all()?;
        drop(file);
        dir.rename(&temp_name, dir, name)
    })();
    if let Err(err) = written {
        // Best effort: the error that matters is the write's, not the cleanup's.
        let _ = dir.remove_file(&temp_name);
        return Err(err);
    }
    // Makes the rename itself durable. The new content is already in place either way, so a
    // failure here is worth a warning, not a failed operation.
    if let Err(err) = sync_dir(dir) {
        tracing::warn!(file = %name.display(), error = %err, "could not fsync the directory after a write");
    }
    Ok(())
}

fn create_temp_file(dir: &Dir, name: &Path) -> io::Result<(PathBuf, cap_std::fs::File)> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp_name = temp_prefix(name) + &format!("{}-{n}", std::process::id());
        match dir.open_with(&temp_name, &options) {
            Ok(file) => return Ok((PathBuf::from(temp_name), file)),
            // A leftover from a crashed process with the same pid; take the next number.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `.name.stepwise-tmp-`: hidden, and recognisable as belonging to `name`.
fn temp_prefix(name: &Path) -> String {
    format!(".{}{TEMP_MARKER}", name.to_string_lossy())
}

fn sync_dir(dir: &Dir) -> io::Result<()> {
    // cap-std holds directories as `O_PATH` handles, which cannot be fsynced; open the
    // directory itself for reading to get one that can.
    dir.open(".")?.into_std().sync_all()
}

fn remove_stale_temp_files(ws: &Workspace, real: &Path) {
    let (Some(parent), Some(name)) = (real.parent(), real.file_name()) else {
        return;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let Ok(dir) = ws.dir().open_dir(parent) else {
        return;
    };
    let Ok(entries) = dir.entries() else {
        return;
    };
    let prefix = temp_prefix(Path::new(name));
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        if entry_name.to_string_lossy().starts_with(&prefix)
            && let Err(err) = dir.remove_file(&entry_name)
        {
            tracing::warn!(file = %entry_name.to_string_lossy(), error = %err, "could not remove a leftover temp file");
        }
    }
}

fn describe(hash: Option<&str>) -> &str {
    hash.unwrap_or("no file")
}

fn not_found(shown: &str) -> OperationError {
    OperationError::new(
        OperationErrorKind::NotFound,
        format!("file `{shown}` does not exist in the workspace"),
    )
}

/// Maps an IO error; `cap-std`'s refusal of a path that escapes (a link swapped in after the
/// check) is a sandbox error, not an IO failure.
fn io_error(action: &str, shown: &str, err: io::Error) -> OperationError {
    if err.kind() == io::ErrorKind::PermissionDenied
        && err.to_string().contains("outside of the filesystem")
    {
        return OperationError::new(
            OperationErrorKind::Sandbox,
            format!("path `{shown}` leads outside the workspace"),
        );
    }
    OperationError::new(
        OperationErrorKind::Io,
        format!("could not {action} `{shown}`: {err}"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
