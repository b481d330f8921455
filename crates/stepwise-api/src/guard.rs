//! What every request passes before any endpoint sees it: no browser origin (a page the user
//! visits must not drive their runs, and no CORS header is ever sent, so a browser refuses
//! the answer too), a `Host` that is this loopback address (a DNS-rebinding page names its own
//! host), and the user's token as a bearer token, compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// What a request is checked against.
#[derive(Clone)]
pub struct Gate {
    token: Arc<str>,
    port: u16,
}

impl Gate {
    pub fn new(token: &str, port: u16) -> Gate {
        Gate {
            token: Arc::from(token),
            port,
        }
    }
}

/// The middleware: refuses a request that fails any check, before its body is read.
pub async fn check(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    match admit(&gate, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

fn admit(gate: &Gate, headers: &HeaderMap) -> Result<(), Refusal> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        return Err(Refusal::forbidden(format!(
            "requests from a browser page (Origin: {}) are refused; the API is for programs on this machine",
            origin.to_str().unwrap_or("…")
        )));
    }
    // Browsers always send Host; a program speaking HTTP/1.0 may not, and is let through.
    let host = headers.get(header::HOST).map(|h| h.to_str().unwrap_or("…"));
    if let Some(host) = host
        && !is_loopback_host(host, gate.port)
    {
        return Err(Refusal::forbidden(format!(
            "the Host header `{host}` is not this server (127.0.0.1:{port} or localhost:{port})",
            port = gate.port
        )));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        None => Err(Refusal::unauthorized(
            "a bearer token is required (Authorization: Bearer <token>; the token is in the file `stepwise serve` names)",
        )),
        Some(token) if bool::from(token.as_bytes().ct_eq(gate.token.as_bytes())) => Ok(()),
        Some(_) => Err(Refusal::unauthorized(
            "the bearer token is not this user's token",
        )),
    }
}

/// `127.0.0.1:PORT`, `localhost:PORT` or `[::1]:PORT` (any case).
fn is_loopback_host(host: &str, port: u16) -> bool {
    let host = host.to_ascii_lowercase();
    let Some((name, given_port)) = host.rsplit_once(':') else {
        return false;
    };
    given_port == port.to_string() && matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

struct Refusal(ApiError);

impl Refusal {
    fn forbidden(message: String) -> Refusal {
        Refusal(ApiError::new(StatusCode::FORBIDDEN, "forbidden", message))
    }

    fn unauthorized(message: &str) -> Refusal {
        Refusal(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            message,
        ))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let challenge = self.0.status == StatusCode::UNAUTHORIZED;
        let mut response = self.0.into_response();
        if challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"stepwise\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_the_token_on_this_host_without_an_origin_passes() {
        let gate = Gate::new("abc", 7483);
        let good = [("host", "127.0.0.1:7483"), ("authorization", "Bearer abc")];
        assert!(admit(&gate, &headers(&good)).is_ok());
        // The scheme in any case, and a request without a Host (HTTP/1.0).
        assert!(
            admit(
                &gate,
                &headers(&[("host", "LOCALHOST:7483"), ("authorization", "bearer abc")])
            )
            .is_ok()
        );
        assert!(admit(&gate, &headers(&[("authorization", "Bearer abc")])).is_ok());
        let status =
            |pairs: &[(&'static str, &str)]| admit(&gate, &headers(pairs)).unwrap_err().0.status;
        assert_eq!(
            status(&[("host", "127.0.0.1:7483")]),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&[("host", "127.0.0.1:7483"), ("authorization", "Bearer abd")]),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&[
                ("host", "evil.example:7483"),
                ("authorization", "Bearer abc")
            ]),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(&[("host", "localhost:80"), ("authorization", "Bearer abc")]),
            StatusCode::FORBIDDEN
        );
        let mut from_page = good.to_vec();
        from_page.push(("origin", "http://localhost:5173"));
        assert_eq!(status(&from_page), StatusCode::FORBIDDEN);
    }
}
