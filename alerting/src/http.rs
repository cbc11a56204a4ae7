//! The HTTP(S) client of webhooks, PagerDuty, Slack and actions: hyper
//! with rustls (ring provider) as configured by an `http_config`
//! ([`crate::tls::HttpConfig`]), HTTP/1.1, a timeout per request.
//!
//! Built on hyper rather than reqwest: reqwest 0.13's rustls support
//! without aws-lc-rs needs a process-wide crypto provider, and would make
//! every other reqwest client of the workspace panic without one.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::ServerName;

use crate::tls::{TlsConfig, TlsFileError, tls_failure};

/// How much of a response body is kept.
const BODY_LIMIT: usize = 64 * 1024;

/// A client for `http://` and `https://` URLs.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An answer: status and the start of the body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body (at most 64 KiB of it), lossily decoded as UTF-8.
    pub body: String,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The TLS handshake failed (untrusted or expired certificate, wrong
    /// name, no common protocol, ...).
    #[error("TLS: {message}")]
    Tls {
        /// What rustls said.
        message: String,
        /// False when the server's certificate was refused.
        retriable: bool,
    },
    /// No connection, a reset, or no answer within the timeout.
    #[error("{0}")]
    Transport(String),
    /// The request could not be made (bad URL or header).
    #[error("{0}")]
    Request(String),
}

impl HttpClient {
    /// A client verifying servers as `tls` says, with `timeout` per request.
    pub fn new(tls: &TlsConfig, timeout: Duration) -> Result<Self, TlsFileError> {
        let config = tls.client_config()?;
        let builder = HttpsConnectorBuilder::new().with_tls_config(config);
        let mut builder = builder.https_or_http();
        if let Some(name) = &tls.server_name {
            let name = ServerName::try_from(name.clone()).map_err(|e| TlsFileError {
                field: "server_name",
                message: format!("{name:?}: {e}"),
            })?;
            builder = builder.with_server_name_resolver(FixedServerNameResolver::new(name));
        }
        let connector = builder.enable_http1().build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }

    /// POSTs `body` to `url` with `content_type` and extra `headers`;
    /// any answer (2xx or not) is `Ok`.
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<HttpResponse, HttpError> {
        let mut request = hyper::Request::post(url)
            .header(CONTENT_TYPE, content_type)
            .header(
                USER_AGENT,
                concat!("vigie-alerting/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| HttpError::Request(format!("header {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| HttpError::Request(format!("header {name}: {e}")))?;
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpError::Request(format!("{url:?}: {e}")))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(classify)?;
            let status = response.status().as_u16();
            let mut body = Vec::new();
            let mut stream = response.into_body();
            while body.len() < BODY_LIMIT {
                match stream.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            body.extend_from_slice(data);
                        }
                    }
                    // The status is what counts: a body cut short (e.g. a
                    // server closing without TLS close_notify) keeps the
                    // part read.
                    Some(Err(e)) => {
                        tracing::debug!(url, error = %error_chain(&e), "response body cut short");
                        break;
                    }
                    None => break,
                }
            }
            body.truncate(BODY_LIMIT);
            Ok(HttpResponse {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Transport(format!("no answer within {:?}", self.timeout)))?
    }
}

/// A TLS failure if there is one in the chain, else the whole chain.
fn classify<E: std::error::Error + 'static>(e: E) -> HttpError {
    if let Some(t) = tls_failure(&e) {
        return HttpError::Tls {
            message: t.message,
            retriable: t.retriable,
        };
    }
    HttpError::Transport(error_chain(&e))
}

/// `e` and its sources, joined by `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
