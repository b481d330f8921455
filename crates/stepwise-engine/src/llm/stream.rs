//! Reading a streamed reply: server-sent events (`data:` lines, events separated by a blank
//! line), the form OpenAI, Anthropic and Gemini all stream in. A server that answers with plain
//! JSON instead is read as a whole.

use stepwise_core::operation::{OperationError, OperationErrorKind};

/// A response body, event by event.
pub(super) struct Sse {
    response: reqwest::Response,
    buffer: Vec<u8>,
    ended: bool,
}

/// Whether a response streams events (else it is one JSON body).
pub(super) fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

impl Sse {
    pub(super) fn new(response: reqwest::Response) -> Sse {
        Sse {
            response,
            buffer: Vec::new(),
            ended: false,
        }
    }

    /// The next event's data (its `data:` lines joined), `None` at the end of the body.
    pub(super) async fn next(&mut self, who: &str) -> Result<Option<String>, OperationError> {
        loop {
            if let Some((end, gap)) = event_end(&self.buffer) {
                let event: Vec<u8> = self.buffer.drain(..end + gap).collect();
                if let Some(data) = data_of(&event[..end]) {
                    return Ok(Some(data));
                }
                continue;
            }
            if self.ended {
                if self.buffer.is_empty() {
                    return Ok(None);
                }
                let rest = std::mem::take(&mut self.buffer);
                return Ok(data_of(&rest));
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.extend_from_slice(&bytes),
                Ok(None) => self.ended = true,
                Err(e) => {
                    return Err(OperationError::new(
                        OperationErrorKind::Provider,
                        format!("the reply from {who} was cut off while streaming: {e}"),
                    ));
                }
            }
        }
    }
}

/// Where the first complete event in `buffer` ends, and the length of the blank line after it.
fn event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The data of one event, `None` when it has none (a comment, a keep-alive).
fn data_of(event: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(event);
    let data: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    (!data.is_empty()).then(|| data.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_on_blank_lines_and_their_data_joined() {
        let body = b"event: x\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: line1\r\ndata: line2\r\n\r\ndata: [DONE]";
        let (end, gap) = event_end(body).expect("an event");
        assert_eq!(data_of(&body[..end]).as_deref(), Some("{\"a\":1}"));
        let rest = &body[end + gap..];
        let (end, gap) = event_end(rest).expect("a comment");
        assert_eq!(data_of(&rest[..end]), None);
        let rest = &rest[end + gap..];
        let (end, _) = event_end(rest).expect("two data lines");
        assert_eq!(data_of(&rest[..end]).as_deref(), Some("line1\nline2"));
    }
}
