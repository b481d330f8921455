//! Who drives a run. Only the holder of a run's lock performs its operations, and it dispatches
//! every operation it records at once; so after a crash (the kernel releases the lock when the
//! process dies) an operation without a result is known to have been dispatched and is
//! recovered, never silently repeated by a second process.
//!
//! On Linux the lock is an open-file-description lock (`F_OFD_SETLK`): it can be waited for
//! (`F_OFD_SETLKW`, so a standby process takes a run over the moment its holder dies) and asked
//! about without taking it (`F_OFD_GETLK`, so listing runs never gets in a driver's way).
//! Elsewhere it is a `flock`, and asking about it takes it for an instant.
//!
//! The lock files live in a directory beside the database that only its user may write; they
//! are opened so that nothing planted there is followed (see `own_files`).

mod commands;
mod own_files;
#[cfg(feature = "postgres")]
mod shared;

#[cfg(test)]
pub(crate) use commands::wait_unheld as wait_commands_unheld;
pub(crate) use commands::{CommandsLock, remove as remove_commands_lock};

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use stepwise_core::ids::RunId;

/// A file by its path, to read: never through a link, and only a plain file.
pub(crate) use self::own_files::open_path_to_read;
use self::own_files::{io_error, open_dir_to_ask, open_dir_to_take, open_own_file, open_to_read};
use crate::error::EngineError;

/// At most this much of a lock file is read to say who holds it.
const HOLDER_TEXT_MAX: u64 = 128;

/// An exclusive lock on one run, held until dropped.
#[derive(Debug)]
pub(crate) struct RunLock {
    held: Held,
}

#[derive(Debug)]
enum Held {
    /// The run's lock file, locked.
    File { file: File, path: PathBuf },
    /// A hold on the PostgreSQL server (see `shared`).
    #[cfg(feature = "postgres")]
    Shared(shared::Hold),
}

/// Who drives which run: lock files in the locks directory (a SQLite database), or holds on
/// the server (a PostgreSQL database, whose runs may be driven from any machine).
#[derive(Clone)]
pub(crate) enum Holds {
    Files(PathBuf),
    #[cfg(feature = "postgres")]
    Shared(Arc<shared::SharedHolds>),
}

impl Holds {
    /// The holds of the database `file` opened, whose lock files (if any) live in `lock_dir`;
    /// holds on a server name this machine `host`.
    pub(crate) fn for_database(
        file: &Arc<crate::db::DbFile>,
        lock_dir: &Path,
        host: &str,
    ) -> Result<Holds, EngineError> {
        #[cfg(feature = "postgres")]
        if file.shared().is_some() {
            return Ok(Holds::Shared(shared::SharedHolds::start(file, host)?));
        }
        let _ = (file, host);
        Ok(Holds::Files(lock_dir.to_path_buf()))
    }

    /// Takes the run if nobody holds it now; otherwise says who does. Blocks briefly (a lock
    /// file, or a round trip to the server).
    pub(crate) fn try_acquire(
        &self,
        run_id: &RunId,
        now_ms: i64,
    ) -> Result<Result<RunLock, String>, EngineError> {
        match self {
            Holds::Files(dir) => {
                let _ = now_ms;
                RunLock::try_acquire(dir, run_id)
            }
            #[cfg(feature = "postgres")]
            Holds::Shared(holds) => Ok(holds.try_take(run_id, now_ms)?.map(|hold| RunLock {
                held: Held::Shared(hold),
            })),
        }
    }

    /// Who holds the run (`pid 4242`, `pid 4242 on buildbox`), or `None` when nobody does;
    /// `store` is a connection of the engine's, which asks the server.
    pub(crate) fn holder(
        &self,
        store: &stepwise_store::Store,
        run_id: &RunId,
    ) -> Result<Option<String>, EngineError> {
        match self {
            Holds::Files(dir) => {
                let _ = store;
                holder(dir, run_id)
            }
            #[cfg(feature = "postgres")]
            Holds::Shared(_) => shared::SharedHolds::holder(store, run_id),
        }
    }

    /// What this process's holds say of it, and what it signs the commands it handles with:
    /// `pid 4242`, or on a PostgreSQL server (runs held from any machine) `pid 4242 on HOST`.
    pub(crate) fn me(&self) -> String {
        match self {
            Holds::Files(_) => format!("pid {}", std::process::id()),
            #[cfg(feature = "postgres")]
            Holds::Shared(holds) => holds.me().to_owned(),
        }
    }

    /// Whether runs are held on a database server (which may go away and come back), not by
    /// lock files.
    pub(crate) fn is_shared(&self) -> bool {
        !matches!(self, Holds::Files(_))
    }

    /// The holds on a PostgreSQL server, if that is where runs are held.
    #[cfg(feature = "postgres")]
    pub(crate) fn shared(&self) -> Option<&Arc<shared::SharedHolds>> {
        match self {
            Holds::Files(_) => None,
            Holds::Shared(holds) => Some(holds),
        }
    }
}

