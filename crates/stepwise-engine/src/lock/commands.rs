//! The run's commands lock: a file each of a run's command supervisors holds, shared (a read
//! lock), from before its command starts until the command's whole tree is dead. An engine
//! recovering the run after a crash waits until nobody holds it (an exclusive lock could be
//! had): then nothing of any command started before the crash can still run.
//!
//! One file per run, made once by the driver that runs its first command (where a link or a
//! stranger's file in its place is refused; the supervisor opens it by path, never through a
//! link) and removed with the run's lock when the run finishes: a command costs its supervisor
//! an open, a lock and a close, and nothing more on the file system.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use stepwise_core::ids::{EventSeq, RunId};

use super::own_files::{open_dir_to_take, open_own_file, open_path_to_read};
use super::sys;
use crate::error::EngineError;

/// A run's commands lock, as its driver knows it.
#[derive(Debug)]
pub(crate) struct CommandsLock {
    dir: PathBuf,
    run_id: RunId,
    /// Made by this driver already.
    made: Mutex<bool>,
}

impl CommandsLock {
    pub(crate) fn new(dir: &Path, run_id: &RunId) -> CommandsLock {
        CommandsLock {
            dir: dir.to_path_buf(),
            run_id: run_id.clone(),
            made: Mutex::new(false),
        }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(file_name(&self.run_id))
    }

    /// The file, made if this driver has not made it yet, refusing anything planted in its
    /// place.
    pub(crate) fn make(&self) -> Result<PathBuf, EngineError> {
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        if !*made {
            let handle = open_dir_to_take(&self.dir)?;
            open_own_file(&handle, &self.dir, &file_name(&self.run_id))?;
            *made = true;
        }
        Ok(self.path())
    }

    /// Waits, up to `limit`, until no supervisor holds the file (each has killed its command's
    /// tree); `false` if one still does then.
    pub(crate) fn wait_unheld(&self, limit: std::time::Duration) -> bool {
        wait_unheld(&self.path(), limit)
    }

    /// For a run recovered from the crash of an engine from before the shared lock, which
    /// held a lock file per operation (`<run>.op-<op>.lock`): waits, up to `limit`, until
    /// nobody holds operation `op`'s, and removes it. `true` at once if there is none.
    pub(crate) fn wait_unheld_before_shared(
        &self,
        op: EventSeq,
        limit: std::time::Duration,
    ) -> bool {
        let path = self.dir.join(format!("{}.op-{op}.lock", self.run_id));
        if std::fs::symlink_metadata(&path).is_err() {
            return true;
        }
        let gone = wait_unheld(&path, limit);
        if gone {
            let _ = std::fs::remove_file(&path);
        }
        gone
    }
}

/// Removes the commands lock of a finished run (no command of it runs any more).
pub(crate) fn remove(dir: &Path, run_id: &RunId) {
    let _ = std::fs::remove_file(dir.join(file_name(run_id)));
}

fn file_name(run_id: &RunId) -> String {
    format!("{run_id}.commands.lock")
}

/// See [`CommandsLock::wait_unheld`].
pub(crate) fn wait_unheld(path: &Path, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        // A link or anything but a plain file there is no lock anyone holds.
        let held =
            open_path_to_read(path).is_some_and(|file| sys::is_locked(&file).unwrap_or(false));
        if !held {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        // The supervisors are killing their trees; they let go within moments.
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn it_is_made_once_and_a_link_in_its_place_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunId::from("r1");
        let lock = CommandsLock::new(dir.path(), &run);
        let path = lock.make().unwrap();
        assert_eq!(path, lock.path());
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        // Nothing holds it.
        assert!(lock.wait_unheld(std::time::Duration::ZERO));

        std::fs::remove_file(&path).unwrap();
        let target = dir.path().join("made-through-a-link");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let error = CommandsLock::new(dir.path(), &run).make().unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(!target.exists());
        remove(dir.path(), &run);
        assert!(std::fs::symlink_metadata(&path).is_err());
    }

    #[test]
    fn an_operation_lock_from_before_the_shared_one_is_waited_for_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunId::from("r1");
        let lock = CommandsLock::new(dir.path(), &run);
        let op = EventSeq::new(7);
        assert!(
            lock.wait_unheld_before_shared(op, std::time::Duration::ZERO),
            "none: at once"
        );
        let old = dir.path().join("r1.op-7.lock");
        let held = std::fs::File::create(&old).unwrap();
        // An open-file-description lock of its own, as an old supervisor held.
        let whole = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        nix::fcntl::fcntl(&held, nix::fcntl::FcntlArg::F_OFD_SETLK(&whole)).unwrap();
        assert!(
            !lock.wait_unheld_before_shared(op, std::time::Duration::from_millis(30)),
            "held by an old supervisor"
        );
        drop(held);
        assert!(lock.wait_unheld_before_shared(op, std::time::Duration::from_secs(5)));
        assert!(!old.exists(), "removed once free");
    }
}
