//! Bearer-token protection of the endpoints that change state.
//!
//! With a token configured (`[api] token_file`), every request that is not
//! a `GET`/`HEAD`/`OPTIONS` must carry `Authorization: Bearer <token>`,
//! except the read-only `POST`s of the query APIs ([`READ_ONLY_POSTS`]:
//! Grafana sends PromQL queries as form posts). Deny by default: a new
//! state-changing endpoint (silences, posted alerts, `/-/reload`,
//! remote-write, action approvals, feedback) is protected without being
//! listed. Tokens are compared in constant time (over digests, so the
//! length does not leak either). A refused request gets `401` with
//! `WWW-Authenticate: Bearer`.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use md5::{Digest, Md5};

/// `POST` paths that only read (query APIs), open without a token.
pub const READ_ONLY_POSTS: &[&str] = &[
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/series",
    "/api/v1/labels",
    "/api/v1/query_exemplars",
    "/api/v1/sql",
];

/// Why a token could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read.
    #[error("cannot read token file {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The token file holds no token.
    #[error(
        "token file {path} is empty; write a long random token in it, e.g. `openssl rand -hex 32 > {path}`"
    )]
    Empty {
        /// The file.
        path: String,
    },
}

/// The API token, kept only as a digest.
#[derive(Clone)]
pub struct ApiToken {
    digest: Arc<[u8; 16]>,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

fn digest(bytes: &[u8]) -> [u8; 16] {
    // Keyed by a fixed prefix only to separate it from other uses; the
    // digest serves constant-time comparison, not secrecy at rest.
    let mut h = Md5::new();
    h.update(b"vigie-api-token\0");
    h.update(bytes);
    h.finalize().into()
}

impl ApiToken {
    /// The token `secret` (surrounding whitespace ignored).
    pub fn new(secret: &str) -> Option<Self> {
        let s = secret.trim();
        (!s.is_empty()).then(|| ApiToken {
            digest: Arc::new(digest(s.as_bytes())),
        })
    }

    /// Reads the token from `path` (the whole file, trimmed).
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TokenError::Read {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        Self::new(&text).ok_or(TokenError::Empty { path: shown })
    }

    /// Whether `presented` is this token, in time independent of both.
    pub fn matches(&self, presented: &str) -> bool {
        let theirs = digest(presented.trim().as_bytes());
        let diff = self
            .digest
            .iter()
            .zip(theirs.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`.
    pub fn authorizes(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, credentials)) = value.trim().split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer") && self.matches(credentials)
    }
}

/// Whether a request with `method` to `path` needs the token.
pub fn needs_token(method: &Method, path: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let path = path.trim_end_matches('/');
    !(*method == Method::POST && READ_ONLY_POSTS.contains(&path))
}

async fn guard(State(token): State<ApiToken>, request: Request, next: Next) -> Response {
    if needs_token(request.method(), request.uri().path()) && !token.authorizes(request.headers()) {
        crate::metrics::API_UNAUTHORIZED.inc();
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"vigie\"")],
            axum::Json(
                "this endpoint changes state: send `Authorization: Bearer <token>` with the token of [api] token_file",
            ),
        )
            .into_response();
    }
    next.run(request).await
}

/// `router` with every state-changing request requiring `token` (none:
/// unchanged, for a server bound to the loopback interface).
pub fn protect(router: Router, token: Option<ApiToken>) -> Router {
    match token {
        Some(token) => router.layer(middleware::from_fn_with_state(token, guard)),
        None => router,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_state_changing_requests_need_the_token() {
        assert!(!needs_token(&Method::GET, "/api/v2/silences"));
        assert!(!needs_token(&Method::POST, "/api/v1/query"));
        assert!(!needs_token(&Method::POST, "/api/v1/sql"));
        assert!(needs_token(&Method::POST, "/api/v2/silences"));
        assert!(needs_token(&Method::DELETE, "/api/v2/silence/x"));
        assert!(needs_token(&Method::POST, "/api/v2/alerts"));
        assert!(needs_token(&Method::POST, "/-/reload"));
        assert!(needs_token(&Method::POST, "/api/v1/write"));
        assert!(needs_token(&Method::PUT, "/api/v1/query"));
        assert!(needs_token(&Method::POST, "/api/v1/anything-new"));
    }

    #[test]
    fn tokens_compare_exactly() {
        let t = ApiToken::new(" s3cret\n").expect("token");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3cret2"));
        assert!(!t.matches(""));
        assert!(ApiToken::new("  ").is_none());
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "bearer s3cret".parse().expect("hv"));
        assert!(t.authorizes(&h));
        h.insert(header::AUTHORIZATION, "Basic s3cret".parse().expect("hv"));
        assert!(!t.authorizes(&h));
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
