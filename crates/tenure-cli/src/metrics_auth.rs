//! The bearer token of the metrics endpoint (`--metrics-token-file`): read once at start, and
//! required on every request as `Authorization: Bearer <token>`. A request without it, or with
//! another token, gets `401 unauthorized` with `WWW-Authenticate: Bearer`. Tokens are compared
//! in constant time (only their length can be learnt from the timing).

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use crate::exit::CliError;

/// The secret every metrics request must present.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// The token in `path`: the file's contents without surrounding whitespace. A file that
    /// cannot be read, is empty, or holds characters an HTTP header cannot carry (control
    /// characters, spaces inside, non-ASCII) is a usage error naming the path.
    pub fn read(path: &Path) -> Result<Self, CliError> {
        let bytes = std::fs::read(path).map_err(|e| {
            CliError::Usage(format!(
                "cannot read the metrics token file {}: {e}",
                path.display()
            ))
        })?;
        Self::parse(&bytes).map_err(|why| {
            CliError::Usage(format!("the metrics token file {}: {why}", path.display()))
        })
    }

    /// The token in a file's contents (see [`read`](Self::read)).
    fn parse(bytes: &[u8]) -> Result<Self, &'static str> {
        let token = bytes.trim_ascii();
        if token.is_empty() {
            return Err("it is empty (it must hold the token)");
        }
        if !token.iter().all(u8::is_ascii_graphic) {
            return Err("the token may only hold visible ASCII characters without spaces");
        }
        Ok(Self(token.into()))
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>` (the scheme in any case).
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let Some((scheme, presented)) = value.split_at_checked(6) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(b"bearer") || !presented.starts_with(b" ") {
            return false;
        }
        bool::from(presented.trim_ascii().ct_eq(&self.0))
    }
}

/// Middleware: the request goes on only with the token, otherwise 401.
pub async fn require(State(token): State<Token>, request: Request, next: Next) -> Response {
    if token.admits(request.headers()) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, "Bearer"),
                (header::CONTENT_TYPE, "text/plain"),
            ],
            "unauthorized\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(auth).expect("header"),
        );
        h
    }

    #[test]
    fn only_the_exact_token_is_admitted() {
        let t = Token::parse(b"  s3cret-token\n").expect("token");
        assert!(t.admits(&with("Bearer s3cret-token")));
        assert!(t.admits(&with("bearer s3cret-token")));
        assert!(!t.admits(&HeaderMap::new()));
        assert!(!t.admits(&with("Bearer s3cret-toke")));
        assert!(!t.admits(&with("Bearer s3cret-token2")));
        assert!(!t.admits(&with("Bearer")));
        assert!(!t.admits(&with("Bearers3cret-token")));
        assert!(!t.admits(&with("Basic s3cret-token")));
        assert!(!t.admits(&with("s3cret-token")));
    }

    #[test]
    fn empty_or_unusable_token_files_are_refused_naming_the_file() {
        assert!(Token::parse(b" \n").is_err());
        assert!(Token::parse(b"two words").is_err());
        assert!(Token::parse("caf\u{e9}".as_bytes()).is_err());
        let dir = tempfile::tempdir().expect("dir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        let e = Token::read(&empty).expect_err("empty").to_string();
        assert!(
            e.contains(&empty.display().to_string()) && e.contains("empty"),
            "{e}"
        );
        let missing = dir.path().join("missing");
        let e = Token::read(&missing).expect_err("missing").to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert!(format!("{:?}", Token::parse(b"x").expect("token")).contains("redacted"));
    }
}
