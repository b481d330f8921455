//! What can go wrong in a model call, as a type: callers branch on the variant (retry with
//! backoff, try the next form of the request, give up), never on the words. The words are made
//! once, by `Display`, and become the recorded `OperationError` only at the edge
//! ([`ProviderError::into_operation_error`]), with the key removed.

use std::time::Duration;

use stepwise_core::operation::{OperationError, OperationErrorKind};

use crate::error::bytes_in_words;

/// One model call's failure. `who` names the provider and its address
/// (``provider `name` (base_url)``).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProviderError {
    #[error("the API key variable `{var}` is not set in the environment of this stepwise process")]
    KeyNotSet { var: String },

    #[error("the HTTP client for model calls could not be set up: {reason}")]
    NoClient { reason: String },

    /// The connection could not be made or broke before an answer.
    #[error("could not reach {who} ({reason}) after {attempts} attempt{}", plural(*attempts))]
    Unreachable {
        who: String,
        reason: String,
        attempts: u32,
        /// A failure that may pass (no connection, a timeout), not one of the request itself.
        transient: bool,
    },

    /// The server answered with an HTTP status other than success or a redirect.
    #[error("{}", status_words(who, *status, *attempts, *refusal, said))]
    Status {
        who: String,
        status: u16,
        /// What the protocol made of the status and the body.
        refusal: Refusal,
        /// The provider's own words, already cut short.
        said: String,
        attempts: u32,
    },

    /// A redirect to another origin: not followed, so that the key stays with its server.
    #[error(
        "{who} redirected the call (HTTP {status}) to {to}, which is not the server its `base_url` names; the redirect was not followed, so that the API key never leaves for another server"
    )]
    RedirectedAway {
        who: String,
        status: u16,
        to: String,
    },

    #[error("{who} redirected the call more than {limit} times (HTTP {status}, last to {to})")]
    TooManyRedirects {
        who: String,
        status: u16,
        limit: usize,
        to: String,
    },

    #[error("{who} answered with a redirect (HTTP {status}) that says nowhere to go")]
    RedirectNowhere { who: String, status: u16 },

    /// `what` ("the reply", "one event of the stream", …) went past its ceiling.
    #[error(
        "{what} from {who} is larger than {}, the most Stepwise reads; nothing of it was kept",
        bytes_in_words(*limit)
    )]
    TooLarge {
        who: String,
        what: &'static str,
        limit: u64,
    },

    #[error(
        "{who} sent nothing for {}s, so the call was given up (the provider's `idle_timeout_s` sets how long a reply may stay silent)",
        idle.as_secs()
    )]
    Silent { who: String, idle: Duration },

    #[error("the reply from {who} was cut off ({reason})")]
    CutOff { who: String, reason: String },

    /// An answer without the shape the protocol promises, or a stream that ended in an error.
    #[error("malformed answer from {who}: {what}")]
    Malformed { who: String, what: String },

    /// The call's whole deadline passed; `why` says whose deadline it was.
    #[error("the call to model `{model}` took longer than {}{why}", duration_words(*limit))]
    TookTooLong {
        model: String,
        limit: Duration,
        why: String,
    },

    #[error("the call to model `{model}` was cancelled")]
    Cancelled { model: String },
}

/// What an HTTP error status means, as the protocol reads it from the status and the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The key was refused (or is missing where one is needed).
    Auth,
    /// No such model or address.
    UnknownModel,
    /// Too many requests: worth asking again after a wait.
    Busy,
    /// The server failed: worth asking again after a wait.
    ServerFailed,
    /// The server does not take this form of the request (a JSON mode, an option it does not
    /// know): the next form may be accepted, the same one never will.
    FormUnsupported,
    /// Any other refusal of the request as it is.
    Rejected,
}

impl Refusal {
    /// What a status means when the body says nothing more.
    pub(crate) fn of_status(status: u16) -> Refusal {
        match status {
            401 | 403 => Refusal::Auth,
            404 => Refusal::UnknownModel,
            429 => Refusal::Busy,
            500..=599 => Refusal::ServerFailed,
            _ => Refusal::Rejected,
        }
    }

    /// Whether the same request, sent again after a wait, may be answered.
    pub(crate) fn retryable(self) -> bool {
        matches!(self, Refusal::Busy | Refusal::ServerFailed)
    }
}

