//! Live progress of a running operation (a model's reply as it streams in), shared with every
//! process but never recorded: the executor appends it to a file beside the run's lock, and
//! followers tail that file until it goes away. The reply itself is recorded when it is
//! complete, as the operation's result.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stepwise_core::ids::{EventSeq, RunId};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::engine::Engine;

/// How often a follower looks for more progress while an operation runs.
const TAIL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a follower waits for a progress file to appear before it gives up on it.
const APPEAR_PATIENCE: Duration = Duration::from_secs(10);

/// Where operation `op` of a run writes its progress.
pub(crate) fn progress_path(lock_dir: &Path, run_id: &RunId, op: EventSeq) -> PathBuf {
    lock_dir.join(format!("{run_id}.op-{op}.progress"))
}

/// A sink for progress text: what is sent is appended to the operation's progress file by a
/// task of its own, so the sender never waits on the disk. The file is removed once the sender
/// is dropped and everything was written.
pub(crate) fn progress_sink(path: PathBuf) -> mpsc::UnboundedSender<String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .ok();
        while let Some(text) = rx.recv().await {
            if let Some(f) = file.as_mut()
                && (f.write_all(text.as_bytes()).await.is_err() || f.flush().await.is_err())
            {
                file = None;
            }
        }
        drop(file);
        let _ = tokio::fs::remove_file(&path).await;
    });
    tx
}

/// Following one operation's progress.
pub struct ProgressTail {
    path: PathBuf,
    offset: u64,
    seen: bool,
    since: Instant,
}

impl ProgressTail {
    /// The next piece of progress text, waiting for it; `None` once the operation is over
    /// (its file is gone) or never wrote any.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            match tokio::fs::File::open(&self.path).await {
                Ok(mut file) => {
                    self.seen = true;
                    if file
                        .seek(std::io::SeekFrom::Start(self.offset))
                        .await
                        .is_ok()
                    {
                        let mut bytes = Vec::new();
                        if file.read_to_end(&mut bytes).await.is_ok() && !bytes.is_empty() {
                            // Hold back a character cut in half by the read.
                            let keep = match std::str::from_utf8(&bytes) {
                                Ok(_) => bytes.len(),
                                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                                Err(_) => bytes.len(),
                            };
                            if keep > 0 {
                                self.offset += keep as u64;
                                return Some(String::from_utf8_lossy(&bytes[..keep]).into_owned());
                            }
                        }
                    }
                }
                Err(_) if self.seen || self.since.elapsed() > APPEAR_PATIENCE => return None,
                Err(_) => {}
            }
            tokio::time::sleep(TAIL_INTERVAL).await;
        }
    }
}

impl Engine {
    /// Follows the live progress of operation `op` of a run (a model's reply streaming in),
    /// whichever process performs it. Nothing of it is recorded; the complete reply is, as the
    /// operation's result.
    pub fn tail_progress(&self, run_id: &RunId, op: EventSeq) -> ProgressTail {
        ProgressTail {
            path: progress_path(&self.inner.db.lock_dir, run_id, op),
            offset: 0,
            seen: false,
            since: Instant::now(),
        }
    }
}