impl RunLock {
    /// Takes the lock for `run_id` in `dir` if nobody holds it; otherwise says who does.
    pub(crate) fn try_acquire(
        dir: &Path,
        run_id: &RunId,
    ) -> Result<Result<RunLock, String>, EngineError> {
        let mut candidate = LockCandidate::open(dir, run_id)?;
        match candidate.try_take()? {
            Some(lock) => Ok(Ok(lock)),
            None => Ok(Err(candidate.holder())),
        }
    }

    /// Says who holds it, for the messages another process shows.
    fn claim(mut file: File, path: &Path) -> Result<RunLock, EngineError> {
        let result = (|| {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            write!(file, "pid {}", std::process::id())
        })();
        result.map_err(|source| io_error(path, source))?;
        Ok(RunLock {
            held: Held::File {
                file,
                path: path.to_path_buf(),
            },
        })
    }

    /// Whether the run is no longer held by this lock: a hold on the server whose connection
    /// ended (a lock file is held until dropped).
    pub(crate) fn is_lost(&self) -> bool {
        match &self.held {
            Held::File { .. } => false,
            #[cfg(feature = "postgres")]
            Held::Shared(hold) => hold.is_lost(),
        }
    }

    /// Removes the lock file while still holding it: for a finished run, which nobody will
    /// drive again. Whoever opened the file before it went finds, once they have the lock,
    /// that it is no longer the file at the path, and opens that one instead (see
    /// [`LockCandidate::try_take`]), so two processes never both think they hold a run.
    pub(crate) fn remove(self) {
        match &self.held {
            Held::File { file, path } => {
                if same_file_at(file, path) {
                    let _ = std::fs::remove_file(path);
                }
            }
            // A hold has no file: letting go is all there is to it.
            #[cfg(feature = "postgres")]
            Held::Shared(_) => {}
        }
    }
}

/// A run's lock file, open, for a process that waits to take it (see `locks_dir_watch`).
#[derive(Debug)]
pub(crate) struct LockCandidate {
    /// `None` once its lock was taken: the file went with it, and a later try opens it anew.
    file: Option<File>,
    path: PathBuf,
    dir: PathBuf,
    run_id: RunId,
}

/// How often a lock file is opened again because it was removed (its run finished) between
/// being opened and being locked; more would mean something keeps removing it.
const REOPENS: usize = 3;

impl LockCandidate {
    pub(crate) fn open(dir: &Path, run_id: &RunId) -> Result<LockCandidate, EngineError> {
        let (file, path) = open_run_lock(dir, run_id)?;
        Ok(LockCandidate {
            file: Some(file),
            path,
            dir: dir.to_path_buf(),
            run_id: run_id.clone(),
        })
    }

    /// The lock file's name in the locks directory.
    pub(crate) fn file_name(&self) -> Option<&std::ffi::OsStr> {
        self.path.file_name()
    }

    /// Takes the lock if nobody holds it now; `None` if somebody does.
    pub(crate) fn try_take(&mut self) -> Result<Option<RunLock>, EngineError> {
        for _ in 0..REOPENS {
            let file = match self.file.take() {
                Some(file) => file,
                None => open_run_lock(&self.dir, &self.run_id)?.0,
            };
            if !sys::try_lock(&file).map_err(|source| io_error(&self.path, source))? {
                self.file = Some(file);
                return Ok(None);
            }
            if same_file_at(&file, &self.path) {
                // The lock belongs to this open file, which goes to the lock taken. A later
                // try opens the file anew, not now: closing a descriptor opened for writing
                // would tell every process waiting for the run that its holder let go.
                return RunLock::claim(file, &self.path).map(Some);
            }
            // The file was removed (its run finished) after it was opened: the lock taken is
            // on a file nobody else will open. The next round opens the one at the path.
        }
        Err(EngineError::UnsafeFile {
            what: "run lock",
            path: self.path.clone(),
            problem: "keeps being removed while it is taken".into(),
        })
    }
}

/// Whether `file` is still the file at `path` (nothing removed it or put another there).
fn same_file_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(open), Ok(there)) => open.dev() == there.dev() && open.ino() == there.ino(),
        _ => false,
    }
}

/// Makes the locks directory (0700) if it is missing, refusing anything unsafe there.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), EngineError> {
    open_dir_to_take(dir).map(drop)
}

/// Who holds the run's lock (`pid 4242`), or `None` when nobody does. Never takes the lock on
/// Linux, so it cannot make a driver starting at the same moment fail.
/// Opens the file for reading only, so that asking works where the database is read-only.
pub(crate) fn holder(dir: &Path, run_id: &RunId) -> Result<Option<String>, EngineError> {
    let name = run_lock_name(run_id);
    let opened = open_dir_to_ask(dir).and_then(|handle| match handle {
        Some(handle) => open_to_read(&handle, dir, &name),
        None => Ok(None),
    });
    let mut file = match opened {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(None),
        // A reader who may not look at the lock (another user's) cannot tell; it does not
        // claim that nobody drives the run.
        Err(EngineError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            return Ok(Some(UNKNOWN_HOLDER.into()));
        }
        Err(error) => return Err(error),
    };
    if sys::is_locked(&file).map_err(|source| io_error(&dir.join(&name), source))? {
        Ok(Some(holder_text(&mut file)))
    } else {
        Ok(None)
    }
}

