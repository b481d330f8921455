//! What every HTTP provider shares: the API key (read from the environment at call time, never
//! printed), sending with retries, and turning HTTP failures into errors people can act on.

use std::time::Duration;

use stepwise_core::operation::{OperationError, OperationErrorKind};

use super::body;
use super::client::{MAX_REDIRECTS, same_origin};

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
    pub(crate) fn from_env(var: Option<&str>) -> Result<Secret, OperationError> {
        let Some(var) = var else {
            return Ok(Secret { value: None });
        };
        match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Secret { value: Some(value) }),
            _ => Err(OperationError::new(
                OperationErrorKind::ProviderRefused,
                format!(
                    "the API key variable `{var}` is not set in the environment of this stepwise process"
                ),
            )),
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

    pub(crate) fn redact_error(&self, error: OperationError) -> OperationError {
        OperationError::new(error.kind, self.redact(&error.message))
    }
}

/// Whether server errors (5xx) are retried: not while trying out which form of a request a
/// server accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnServerError {
    Retry,
    GiveUp,
}

/// Sends the request `build` makes, again on connection errors, 429 and 5xx, waiting with
/// exponential backoff and jitter, or as long as `Retry-After` says. Returns a 2xx response and
/// the attempts it took; any other answer is an error naming `who` and the status. A server
/// that sends nothing for `idle` is not waited for longer, nor asked again.
pub(crate) async fn send(
    build: impl Fn() -> reqwest::RequestBuilder,
    who: &str,
    on_server_error: OnServerError,
    idle: Duration,
) -> Result<(reqwest::Response, u32), OperationError> {
    let mut attempt = 1;
    loop {
        let last = attempt >= MAX_ATTEMPTS;
        let Ok(sent) = tokio::time::timeout(idle, build().send()).await else {
            return Err(body::silent(who, idle));
        };
        match sent {
            Err(e) => {
                let transient = e.is_connect() || e.is_timeout() || e.is_request();
                if transient && !last {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                return Err(OperationError::new(
                    OperationErrorKind::Provider,
                    format!(
                        "could not reach {who} ({}) after {attempt} attempt{}",
                        reqwest_reason(&e),
                        plural(attempt)
                    ),
                ));
            }
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    return Ok((response, attempt));
                }
                if let Some(error) = redirect_error(who, &response) {
                    return Err(error);
                }
                let busy = status.as_u16() == 429
                    || (status.is_server_error() && on_server_error == OnServerError::Retry);
                if busy && !last {
                    let wait = retry_after(&response).unwrap_or_else(|| backoff(attempt));
                    tokio::time::sleep(wait.min(MAX_DELAY)).await;
                    attempt += 1;
                    continue;
                }
                let body = body::read_excerpt(response, idle).await;
                return Err(status_error(who, status, &body, attempt));
            }
        }
    }
}

/// Reads a 2xx response's body as JSON, within [`body::MAX_REPLY_BYTES`].
pub(crate) async fn json_body(
    response: reqwest::Response,
    who: &str,
    idle: Duration,
) -> Result<serde_json::Value, OperationError> {
    let bytes = body::read_reply(response, idle, who).await?;
    serde_json::from_slice(&bytes).map_err(|e| malformed(who, &format!("it is not JSON ({e})")))
}

/// A redirect the client did not follow (see `client.rs`): to another origin, or one too many.
fn redirect_error(who: &str, response: &reqwest::Response) -> Option<OperationError> {
    let status = response.status();
    if !status.is_redirection() {
        return None;
    }
    let code = status.as_u16();
    let target = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .and_then(|location| response.url().join(location).ok());
    let Some(target) = target else {
        return Some(OperationError::new(
            OperationErrorKind::ProviderRefused,
            format!("{who} answered with a redirect (HTTP {code}) that says nowhere to go"),
        ));
    };
    let mut shown = target.to_string();
    if shown.len() > 200 {
        let mut end = 200;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
        shown.push('…');
    }
    let message = if same_origin(response.url(), &target) {
        format!(
            "{who} redirected the call more than {MAX_REDIRECTS} times (HTTP {code}, last to {shown})"
        )
    } else {
        format!(
            "{who} redirected the call (HTTP {code}) to {shown}, which is not the server its `base_url` names; the redirect was not followed, so that the API key never leaves for another server"
        )
    };
    Some(OperationError::new(
        OperationErrorKind::ProviderRefused,
        message,
    ))
}

/// An answer that does not have the shape the protocol promises.
pub(crate) fn malformed(who: &str, what: &str) -> OperationError {
    OperationError::new(
        OperationErrorKind::Provider,
        format!("malformed answer from {who}: {what}"),
    )
}

fn status_error(
    who: &str,
    status: reqwest::StatusCode,
    body: &str,
    attempts: u32,
) -> OperationError {
    let said = provider_message(body);
    let code = status.as_u16();
    let (kind, what) = match code {
        401 | 403 => (
            OperationErrorKind::ProviderRefused,
            format!("{who} refused the API key (HTTP {code})"),
        ),
        404 => (
            OperationErrorKind::ProviderRefused,
            format!("{who} does not know this model or address (HTTP 404)"),
        ),
        429 => (
            OperationErrorKind::Provider,
            format!(
                "{who} kept answering 429 Too Many Requests ({attempts} attempt{})",
                plural(attempts)
            ),
        ),
        500..=599 => (
            OperationErrorKind::Provider,
            format!(
                "{who} failed with HTTP {code} ({attempts} attempt{})",
                plural(attempts)
            ),
        ),
        _ => (
            OperationErrorKind::ProviderRefused,
            format!("{who} refused the request (HTTP {code})"),
        ),
    };
    let message = if said.is_empty() {
        what
    } else {
        format!("{what}: {said}")
    };
    OperationError::new(kind, message)
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

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_never_survives_in_an_error() {
        let secret = Secret {
            value: Some("sk-planted-1234".into()),
        };
        let error = OperationError::new(
            OperationErrorKind::Provider,
            "bad key sk-planted-1234 at http://x/?key=sk-planted-1234",
        );
        let redacted = secret.redact_error(error);
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
