//! One driver per run. Only the holder of a run's lock performs its operations, and it
//! dispatches every operation it records at once; so after a crash (the lock is released by
//! the kernel when the process dies) an operation without a result is known to have been
//! dispatched and is recovered, never silently repeated by a second process.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::EngineError;

/// An exclusive lock on one run, held until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock for `run_id` in `dir`, or says which process holds it.
    pub fn acquire(dir: &Path, run_id: &str) -> Result<RunLock, EngineError> {
        std::fs::create_dir_all(dir).map_err(|source| EngineError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(format!("{run_id}.lock"));
        let io_error = |source| EngineError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(EngineError::RunLocked {
                    run_id: run_id.to_string(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io_error(source)),
        }
        // Say who holds it, for the message another process shows.
        file.set_len(0).map_err(io_error)?;
        file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        write!(file, "pid {}", std::process::id()).map_err(io_error)?;
        Ok(RunLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
