//! What every HTTP provider shares: the API key (read from the environment at call time, never
//! printed), and sending with retries, an answer that is not a success becoming a typed
//! `ProviderError` (what its status and body mean is the protocol's to say).

use std::time::Duration;

use super::body;
use super::client::{MAX_REDIRECTS, same_origin};
use super::error::{ProviderError, Refusal};

/// Attempts per call, the first included, when the provider is busy or unreachable.
const MAX_ATTEMPTS: u32 = 4;
/// The first retry waits about this long; each next one twice as long.
const BASE_DELAY: Duration = Duration::from_millis(500);
/// No wait is longer than this, whatever `Retry-After` says.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// How much of an error body is quoted.
const BODY_EXCERPT: usize = 300;

/// An API key, read from the variable a provider names when a call is made. It is never
/// printed: `Debug` hides it and every error made while it was in use has it replaced.
pub(crate) struct Secret {
    value: Option<String>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

impl Secret {
    /// The key in variable `var` (none when the provider names no variable).
    pub(crate) fn from_env(var: Option<&str>) -> Result<Secret, ProviderError> {
        let Some(var) = var else {
            return Ok(Secret { value: None });
        };
        match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Secret { value: Some(value) }),
            _ => Err(ProviderError::KeyNotSet {
                var: var.to_string(),
            }),
        }
    }

    pub(crate) fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// `text` with the key replaced, wherever it appears.
    pub(crate) fn redact(&self, text: &str) -> String {
        match &self.value {
            Some(key) if key.len() >= 4 => text.replace(key.as_str(), "[api key]"),
            _ => text.to_string(),
        }
    }
}

/// Sends the request `build` makes, again on connection errors and on what `classify` says is
/// worth asking again (a busy or failing server), waiting with exponential backoff and jitter,
/// or as long as `Retry-After` says. Returns a 2xx response and the attempts it took; any other
/// answer is an error naming `who`, with what `classify` made of its status and body. A server
/// that sends nothing for `idle` is not waited for longer, nor asked again.
pub(crate) async fn send(
    build: impl Fn() -> reqwest::RequestBuilder,
    who: &str,
    classify: impl Fn(u16, &str) -> Refusal,
    idle: Duration,
) -> Result<(reqwest::Response, u32), ProviderError> {
    let mut attempt = 1;
    loop {
        let Ok(sent) = tokio::time::timeout(idle, build().send()).await else {
            return Err(body::silent(who, idle));
        };
        let (error, wait) = match sent {
            Err(e) => (
                ProviderError::Unreachable {
                    who: who.to_string(),
                    reason: reqwest_reason(&e),
                    attempts: attempt,
                    transient: e.is_connect() || e.is_timeout() || e.is_request(),
                },
                backoff(attempt),
            ),
            Ok(response) if response.status().is_success() => return Ok((response, attempt)),
            Ok(response) => {
                if let Some(error) = redirect_error(who, &response) {
                    return Err(error);
                }
                let status = response.status().as_u16();
                let wait = retry_after(&response).unwrap_or_else(|| backoff(attempt));
                let body = body::read_excerpt(response, idle).await;
                let error = ProviderError::Status {
                    who: who.to_string(),
                    status,
                    refusal: classify(status, &body),
                    said: provider_message(&body),
                    attempts: attempt,
                };
                (error, wait)
            }
        };
        if !error.retryable() || attempt >= MAX_ATTEMPTS {
            return Err(error);
        }
        tokio::time::sleep(wait.min(MAX_DELAY)).await;
        attempt += 1;
    }
}

/// A redirect the client did not follow (see `client.rs`): to another origin, or one too many.
fn redirect_error(who: &str, response: &reqwest::Response) -> Option<ProviderError> {
    let status = response.status();
    if !status.is_redirection() {
        return None;
    }
    let who = who.to_string();
    let status = status.as_u16();
    let target = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .and_then(|location| response.url().join(location).ok());
    let Some(target) = target else {
        return Some(ProviderError::RedirectNowhere { who, status });
    };
    let mut to = target.to_string();
    if to.len() > 200 {
        let mut end = 200;
        while !to.is_char_boundary(end) {
            end -= 1;
        }
        to.truncate(end);
        to.push('…');
    }
    Some(if same_origin(response.url(), &target) {
        ProviderError::TooManyRedirects {
            who,
            status,
            limit: MAX_REDIRECTS,
            to,
        }
    } else {
        ProviderError::RedirectedAway { who, status, to }
    })
}

/// The provider's own words about an error: `error.message` (or `error` as text) from a JSON
/// body, else the start of the body.
fn provider_message(body: &str) -> String {
    let said = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let error = v.get("error")?;
            error
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
                .or_else(|| error.as_str().map(str::to_string))
        })
        .unwrap_or_else(|| body.trim().to_string());
    let mut said: String = said.chars().filter(|c| !c.is_control()).collect();
    if said.len() > BODY_EXCERPT {
        let mut end = BODY_EXCERPT;
        while !said.is_char_boundary(end) {
            end -= 1;
        }
        said.truncate(end);
        said.push('…');
    }
    said
}

/// `Retry-After` in seconds (HTTP dates are not worth the parse here: they fall back to the
/// backoff).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(MAX_DELAY.as_secs_f64())))
}

/// The wait before attempt `attempt + 1`: exponential, with jitter so that many clients do not
/// come back at the same instant.
fn backoff(attempt: u32) -> Duration {
    let full = BASE_DELAY
        .saturating_mul(1 << attempt.saturating_sub(1).min(10))
        .min(MAX_DELAY);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    full / 2 + full / 2 * jitter / 1000
}

pub(super) fn reqwest_reason(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut reason = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        error.to_string()
    };
    // The innermost cause says what really happened (connection refused, DNS failure).
    let mut source = error.source();
    let mut innermost = None;
    while let Some(s) = source {
        innermost = Some(s.to_string());
        source = s.source();
    }
    if let Some(cause) = innermost
        && !reason.contains(&cause)
    {
        reason = format!("{reason}: {cause}");
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_never_survives_in_an_error() {
        let secret = Secret {
            value: Some("sk-planted-1234".into()),
        };
        let error = ProviderError::Malformed {
            who: "provider `p`".into(),
            what: "bad key sk-planted-1234 at http://x/?key=sk-planted-1234".into(),
        };
        let redacted = error.into_operation_error(|text| secret.redact(text));
        assert!(
            !redacted.message.contains("sk-planted"),
            "{}",
            redacted.message
        );
        assert_eq!(format!("{secret:?}"), "Secret(hidden)");
    }

    #[test]
    fn provider_messages_are_quoted_briefly() {
        assert_eq!(
            provider_message(r#"{"error": {"message": "model not found"}}"#),
            "model not found"
        );
        assert_eq!(provider_message(r#"{"error": "overloaded"}"#), "overloaded");
        assert!(provider_message(&"x".repeat(1000)).len() <= BODY_EXCERPT + 3);
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(backoff(1) <= BASE_DELAY);
        assert!(backoff(1) >= BASE_DELAY / 2);
        assert!(backoff(20) <= MAX_DELAY);
    }
}
