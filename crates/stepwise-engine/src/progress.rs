//! Live progress of a running operation (a model's reply as it streams in, a command's
//! output), shared with every process but never recorded: the executor appends it to a file
//! beside the run's lock, and followers tail that file until it goes away. The reply itself is
//! recorded when it is complete, as the operation's result.
//!
//! A progress file is the engine's own: it is created new (a symlink planted at its path is
//! never followed) when its operation first has something to show (a model call that only
//! calls tools, or a command that prints nothing, makes none: a file made and removed costs a
//! turn of an agent more than its reply takes to parse), holds at most [`PROGRESS_LIMIT`]
//! bytes, and is removed when its operation ends, however it ends.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use stepwise_core::ids::{EventSeq, RunId};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

/// The most one operation's progress file holds: a model reply's first 2 MiB, a command's first
/// MiB of each stream. Beyond it, progress is dropped; the result is recorded whole (within its
/// own ceilings) all the same.
pub(crate) const PROGRESS_LIMIT: usize = 2 * 1024 * 1024;
/// How long the end of an operation waits for its progress to reach the file before removing
/// it (there is at most [`PROGRESS_LIMIT`] of it).
const FINISH_PATIENCE: Duration = Duration::from_secs(5);

/// Where operation `op` of a run writes its progress.
pub(crate) fn progress_path(lock_dir: &Path, run_id: &RunId, op: EventSeq) -> PathBuf {
    lock_dir.join(format!("{run_id}.op-{op}.progress"))
}

/// An operation's progress file, being written. What is sent is gathered in one buffer that a
/// task of its own appends to the file, so that the sender never waits on the disk, and memory
/// holds at most [`PROGRESS_LIMIT`] bytes of it however many pieces it comes in (a piece per
/// message would cost far more than its bytes: a million one-byte events were 75 MB).
/// [`ProgressSink::finish`] lets the writing end and removes the file; dropping the sink (the
/// operation was abandoned) removes it at once.
pub(crate) struct ProgressSink {
    path: PathBuf,
    pending: Arc<Pending>,
    /// Its writer once the file is made (at the first text sent), and whether making it was
    /// tried (it is, once).
    writer: Mutex<Writer>,
    /// The file was created and is not removed yet.
    created: AtomicBool,
    /// Bytes that may still be sent.
    room: AtomicUsize,
}

/// Where a sink's file is.
enum Writer {
    NotMade,
    Writing(tokio::task::JoinHandle<()>),
    /// Made and closed, or not made because it could not be.
    Done,
}

/// What was sent and not written yet, shared by the sink and its writer.
#[derive(Default)]
struct Pending {
    text: Mutex<String>,
    /// Raised after text is added or the sink closes; a raise with nobody waiting is kept for
    /// the writer's next wait, so none is lost between its look at the buffer and its wait.
    wake: Notify,
    closed: AtomicBool,
}

