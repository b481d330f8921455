//! Reading what a provider sends, within bounds. A reply's body, one streamed event, a whole
//! stream and an error's body each have a ceiling, and every wait for the next bytes is bounded
//! by the provider's idle timeout: a server can make a call fail, never make it hold
//! unbounded memory or wait forever. A reply over a ceiling fails the call and nothing of it
//! is kept.

use std::time::Duration;

use super::error::ProviderError;
use super::http::reqwest_reason;

/// The most a reply's JSON body may hold, and the most text a streamed reply may add up to.
/// A template's result is at most 4 MiB too, so a longer reply could not be used anyway.
pub(super) const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;
/// The most one server-sent event (or one line of it) may hold.
pub(super) const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// The most a stream may send in all, events, keep-alives and comments together.
pub(super) const MAX_STREAM_BYTES: u64 = 64 * 1024 * 1024;
/// How much of an error's body is read: enough for the provider's message, of which a few
/// hundred characters are quoted.
const ERROR_BODY_BYTES: usize = 8 * 1024;

/// The next piece of a body, `None` at its end; waiting at most `idle` for it.
pub(super) async fn next_chunk(
    response: &mut reqwest::Response,
    idle: Duration,
    who: &str,
) -> Result<Option<impl std::ops::Deref<Target = [u8]> + use<>>, ProviderError> {
    match tokio::time::timeout(idle, response.chunk()).await {
        Err(_) => Err(silent(who, idle)),
        Ok(Ok(chunk)) => Ok(chunk),
        Ok(Err(e)) => Err(ProviderError::CutOff {
            who: who.to_string(),
            reason: reqwest_reason(&e),
        }),
    }
}

/// A reply's whole body: refused, before it is read if its length says so, when it is larger
/// than [`MAX_REPLY_BYTES`].
pub(super) async fn read_reply(
    mut response: reqwest::Response,
    idle: Duration,
    who: &str,
) -> Result<Vec<u8>, ProviderError> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_REPLY_BYTES as u64)
    {
        return Err(too_large(who, "the reply", MAX_REPLY_BYTES as u64));
    }
    let mut body = Vec::new();
    while let Some(chunk) = next_chunk(&mut response, idle, who).await? {
        if body.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(too_large(who, "the reply", MAX_REPLY_BYTES as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of an error's body, as much of it as arrives in time: it is only quoted.
pub(super) async fn read_excerpt(mut response: reqwest::Response, idle: Duration) -> String {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match tokio::time::timeout(idle, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = ERROR_BODY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// A server that sent nothing for `idle`.
pub(super) fn silent(who: &str, idle: Duration) -> ProviderError {
    ProviderError::Silent {
        who: who.to_string(),
        idle,
    }
}

/// `what` ("the reply", "one event of the stream", …) went past its ceiling of `limit` bytes.
pub(super) fn too_large(who: &str, what: &'static str, limit: u64) -> ProviderError {
    ProviderError::TooLarge {
        who: who.to_string(),
        what,
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_are_named_in_words() {
        let error = too_large(
            "provider `p` (http://x)",
            "the reply",
            MAX_REPLY_BYTES as u64,
        );
        assert_eq!(
            error.to_string(),
            "the reply from provider `p` (http://x) is larger than 4 MiB, the most Stepwise reads; nothing of it was kept"
        );
        assert_eq!(crate::error::bytes_in_words(1000), "1000 bytes");
    }
}
