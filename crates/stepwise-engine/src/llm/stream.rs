//! Reading a streamed reply: server-sent events (`data:` lines, events separated by a blank
//! line), the form OpenAI, Anthropic and Gemini all stream in. A server that answers with plain
//! JSON instead is read as a whole.
//!
//! The parser reads each byte once as it arrives, whatever the chunks' sizes: it keeps only the
//! line not yet ended and the data of the event not yet ended, each at most
//! [`MAX_EVENT_BYTES`], and the stream as a whole may send at most [`MAX_STREAM_BYTES`].

use std::collections::VecDeque;
use std::time::Duration;

use super::body::{MAX_EVENT_BYTES, MAX_STREAM_BYTES, next_chunk, too_large};
use super::error::ProviderError;

/// A response body, event by event.
pub(super) struct Sse {
    response: reqwest::Response,
    idle: Duration,
    events: Events,
    received: u64,
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
    /// Reads `response`, waiting at most `idle` for each next piece of it.
    pub(super) fn new(response: reqwest::Response, idle: Duration) -> Sse {
        Sse {
            response,
            idle,
            events: Events::default(),
            received: 0,
            ended: false,
        }
    }

    /// The next event's data (its `data:` lines joined), `None` at the end of the body.
    pub(super) async fn next(&mut self, who: &str) -> Result<Option<String>, ProviderError> {
        loop {
            if let Some(data) = self.events.ready.pop_front() {
                return Ok(Some(data));
            }
            if self.ended {
                return Ok(None);
            }
            match next_chunk(&mut self.response, self.idle, who).await? {
                Some(bytes) => {
                    self.received += bytes.len() as u64;
                    if self.received > MAX_STREAM_BYTES {
                        return Err(too_large(who, "the stream", MAX_STREAM_BYTES));
                    }
                    self.events.feed(&bytes).map_err(|TooLong| {
                        too_large(who, "one event of the stream", MAX_EVENT_BYTES as u64)
                    })?;
                }
                None => {
                    self.events.end().map_err(|TooLong| {
                        too_large(who, "one event of the stream", MAX_EVENT_BYTES as u64)
                    })?;
                    self.ended = true;
                }
            }
        }
    }
}

/// A line or an event's data went past [`MAX_EVENT_BYTES`].
#[derive(Debug, PartialEq, Eq)]
struct TooLong;

/// The event parser: bytes in, complete events' data out.
#[derive(Default)]
struct Events {
    /// The line not yet ended.
    line: Vec<u8>,
    /// The data lines of the event not yet ended, joined; `None` before its first.
    data: Option<String>,
    /// A line ended in CR: a LF right after it (perhaps in the next chunk) ends nothing more.
    after_cr: bool,
    /// Events complete and not yet handed out.
    ready: VecDeque<String>,
}

impl Events {
    fn feed(&mut self, bytes: &[u8]) -> Result<(), TooLong> {
        let mut rest = bytes;
        if self.after_cr && !rest.is_empty() {
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
            self.after_cr = false;
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.extend_line(&rest[..i])?;
            self.end_line()?;
            let mut next = i + 1;
            if rest[i] == b'\r' {
                match rest.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            rest = &rest[next..];
        }
        self.extend_line(rest)
    }

    /// The body ended: a last line and event without their blank line still count.
    fn end(&mut self) -> Result<(), TooLong> {
        if !self.line.is_empty() {
            self.end_line()?;
        }
        if let Some(data) = self.data.take() {
            self.ready.push_back(data);
        }
        Ok(())
    }

    fn extend_line(&mut self, part: &[u8]) -> Result<(), TooLong> {
        if self.line.len() + part.len() > MAX_EVENT_BYTES {
            return Err(TooLong);
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), TooLong> {
        if self.line.is_empty() {
            if let Some(data) = self.data.take() {
                self.ready.push_back(data);
            }
            return Ok(());
        }
        // Other fields (`event:`, `id:`, `retry:`) and comments (`:`) carry nothing read here.
        if let Some(value) = self.line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            let value = String::from_utf8_lossy(value);
            match &mut self.data {
                Some(data) => {
                    if data.len() + 1 + value.len() > MAX_EVENT_BYTES {
                        return Err(TooLong);
                    }
                    data.push('\n');
                    data.push_str(&value);
                }
                None => self.data = Some(value.into_owned()),
            }
        }
        self.line.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(chunks: &[&[u8]]) -> Vec<String> {
        let mut events = Events::default();
        for chunk in chunks {
            events.feed(chunk).expect("within bounds");
        }
        events.end().expect("within bounds");
        events.ready.into_iter().collect()
    }

    const BODY: &[u8] = b"event: x\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: line1\r\ndata: line2\r\n\r\ndata:cr\r\rdata: [DONE]";

    #[test]
    fn events_are_split_on_blank_lines_and_their_data_joined() {
        let expected = ["{\"a\":1}", "line1\nline2", "cr", "[DONE]"];
        assert_eq!(events_of(&[BODY]), expected);
        // However the body is cut into chunks, byte by byte included.
        for at in 0..BODY.len() {
            assert_eq!(
                events_of(&[&BODY[..at], &BODY[at..]]),
                expected,
                "cut at {at}"
            );
        }
        let bytes: Vec<&[u8]> = BODY.chunks(1).collect();
        assert_eq!(events_of(&bytes), expected);
    }

    #[test]
    fn a_line_or_an_event_past_the_ceiling_is_refused() {
        let mut events = Events::default();
        let piece = vec![b'x'; 64 * 1024];
        events.feed(b"data: ").expect("a start");
        let fed = (0..=MAX_EVENT_BYTES / piece.len()).try_for_each(|_| events.feed(&piece));
        assert_eq!(fed, Err(TooLong), "one endless line");

        let mut events = Events::default();
        let line = format!("data: {}\n", "y".repeat(1000));
        let fed = (0..=MAX_EVENT_BYTES / 1000).try_for_each(|_| events.feed(line.as_bytes()));
        assert_eq!(fed, Err(TooLong), "one endless event of short lines");

        // Many events, each small, are no problem: only what is not yet ended is kept.
        let mut events = Events::default();
        for _ in 0..2 * MAX_EVENT_BYTES / 1000 {
            events.feed(line.as_bytes()).expect("a line");
            events.feed(b"\n").expect("the event's end");
            events.ready.clear();
        }
    }
}