impl ProviderError {
    /// Whether the same request may succeed if sent again after a wait.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            ProviderError::Status { refusal, .. } => refusal.retryable(),
            ProviderError::Unreachable { transient, .. } => *transient,
            _ => false,
        }
    }

    /// Whether the server said it does not take this form of the request, so that another
    /// form may be tried.
    pub(crate) fn form_unsupported(&self) -> bool {
        matches!(
            self,
            ProviderError::Status {
                refusal: Refusal::FormUnsupported,
                ..
            }
        )
    }

    /// The class recorded with the step's error: whether a retry of the step may help.
    pub(crate) fn operation_kind(&self) -> OperationErrorKind {
        match self {
            ProviderError::Cancelled { .. } => OperationErrorKind::Cancelled,
            ProviderError::NoClient { .. } => OperationErrorKind::Io,
            ProviderError::KeyNotSet { .. }
            | ProviderError::RedirectedAway { .. }
            | ProviderError::TooManyRedirects { .. }
            | ProviderError::RedirectNowhere { .. } => OperationErrorKind::ProviderRefused,
            ProviderError::Status { refusal, .. } if !refusal.retryable() => {
                OperationErrorKind::ProviderRefused
            }
            ProviderError::Status { .. }
            | ProviderError::Unreachable { .. }
            | ProviderError::TooLarge { .. }
            | ProviderError::Silent { .. }
            | ProviderError::CutOff { .. }
            | ProviderError::Malformed { .. }
            | ProviderError::TookTooLong { .. } => OperationErrorKind::Provider,
        }
    }

    /// The error as it is recorded: its words, with `redact` applied (it removes the key).
    pub(crate) fn into_operation_error(self, redact: impl Fn(&str) -> String) -> OperationError {
        OperationError::new(self.operation_kind(), redact(&self.to_string()))
    }
}

/// What is wrong with an answer, before it is known whose answer it is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadReply(pub(crate) String);

impl BadReply {
    pub(crate) fn new(what: impl Into<String>) -> BadReply {
        BadReply(what.into())
    }

    pub(crate) fn from(self, who: &str) -> ProviderError {
        ProviderError::Malformed {
            who: who.to_string(),
            what: self.0,
        }
    }
}

fn status_words(who: &str, status: u16, attempts: u32, refusal: Refusal, said: &str) -> String {
    let tries = format!("{attempts} attempt{}", plural(attempts));
    let what = match refusal {
        Refusal::Auth => format!("{who} refused the API key (HTTP {status})"),
        Refusal::UnknownModel => {
            format!("{who} does not know this model or address (HTTP {status})")
        }
        Refusal::Busy if status == 429 => {
            format!("{who} kept answering 429 Too Many Requests ({tries})")
        }
        Refusal::Busy => format!("{who} was busy on every attempt (HTTP {status}, {tries})"),
        Refusal::ServerFailed => format!("{who} failed with HTTP {status} ({tries})"),
        Refusal::FormUnsupported => {
            format!("{who} does not accept this form of the request (HTTP {status})")
        }
        Refusal::Rejected => format!("{who} refused the request (HTTP {status})"),
    };
    if said.is_empty() {
        what
    } else {
        format!("{what}: {said}")
    }
}

/// `d` in seconds, or milliseconds when it is not a whole number of seconds.
fn duration_words(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub(crate) fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, refusal: Refusal, said: &str, attempts: u32) -> ProviderError {
        ProviderError::Status {
            who: "provider `p` (http://x)".into(),
            status: code,
            refusal,
            said: said.into(),
            attempts,
        }
    }

    #[test]
    fn statuses_are_worded_as_people_read_them() {
        let cases = [
            (
                status(401, Refusal::Auth, "bad key", 1),
                "provider `p` (http://x) refused the API key (HTTP 401): bad key",
                OperationErrorKind::ProviderRefused,
            ),
            (
                status(404, Refusal::UnknownModel, "", 1),
                "provider `p` (http://x) does not know this model or address (HTTP 404)",
                OperationErrorKind::ProviderRefused,
            ),
            (
                status(429, Refusal::Busy, "slow down", 4),
                "provider `p` (http://x) kept answering 429 Too Many Requests (4 attempts): slow down",
                OperationErrorKind::Provider,
            ),
            (
                status(500, Refusal::ServerFailed, "boom", 1),
                "provider `p` (http://x) failed with HTTP 500 (1 attempt): boom",
                OperationErrorKind::Provider,
            ),
            (
                status(400, Refusal::Rejected, "max_tokens too large", 1),
                "provider `p` (http://x) refused the request (HTTP 400): max_tokens too large",
                OperationErrorKind::ProviderRefused,
            ),
        ];
        for (error, words, kind) in cases {
            let recorded = error.into_operation_error(str::to_string);
            assert_eq!(recorded.message, words);
            assert_eq!(recorded.kind, kind, "{words}");
        }
    }

    #[test]
    fn only_a_busy_or_failing_server_and_a_lost_connection_are_asked_again() {
        for code in [400, 401, 403, 404, 409, 413, 422] {
            assert!(
                !Refusal::of_status(code).retryable(),
                "HTTP {code} is retried"
            );
        }
        for code in [429, 500, 502, 503, 529] {
            assert!(
                Refusal::of_status(code).retryable(),
                "HTTP {code} is not retried"
            );
        }
        let unreachable = ProviderError::Unreachable {
            who: "p".into(),
            reason: "could not connect".into(),
            attempts: 1,
            transient: true,
        };
        assert!(unreachable.retryable());
        assert!(!status(500, Refusal::FormUnsupported, "", 1).retryable());
    }

    #[test]
    fn the_recorded_error_goes_through_the_redaction() {
        let error = BadReply::new("it says sk-secret-1").from("provider `p`");
        let recorded = error.into_operation_error(|text| text.replace("sk-secret-1", "[api key]"));
        assert_eq!(
            recorded.message,
            "malformed answer from provider `p`: it says [api key]"
        );
    }
}