/// Who holds a run's lock, to a reader who may not read it.
const UNKNOWN_HOLDER: &str = "unknown (its lock cannot be read by this user)";

fn run_lock_name(run_id: &RunId) -> String {
    format!("{run_id}.lock")
}

/// The run's lock file, opened to be locked and written (created if need be).
fn open_run_lock(dir: &Path, run_id: &RunId) -> Result<(File, PathBuf), EngineError> {
    let handle = open_dir_to_take(dir)?;
    let name = run_lock_name(run_id);
    let file = open_own_file(&handle, dir, &name)?;
    Ok((file, dir.join(name)))
}

impl LockCandidate {
    /// Who holds the lock, as its holder wrote it (after a try that found it held).
    fn holder(&mut self) -> String {
        match self.file.as_mut() {
            Some(file) => holder_text(file),
            None => nobody_named(),
        }
    }
}

fn nobody_named() -> String {
    "another stepwise process".to_string()
}

fn holder_text(file: &mut File) -> String {
    let mut holder = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = Read::by_ref(file)
        .take(HOLDER_TEXT_MAX)
        .read_to_string(&mut holder);
    let holder = holder.trim();
    if holder.is_empty() {
        nobody_named()
    } else {
        holder.to_string()
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

    pub(super) fn is_locked(file: &File) -> io::Result<bool> {
        // Exclusive, so that a shared holder (a command's supervisor) counts too.
        match file.try_lock() {
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
    fn a_candidate_takes_the_lock_once_free_and_never_a_removed_file() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::try_acquire(dir.path(), &r1()).unwrap().unwrap();
        let mut candidate = LockCandidate::open(dir.path(), &r1()).unwrap();
        assert!(candidate.try_take().unwrap().is_none(), "still held");
        drop(lock);
        let taken = candidate.try_take().unwrap().expect("free now");
        // Its file went with the lock, nothing was opened (and closed) again in its place.
        assert!(candidate.file.is_none());
        assert!(RunLock::try_acquire(dir.path(), &r1()).unwrap().is_err());
        assert!(
            candidate.try_take().unwrap().is_none(),
            "held by the candidate's own lock"
        );

        // The holder of a finished run removes the file: a waiter that opened it before finds
        // the one at the path instead, so that it and a newcomer cannot both hold the run.
        let mut early = LockCandidate::open(dir.path(), &r1()).unwrap();
        taken.remove();
        assert!(!dir.path().join(format!("{}.lock", r1())).exists());
        let again = early.try_take().unwrap().expect("free");
        assert!(dir.path().join(format!("{}.lock", r1())).exists());
        assert!(
            RunLock::try_acquire(dir.path(), &r1()).unwrap().is_err(),
            "the lock taken is the one at the path"
        );
        drop(again);
    }

    /// What is planted where a lock file will be opened is refused, never followed, written
    /// or waited on; the file it points at is left as it was.
    #[test]
    fn links_hard_links_and_fifos_at_a_lock_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::create_dir(&locks).unwrap();
        let lock = locks.join("r1.lock");
        let planted: [(&str, &dyn Fn()); 3] = [
            ("symbolic link", &|| {
                std::os::unix::fs::symlink(&victim, &lock).unwrap()
            }),
            ("hard link", &|| std::fs::hard_link(&victim, &lock).unwrap()),
            ("fifo", &|| {
                nix::unistd::mkfifo(&lock, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .unwrap();
            }),
        ];
        for (what, plant) in planted {
            plant();
            let error = RunLock::try_acquire(&locks, &r1()).unwrap_err();
            assert!(
                matches!(error, EngineError::UnsafeFile { ref path, .. } if *path == lock),
                "{what}: {error}"
            );
            assert!(error.to_string().contains("remove it"), "{what}: {error}");
            if what == "symbolic link" {
                assert!(holder(&locks, &r1()).is_err(), "{what}");
            }
            std::fs::remove_file(&lock).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn the_locks_directory_is_made_private_and_refused_as_a_link_or_open_to_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        let _lock = RunLock::try_acquire(&locks, &r1()).unwrap().unwrap();
        let mode = std::fs::metadata(&locks).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);

        std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o770)).unwrap();
        let error = RunLock::try_acquire(&locks, &RunId::from("r2")).unwrap_err();
        assert!(error.to_string().contains("chmod 700"), "{error}");
        // Asking is refused too: what others could plant there is not read either.
        assert!(holder(&locks, &r1()).is_err());

        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(&elsewhere, &linked).unwrap();
        let error = RunLock::try_acquire(&linked, &r1()).unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }
}
