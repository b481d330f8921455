//! A server's output, checked line by line before `rmcp` reads it. MCP over stdio is one
//! JSON-RPC message per line, and `rmcp` skips a line that is not JSON (or is past its length
//! limit) and waits on, so a server that has stopped speaking MCP would be found out only at a
//! timeout, minutes later. Here a line that is not JSON, or one longer than the limit, ends
//! the output: whatever waits on the server fails at once, as when it exits.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

/// `inner`, ended at its first line that is not a JSON value or is longer than `max` bytes.
pub(super) struct CheckedLines<R> {
    inner: R,
    /// The line being read, as far as it has come.
    line: Vec<u8>,
    max: usize,
    /// A line was not MCP: nothing more is read.
    ended: bool,
}

impl<R> CheckedLines<R> {
    pub(super) fn new(inner: R, max: usize) -> CheckedLines<R> {
        CheckedLines {
            inner,
            line: Vec::new(),
            max,
            ended: false,
        }
    }
}

/// Whether `line` can be a message: empty, or one JSON value.
fn is_json(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    line.is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

impl<R: AsyncRead + Unpin> AsyncRead for CheckedLines<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let mut keep = buf.filled().len();
        for (at, &byte) in buf.filled()[before..].iter().enumerate() {
            if byte == b'\n' {
                let json = is_json(&this.line);
                this.line.clear();
                if !json {
                    this.ended = true;
                    keep = before + at + 1;
                    break;
                }
            } else if this.line.len() >= this.max {
                this.ended = true;
                keep = before + at;
                break;
            } else {
                this.line.push(byte);
            }
        }
        // Nothing after the line that ended it is passed on.
        buf.set_filled(keep);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn read_all(input: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        CheckedLines::new(input, max)
            .read_to_end(&mut out)
            .await
            .expect("reads");
        out
    }

    #[tokio::test]
    async fn messages_pass_and_the_output_ends_at_the_first_line_that_is_not_one() {
        let good = b"{\"jsonrpc\":\"2.0\",\"id\":1}\n\n{\"a\":[1,2]}\r\n".to_vec();
        assert_eq!(read_all(&good, 100).await, good);
        let mut bad = good.clone();
        bad.extend_from_slice(b"this is not MCP\n{\"id\":2}\n");
        assert_eq!(
            read_all(&bad, 100).await,
            [good.as_slice(), b"this is not MCP\n"].concat()
        );
        // A line past the limit ends it too, where the limit is passed.
        let long = [b"{\"x\":\"".as_slice(), &[b'y'; 200], b"\"}\n"].concat();
        assert_eq!(read_all(&long, 100).await, long[..100].to_vec());
    }
}
