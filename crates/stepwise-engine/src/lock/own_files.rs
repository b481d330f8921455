//! Opening the locks directory beside the database, and the files in it, without ever being
//! led elsewhere.
//!
//! Whoever can write the directory can plant a link where a lock file will be opened, and the
//! engine would then write (`pid 4242`) into, or create, whatever the link points at. So the
//! directory is made private (mode 0700), refused when it is a link, belongs to another user
//! or can be written by others, and each file in it is opened relative to the directory's own
//! descriptor (`openat`, so the directory cannot be swapped in between) with `O_NOFOLLOW`
//! (a link is an error, never followed), `O_EXCL` where it is created, and `O_NONBLOCK` (a
//! FIFO planted there cannot hang the open). A file that was there already must be a plain
//! file with one name (not a hard link to another file) and, where the engine writes it, this
//! user's own.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use crate::error::EngineError;

/// What the directory is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Taking locks and creating files: the directory is made if missing and must be this
    /// user's own.
    Take,
    /// Only asking whether a lock is held (reading, maybe as another user, e.g. a read-only
    /// database): nothing is created, and the directory may be another user's.
    Ask,
}

/// The locks directory, opened and checked to take locks in: made (mode 0700) if missing.
pub(super) fn open_dir_to_take(dir: &Path) -> Result<File, EngineError> {
    open_dir(dir, Purpose::Take)?
        .ok_or_else(|| io_error(dir, std::io::Error::from(ErrorKind::NotFound)))
}

/// The locks directory, opened and checked to ask about locks; `None` when it does not exist
/// (no lock was ever taken there).
pub(super) fn open_dir_to_ask(dir: &Path) -> Result<Option<File>, EngineError> {
    open_dir(dir, Purpose::Ask)
}

fn open_dir(dir: &Path, purpose: Purpose) -> Result<Option<File>, EngineError> {
    if purpose == Purpose::Take {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(source) => return Err(io_error(dir, source)),
        }
    }
    // Looked at first only to say what is wrong; the open itself refuses a link either way.
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(linked_dir(dir)),
        Ok(meta) if !meta.is_dir() => {
            return Err(unsafe_dir(
                dir,
                "is not a directory: remove it, and stepwise makes the directory anew",
            ));
        }
        Ok(_) => {}
        Err(e) if purpose == Purpose::Ask && e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error(dir, source)),
    }
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => linked_dir(dir),
            _ => io_error(dir, e),
        })?;
    let meta = handle.metadata().map_err(|source| io_error(dir, source))?;
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_dir(
            dir,
            &format!(
                "can be written by other users (mode {:o}), who could plant files there that \
                 stepwise opens: make it private with `chmod 700 {}`",
                meta.mode() & 0o7777,
                dir.display()
            ),
        ));
    }
    if purpose == Purpose::Take && meta.uid() != effective_uid() {
        return Err(unsafe_dir(
            dir,
            &format!(
                "belongs to another user (uid {}); stepwise takes locks only in a directory of \
                 its own user: have it removed (or given to this user with chown), and stepwise \
                 makes it anew",
                meta.uid()
            ),
        ));
    }
    Ok(Some(handle))
}

/// Opens the file `name` in the directory to read and write it, creating it (mode 0600) if it
/// is not there. One that was there must be a plain file of this user's own, with one name.
pub(super) fn open_own_file(dir: &File, dir_path: &Path, name: &str) -> Result<File, EngineError> {
    let path = dir_path.join(name);
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let private = Mode::from_bits_truncate(0o600);
    // A finished run's lock file is removed by its holder: between the two opens below, or
    // between an open and its checks, it may go. Then it is made anew.
    for _ in 0..REMOVED_RETRIES {
        match openat(dir, name, flags | OFlag::O_CREAT | OFlag::O_EXCL, private) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(Errno::EEXIST) => {}
            Err(errno) => return Err(open_error(&path, errno)),
        }
        // Left by an earlier holder: O_NOFOLLOW alone guards this open, the checks the rest.
        let file = match openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::ENOENT) => continue,
            Err(errno) => return Err(open_error(&path, errno)),
        };
        let meta = file.metadata().map_err(|source| io_error(&path, source))?;
        if meta.is_file() && meta.nlink() == 0 {
            continue;
        }
        if !meta.is_file() || meta.nlink() != 1 || meta.uid() != effective_uid() {
            return Err(not_plain(&path));
        }
        return Ok(file);
    }
    Err(io_error(
        &path,
        std::io::Error::other("it keeps being removed as it is opened"),
    ))
}

/// How often a lock file removed while it is opened is made anew before giving up.
const REMOVED_RETRIES: usize = 8;

/// Opens the file `name` in the directory to read it; `None` if there is none. It must be a
/// plain file with one name (anyone's: a reader may be another user than the holder).
pub(super) fn open_to_read(
    dir: &File,
    dir_path: &Path,
    name: &str,
) -> Result<Option<File>, EngineError> {
    let path = dir_path.join(name);
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let file = match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(Errno::ENOENT) => return Ok(None),
        Err(errno) => return Err(open_error(&path, errno)),
    };
    let meta = file.metadata().map_err(|source| io_error(&path, source))?;
    // Removed just now (its run finished): nobody holds it.
    if meta.is_file() && meta.nlink() == 0 {
        return Ok(None);
    }
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(not_plain(&path));
    }
    Ok(Some(file))
}

/// Opens a file by path to read it, never through a link; `None` if it is not there, or is a
/// link or not a plain file (not a lock anyone holds).
pub(crate) fn open_path_to_read(path: &Path) -> Option<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    file.metadata().is_ok_and(|m| m.is_file()).then_some(file)
}

#[allow(unsafe_code)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn open_error(path: &Path, errno: Errno) -> EngineError {
    if errno == Errno::ELOOP {
        return EngineError::UnsafeFile {
            what: "lock file",
            path: path.to_path_buf(),
            problem: "is a symbolic link; stepwise never follows links for its own files: \
                      remove it, and stepwise makes the file anew"
                .into(),
        };
    }
    io_error(path, std::io::Error::from(errno))
}

fn not_plain(path: &Path) -> EngineError {
    EngineError::UnsafeFile {
        what: "lock file",
        path: path.to_path_buf(),
        problem: "is not a plain file of this user's own with one name (a directory, a device, \
                  a hard link or another user's file); stepwise opens only its own files there: \
                  remove it, and stepwise makes the file anew"
            .into(),
    }
}

fn linked_dir(dir: &Path) -> EngineError {
    unsafe_dir(
        dir,
        "is a symbolic link; stepwise never follows links to where it keeps its locks: remove \
         the link, and stepwise makes the directory anew",
    )
}

fn unsafe_dir(dir: &Path, problem: &str) -> EngineError {
    EngineError::UnsafeFile {
        what: "locks directory",
        path: dir.to_path_buf(),
        problem: problem.to_string(),
    }
}

pub(super) fn io_error(path: &Path, source: std::io::Error) -> EngineError {
    EngineError::Io {
        path: PathBuf::from(path),
        source,
    }
}