impl Pending {
    fn take(&self) -> String {
        std::mem::take(&mut *self.text.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ProgressSink {
    /// A sink for the progress file at `path`, made when the first text is sent. Progress is a
    /// convenience: when the file cannot be made, what is sent goes nowhere.
    pub(crate) fn create(path: PathBuf) -> ProgressSink {
        ProgressSink {
            path,
            pending: Arc::new(Pending::default()),
            writer: Mutex::new(Writer::NotMade),
            created: AtomicBool::new(false),
            room: AtomicUsize::new(PROGRESS_LIMIT),
        }
    }

    /// Makes the file and starts its writer, the first time; whether it is being written.
    fn open(&self) -> bool {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        match &*writer {
            Writer::Writing(_) => return true,
            Writer::Done => return false,
            Writer::NotMade => {}
        }
        let Some(file) = create_new(&self.path) else {
            *writer = Writer::Done;
            self.room.store(0, Ordering::Relaxed);
            return false;
        };
        self.created.store(true, Ordering::Relaxed);
        let mut file = tokio::fs::File::from_std(file);
        let pending = Arc::clone(&self.pending);
        *writer = Writer::Writing(tokio::spawn(async move {
            loop {
                let text = pending.take();
                if !text.is_empty() {
                    if file.write_all(text.as_bytes()).await.is_err() || file.flush().await.is_err()
                    {
                        return;
                    }
                    continue;
                }
                if pending.closed.load(Ordering::Acquire) {
                    return;
                }
                pending.wake.notified().await;
            }
        }));
        true
    }

    /// Appends `text`, or as much of it as the limit leaves room for (cut at a character).
    pub(crate) fn send(&self, text: &str) {
        if text.is_empty() || !self.open() {
            return;
        }
        let mut room = self.room.load(Ordering::Relaxed);
        let take = loop {
            let mut take = text.len().min(room);
            while !text.is_char_boundary(take) {
                take -= 1;
            }
            if take == 0 {
                return;
            }
            match self.room.compare_exchange_weak(
                room,
                room - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break take,
                Err(now) => room = now,
            }
        };
        self.pending
            .text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_str(&text[..take]);
        self.pending.wake.notify_one();
    }

    /// The operation is over: what was sent reaches the file (for followers to read it to the
    /// end), then the file is removed.
    pub(crate) async fn finish(mut self) {
        self.close().await;
        self.remove();
    }

    /// Stops taking progress and waits (a little) for what was sent to be written.
    async fn close(&mut self) {
        self.room.store(0, Ordering::Relaxed);
        self.pending.closed.store(true, Ordering::Release);
        self.pending.wake.notify_one();
        let writer = std::mem::replace(
            &mut *self.writer.lock().unwrap_or_else(PoisonError::into_inner),
            Writer::Done,
        );
        if let Writer::Writing(mut writer) = writer
            && tokio::time::timeout(FINISH_PATIENCE, &mut writer)
                .await
                .is_err()
        {
            writer.abort();
        }
    }

    fn remove(&mut self) {
        if self.created.swap(false, Ordering::Relaxed) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for ProgressSink {
    fn drop(&mut self) {
        // Not finished: the operation was dropped (abandoned, or its process is ending).
        let writer = std::mem::replace(
            &mut *self.writer.lock().unwrap_or_else(PoisonError::into_inner),
            Writer::Done,
        );
        if let Writer::Writing(writer) = writer {
            writer.abort();
        }
        self.remove();
    }
}

/// Removes the progress files of operations `ops` of `run_id` that a holder which died
/// (SIGKILL, a power cut) could not: called by a driver that has just taken the run's lock,
/// for the operations left unanswered (an operation's file is removed before its result is
/// recorded, so only those can have one).
pub(crate) fn remove_left_behind(
    lock_dir: &Path,
    run_id: &RunId,
    ops: impl Iterator<Item = EventSeq>,
) {
    for op in ops {
        // A link is removed, never followed.
        let _ = std::fs::remove_file(progress_path(lock_dir, run_id, op));
    }
}

/// A new file at `path`, never through a symlink. A file left there by a holder that died
/// (or planted) is removed first: removing a symlink removes the link, not what it points to.
fn create_new(path: &Path) -> Option<std::fs::File> {
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    };
    match open() {
        Ok(file) => Some(file),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(path).ok()?;
            open().ok()
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_progress_file_is_capped_never_follows_a_symlink_and_goes_away() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").expect("write");
        let path = dir.path().join("run.op-3.progress");
        std::os::unix::fs::symlink(&target, &path).expect("plant a symlink");

        let mut sink = ProgressSink::create(path.clone());
        let piece = "é".repeat(1000);
        for _ in 0..2 * PROGRESS_LIMIT / piece.len() {
            sink.send(&piece);
        }
        sink.close().await;
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep me");
        let written = std::fs::read_to_string(&path).expect("the progress file");
        assert!(written.len() <= PROGRESS_LIMIT && written.len() > PROGRESS_LIMIT - 4);
        assert!(!std::fs::symlink_metadata(&path).expect("meta").is_symlink());
        sink.finish().await;
        assert!(!path.exists(), "removed when the operation ends");

        // A million one-byte pieces are held as bytes, not as a million messages.
        let mut sink = ProgressSink::create(path.clone());
        for _ in 0..1_000_000 {
            sink.send("x");
        }
        assert!(sink.pending.text.lock().expect("buffer").capacity() <= PROGRESS_LIMIT);
        sink.close().await;
        assert_eq!(std::fs::read(&path).expect("progress").len(), 1_000_000);
        sink.finish().await;

        // Nothing to show, nothing made: a model call that only calls tools makes no file.
        let quiet = ProgressSink::create(path.clone());
        quiet.send("");
        assert!(!path.exists(), "made only when there is something to show");
        quiet.finish().await;

        // Dropped without finishing (the operation was abandoned): removed all the same.
        let sink = ProgressSink::create(path.clone());
        sink.send("partial");
        drop(sink);
        assert!(!path.exists());
    }
}
