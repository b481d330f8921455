//! Capturing a command's output: the first bytes kept, all of them counted, decoded as text
//! without showing a character split by the cut; optionally all of it streamed to a file as it
//! is read, never held in memory; and the first of it sent live, as progress that followers
//! see while the command runs (never recorded: the result is).

use std::io;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::progress::ProgressSink;

const READ_CHUNK: usize = 64 * 1024;

/// How much of each stream is sent live; the rest is only counted (and saved, if asked).
const LIVE_LIMIT: u64 = 1024 * 1024;

/// Where a command's output goes live: a progress file (made on the first byte: a command
/// that prints nothing costs nothing), shared by stdout and stderr until the command is over.
/// Clones share it; the executor keeps one to [`Live::finish`] it.
#[derive(Clone)]
pub(crate) struct Live(Arc<Mutex<Option<ProgressSink>>>);

impl Live {
    pub(crate) fn new(path: std::path::PathBuf) -> Live {
        Live(Arc::new(Mutex::new(Some(ProgressSink::create(path)))))
    }

    fn send(&self, bytes: &[u8]) {
        let Ok(sink) = self.0.lock() else { return };
        if let Some(progress) = &*sink {
            progress.send(&String::from_utf8_lossy(bytes));
        }
    }

    /// The command is over: its progress file is written out and removed.
    pub(crate) async fn finish(&self) {
        let sink = match self.0.lock() {
            Ok(mut sink) => sink.take(),
            Err(_) => return,
        };
        if let Some(progress) = sink {
            progress.finish().await;
        }
    }
}

/// One output stream: the first `limit` bytes kept, all of them counted.
pub(super) struct Capture {
    kept: Vec<u8>,
    limit: usize,
    total: u64,
    /// Where every byte also goes, until writing fails.
    sink: Option<tokio::fs::File>,
    sink_error: Option<String>,
}

impl Capture {
    pub(super) fn new(limit: usize, sink: Option<tokio::fs::File>) -> Self {
        Capture {
            kept: Vec::new(),
            limit,
            total: 0,
            sink,
            sink_error: None,
        }
    }

    /// Reads the pipe to its end. Reading goes on past the limit so that the command never
    /// blocks on a full pipe and the total is exact.
    pub(super) async fn drain<R: AsyncRead + Unpin>(
        &mut self,
        pipe: Option<R>,
        live: Option<&Live>,
    ) {
        let Some(mut pipe) = pipe else { return };
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(live) = live
                        && self.total < LIVE_LIMIT
                    {
                        let room = usize::try_from(LIVE_LIMIT - self.total).unwrap_or(n);
                        live.send(&buf[..n.min(room)]);
                    }
                    self.total += n as u64;
                    let room = self.limit.saturating_sub(self.kept.len());
                    self.kept.extend_from_slice(&buf[..n.min(room)]);
                    if let Some(sink) = &mut self.sink
                        && let Err(e) = sink.write_all(&buf[..n]).await
                    {
                        self.sink_error = Some(e.to_string());
                        self.sink = None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "stopped reading command output");
                    break;
                }
            }
        }
    }

    /// Makes what was streamed to the file durable; the error, if writing it failed.
    pub(super) async fn close_sink(&mut self) -> Option<String> {
        if let Some(mut sink) = self.sink.take() {
            let flushed = match sink.flush().await {
                Ok(()) => sink.sync_all().await,
                Err(e) => Err(e),
            };
            if let Err(e) = flushed {
                self.sink_error.get_or_insert(e.to_string());
            }
        }
        self.sink_error.take()
    }

    pub(super) fn finish(self) -> (String, u64) {
        let cut = self.total > self.kept.len() as u64;
        (decode(&self.kept, self.limit, cut), self.total)
    }
}

/// Decodes kept output: invalid UTF-8 becomes U+FFFD, and the text is cut at a character
/// boundary within `limit` bytes. When the stream was `cut`, a character split by the cut is
/// dropped rather than shown as garbage.
fn decode(bytes: &[u8], limit: usize, cut: bool) -> String {
    let bytes = if cut {
        without_split_char(bytes)
    } else {
        bytes
    };
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    // Replacement characters are wider than the bytes they replace, so cut again.
    let mut end = limit.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// `bytes` without a trailing incomplete UTF-8 sequence (such a sequence is at most 3 bytes).
fn without_split_char(bytes: &[u8]) -> &[u8] {
    for start in (bytes.len().saturating_sub(3)..bytes.len()).rev() {
        // The last byte that is not a continuation byte starts the final sequence.
        if bytes[start] & 0xC0 != 0x80 {
            return match std::str::from_utf8(&bytes[start..]) {
                Err(e) if e.error_len().is_none() => &bytes[..start],
                _ => bytes,
            };
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decoding_cuts_at_character_boundaries() {
        assert_eq!(decode("héllo".as_bytes(), 2, true), "h");
        assert_eq!(decode(b"ab\xc3", 10, false), "ab\u{FFFD}");
        assert_eq!(decode(b"\xff\xff", 4, false), "\u{FFFD}");
        assert_eq!(decode(b"a\xff", 10, true), "a\u{FFFD}");
    }
}
