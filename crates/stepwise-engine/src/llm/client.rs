//! The HTTP client model calls share, and the one rule it keeps about redirects: a redirect is
//! followed only within the origin (scheme, host and port) the call was sent to.
//!
//! Keys travel in headers (`Authorization`, `x-api-key`, `x-goog-api-key`), and reqwest strips
//! only the first of them when a redirect leaves the host, so a `base_url` answering 307 to a
//! server of its choosing would hand that server the key. A redirect to another origin is not
//! followed: its 3xx comes back to `http::send`, which fails the call naming where it pointed.
//! Within the origin the key was meant for, following one (with the key) gives nothing away.

use std::time::Duration;

use reqwest::redirect::{Action, Attempt, Policy};

/// Redirects followed within the origin before the call gives up.
pub(super) const MAX_REDIRECTS: usize = 5;

/// The client every call goes through: a connection attempt is bounded (the reply itself is
/// bounded by the caller), and redirects stay within the origin.
pub(super) fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(Policy::custom(within_origin))
        .build()
        .map_err(|e| format!("the HTTP client for model calls could not be set up: {e}"))
}

fn within_origin(attempt: Attempt<'_>) -> Action {
    let Some(first) = attempt.previous().first() else {
        return attempt.stop();
    };
    // `previous` holds the first URL and every redirect followed so far.
    if !same_origin(first, attempt.url()) || attempt.previous().len() > MAX_REDIRECTS {
        return attempt.stop();
    }
    attempt.follow()
}

/// Whether `a` and `b` have the same scheme, host and port (a port left out is the scheme's).
pub(super) fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> reqwest::Url {
        reqwest::Url::parse(text).expect("a url")
    }

    #[test]
    fn an_origin_is_scheme_host_and_port() {
        let base = url("https://api.example.com/v1/messages");
        assert!(same_origin(
            &base,
            &url("https://api.example.com:443/v2/other")
        ));
        assert!(same_origin(&base, &url("https://API.example.com/x")));
        for other in [
            "http://api.example.com/v1/messages",
            "https://api.example.com:8443/v1/messages",
            "https://evil.example.com/v1/messages",
            "https://api.example.com.evil.example/v1/messages",
            "https://user@evil.example/",
        ] {
            assert!(!same_origin(&base, &url(other)), "{other}");
        }
        let local = url("http://127.0.0.1:8081/v1/chat/completions");
        assert!(!same_origin(&local, &url("http://127.0.0.1:8082/v1")));
        assert!(!same_origin(&local, &url("http://localhost:8081/v1")));
    }
}
