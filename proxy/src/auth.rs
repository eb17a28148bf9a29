//! Bearer-token authentication of the control API.
//!
//! The API changes what every link of a cluster does, so it is served on loopback by
//! default and anything else needs a token: [`check_listen`] refuses a non-loopback
//! address without one, and [`protect`] wraps a router so that every request must carry
//! `Authorization: Bearer <token>`. A request without it, or with another token, gets
//! 401 and counts in `rift_api_unauthorized_total{reason="missing"|"wrong"}`. A token
//! given for a loopback API is enforced too: loopback is not a reason to ignore it.
//!
//! Tokens come from a file (`--token-file`, first line, surrounding white space
//! trimmed) or from the `RIFT_TOKEN` environment variable; the file wins.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The environment variable the server and the client read a token from.
pub const TOKEN_ENV: &str = "RIFT_TOKEN";
/// The environment variable naming a token file, for clients (the server has `--token-file`).
pub const TOKEN_FILE_ENV: &str = "RIFT_TOKEN_FILE";
/// Longer tokens are refused: a token is a secret, not a document.
const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the token file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {reason}")]
    Invalid { origin: String, reason: String },
    #[error(
        "the control API would listen on {address}, which is not loopback: give a bearer token \
         with --token-file FILE or the {TOKEN_ENV} environment variable"
    )]
    TokenRequired { address: SocketAddr },
}

/// Reads the token from `file`, else from `RIFT_TOKEN`; `None` when neither is set.
pub fn load_token(file: Option<&Path>) -> Result<Option<String>, AuthError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let token = text.lines().next().unwrap_or("").trim().to_string();
        return validate(token, &format!("token file {}", path.display())).map(Some);
    }
    match std::env::var(TOKEN_ENV) {
        Ok(value) if !value.trim().is_empty() => {
            validate(value.trim().to_string(), TOKEN_ENV).map(Some)
        }
        _ => Ok(None),
    }
}

/// The token a client sends: `RIFT_TOKEN_FILE`, else `RIFT_TOKEN`. A token file that
/// cannot be read is an error, never a silent anonymous request.
pub fn client_token() -> Result<Option<String>, AuthError> {
    match std::env::var_os(TOKEN_FILE_ENV) {
        Some(path) if !path.is_empty() => load_token(Some(Path::new(&path))),
        _ => load_token(None),
    }
}

fn validate(token: String, origin: &str) -> Result<String, AuthError> {
    let invalid = |reason: &str| AuthError::Invalid {
        origin: origin.to_string(),
        reason: reason.to_string(),
    };
    if token.is_empty() {
        return Err(invalid("the token is empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(invalid("the token is longer than 4096 bytes"));
    }
    // It travels in an HTTP header: visible ASCII only.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "the token must be printable ASCII without spaces (e.g. `openssl rand -hex 32`)",
        ));
    }
    Ok(token)
}

/// Refuses to serve the API off loopback without a token.
pub fn check_listen(address: SocketAddr, token: Option<&str>) -> Result<(), AuthError> {
    if token.is_none() && !address.ip().is_loopback() {
        return Err(AuthError::TokenRequired { address });
    }
    Ok(())
}

/// Requires the token on every route of `router`; with no token, returns it unchanged.
pub fn protect(router: Router, token: Option<&str>) -> Router {
    match token {
        None => router,
        Some(token) => router.layer(middleware::from_fn_with_state(Arc::from(token), require)),
    }
}

async fn require(State(token): State<Arc<str>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => unauthorized("wrong", "the bearer token is not this API's token"),
        None => unauthorized(
            "missing",
            "this API needs `Authorization: Bearer <token>` (set RIFT_TOKEN or RIFT_TOKEN_FILE for the CLI)",
        ),
    }
}

fn unauthorized(reason: &'static str, message: &str) -> Response {
    metrics::counter!("rift_api_unauthorized_total", "reason" => reason).increment(1);
    tracing::warn!(reason, "control API request refused: 401");
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": message})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares without an early exit, so response time does not leak the matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = u8::from(a.len() != b.len());
    for (i, byte) in a.iter().enumerate() {
        difference |= byte ^ b.get(i).copied().unwrap_or(0);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_tokens_only() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"secret", b""));
    }

    #[test]
    fn non_loopback_needs_a_token() {
        let any: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        let error = check_listen(any, None).unwrap_err();
        assert!(error.to_string().contains("0.0.0.0:7070"), "{error}");
        assert!(check_listen(any, Some("t")).is_ok());
        assert!(check_listen("127.0.0.1:7070".parse().unwrap(), None).is_ok());
        assert!(check_listen("[::1]:7070".parse().unwrap(), None).is_ok());
        assert!(check_listen("127.0.1.3:7070".parse().unwrap(), None).is_ok());
    }

    #[test]
    fn token_files_are_trimmed_and_checked() {
        let dir = std::env::temp_dir().join(format!("rift-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "  abc123\nignored\n").unwrap();
        assert_eq!(load_token(Some(&good)).unwrap().as_deref(), Some("abc123"));
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let error = load_token(Some(&empty)).unwrap_err();
        assert!(error.to_string().contains("empty"), "{error}");
        let spaced = dir.join("spaced");
        std::fs::write(&spaced, "a b").unwrap();
        assert!(load_token(Some(&spaced)).is_err());
        let missing = dir.join("missing");
        let error = load_token(Some(&missing)).unwrap_err();
        assert!(error.to_string().contains("missing"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
