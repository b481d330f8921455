//! Following the live progress of one operation, whichever process performs it (see
//! `progress`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use stepwise_core::ids::{EventSeq, RunId};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::engine::Engine;
use crate::progress::progress_path;

/// How often a follower looks for more progress while an operation runs.
const TAIL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a follower waits for a progress file to appear before it gives up on it.
const APPEAR_PATIENCE: Duration = Duration::from_secs(10);

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
            let open = tokio::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&self.path)
                .await;
            match open {
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
            path: progress_path(&self.ctx.db.lock_dir, run_id, op),
            offset: 0,
            seen: false,
            since: Instant::now(),
        }
    }
}
