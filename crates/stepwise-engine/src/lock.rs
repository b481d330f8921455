//! Who drives a run. Only the holder of a run's lock performs its operations, and it dispatches
//! every operation it records at once; so after a crash (the kernel releases the lock when the
//! process dies) an operation without a result is known to have been dispatched and is
//! recovered, never silently repeated by a second process.
//!
//! On Linux the lock is an open-file-description lock (`F_OFD_SETLK`): it can be waited for
//! (`F_OFD_SETLKW`, so a standby process takes a run over the moment its holder dies) and asked
//! about without taking it (`F_OFD_GETLK`, so listing runs never gets in a driver's way).
//! Elsewhere it is a `flock`, and asking about it takes it for an instant.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use stepwise_core::ids::{EventSeq, RunId};

use crate::error::EngineError;

/// An exclusive lock on one run, held until dropped.
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock for `run_id` in `dir` if nobody holds it; otherwise says who does.
    pub(crate) fn try_acquire(
        dir: &Path,
        run_id: &RunId,
    ) -> Result<Result<RunLock, String>, EngineError> {
        let path = lock_path(dir, run_id)?;
        let mut file = open(&path, true)?;
        if !sys::try_lock(&file).map_err(|source| io_error(&path, source))? {
            return Ok(Err(holder_text(&mut file)));
        }
        RunLock::claim(file, &path).map(Ok)
    }

    /// Blocks until the lock for `run_id` is free, then takes it. Meant for a thread of its
    /// own: it returns the moment the holder releases the lock or dies.
    pub(crate) fn wait(dir: &Path, run_id: &RunId) -> Result<RunLock, EngineError> {
        let path = lock_path(dir, run_id)?;
        let file = open(&path, true)?;
        sys::lock_blocking(&file).map_err(|source| io_error(&path, source))?;
        RunLock::claim(file, &path)
    }

    /// Says who holds it, for the messages another process shows.
    fn claim(mut file: File, path: &Path) -> Result<RunLock, EngineError> {
        let result = (|| {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            write!(file, "pid {}", std::process::id())
        })();
        result.map_err(|source| io_error(path, source))?;
        Ok(RunLock { _file: file })
    }
}

/// Who holds the run's lock (`pid 4242`), or `None` when nobody does. Never takes the lock on
/// Linux, so it cannot make a driver starting at the same moment fail.
/// Opens the file for reading only, so that asking works where the database is read-only.
pub(crate) fn holder(dir: &Path, run_id: &RunId) -> Result<Option<String>, EngineError> {
    let path = dir.join(format!("{run_id}.lock"));
    let mut file = match OpenOptions::new().read(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error(&path, source)),
    };
    if sys::is_locked(&file).map_err(|source| io_error(&path, source))? {
        Ok(Some(holder_text(&mut file)))
    } else {
        Ok(None)
    }
}

/// The file a command's supervisor holds locked while anything of the command may run: for
/// operation `op` (its `OperationStarted` seq) of the run.
pub(crate) fn operation_lock(dir: &Path, run_id: &RunId, op: EventSeq) -> PathBuf {
    dir.join(format!("{run_id}.op-{op}.lock"))
}

/// Waits, up to `limit`, until nothing holds an operation's lock (the command's supervisor has
/// killed its tree and exited); `false` if it is still held then. Removes the file once free.
pub(crate) fn wait_operation_gone(path: &Path, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let held = match OpenOptions::new().read(true).open(path) {
            Ok(file) => sys::is_locked(&file).unwrap_or(false),
            Err(_) => false,
        };
        if !held {
            let _ = std::fs::remove_file(path);
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        // The supervisor is killing the tree; it lets go within moments.
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn lock_path(dir: &Path, run_id: &RunId) -> Result<PathBuf, EngineError> {
    std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    Ok(dir.join(format!("{run_id}.lock")))
}

fn open(path: &Path, create: bool) -> Result<File, EngineError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(|source| io_error(path, source))
}

fn holder_text(file: &mut File) -> String {
    let mut holder = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut holder);
    let holder = holder.trim();
    if holder.is_empty() {
        "another stepwise process".to_string()
    } else {
        holder.to_string()
    }
}

fn io_error(path: &Path, source: std::io::Error) -> EngineError {
    EngineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::fs::File;
    use std::io;

    use nix::errno::Errno;
    use nix::fcntl::{FcntlArg, fcntl};

    fn whole_file(kind: libc::c_int) -> libc::flock {
        libc::flock {
            l_type: kind as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        }
    }

    pub(super) fn try_lock(file: &File) -> io::Result<bool> {
        match fcntl(file, FcntlArg::F_OFD_SETLK(&whole_file(libc::F_WRLCK))) {
            Ok(_) => Ok(true),
            Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
            Err(e) => Err(io::Error::from(e)),
        }
    }

    pub(super) fn lock_blocking(file: &File) -> io::Result<()> {
        loop {
            match fcntl(file, FcntlArg::F_OFD_SETLKW(&whole_file(libc::F_WRLCK))) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }

    pub(super) fn is_locked(file: &File) -> io::Result<bool> {
        let mut probe = whole_file(libc::F_WRLCK);
        fcntl(file, FcntlArg::F_OFD_GETLK(&mut probe)).map_err(io::Error::from)?;
        Ok(probe.l_type != libc::F_UNLCK as libc::c_short)
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::fs::{File, TryLockError};
    use std::io;

    pub(super) fn try_lock(file: &File) -> io::Result<bool> {
        match file.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    pub(super) fn lock_blocking(file: &File) -> io::Result<()> {
        file.lock()
    }

    pub(super) fn is_locked(file: &File) -> io::Result<bool> {
        match file.try_lock_shared() {
            Ok(()) => {
                file.unlock()?;
                Ok(false)
            }
            Err(TryLockError::WouldBlock) => Ok(true),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r1() -> RunId {
        RunId::from("r1")
    }

    #[test]
    fn one_holder_at_a_time_and_others_can_ask_who_without_taking_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path(), &r1()).unwrap(), None);
        let lock = RunLock::try_acquire(dir.path(), &r1()).unwrap().unwrap();
        let me = format!("pid {}", std::process::id());
        assert_eq!(
            holder(dir.path(), &r1()).unwrap().as_deref(),
            Some(me.as_str())
        );
        // Asking did not take it: a second acquirer is still refused, and told who holds it.
        assert_eq!(
            RunLock::try_acquire(dir.path(), &r1())
                .unwrap()
                .unwrap_err(),
            me
        );
        // Another run is independent.
        assert!(
            RunLock::try_acquire(dir.path(), &RunId::from("r2"))
                .unwrap()
                .is_ok()
        );
        drop(lock);
        assert_eq!(holder(dir.path(), &r1()).unwrap(), None);
        assert!(RunLock::try_acquire(dir.path(), &r1()).unwrap().is_ok());
    }

    #[test]
    fn a_waiter_gets_the_lock_when_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::try_acquire(dir.path(), &r1()).unwrap().unwrap();
        let path = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let lock = RunLock::wait(&path, &r1()).unwrap();
            tx.send(()).unwrap();
            lock
        });
        // Still held: the waiter has not returned.
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err()
        );
        drop(lock);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the waiter takes the lock once it is free");
        let _held = waiter.join().unwrap();
        assert!(RunLock::try_acquire(dir.path(), &r1()).unwrap().is_err());
    }
}
