//! The CLI's client for Vigie's state-changing API (`vigie alerts ack`,
//! `vigie actions approve|deny`): URL building, the bearer token from
//! `--token-file`, and errors that say what to do.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

/// `segments` (each percent-encoded as one path segment) under Vigie's
/// base `url`.
pub fn endpoint(url: &str, segments: &[&str]) -> anyhow::Result<reqwest::Url> {
    let mut u = reqwest::Url::parse(url).with_context(|| format!("--url {url:?} is not a URL"))?;
    u.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--url {url:?} cannot have a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(u)
}

/// Who acts: `--by`, else `$USER`, else `vigie-cli`.
pub fn who(by: Option<String>) -> String {
    by.unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "vigie-cli".into()))
}

/// POSTs `body` as JSON to `target` with the token of `token_file`, and
/// returns the JSON answer; a 401 says to pass `--token-file`, any other
/// failure carries Vigie's reason.
pub async fn post(
    url: &str,
    target: reqwest::Url,
    body: &Value,
    token_file: Option<&Path>,
) -> anyhow::Result<Value> {
    let mut request = reqwest::Client::new().post(target).json(body);
    if let Some(path) = token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("reading the API token (--token-file {})", path.display()))?;
        request = request.bearer_auth(token.trim());
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach Vigie at {url} (--url)"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status == reqwest::StatusCode::UNAUTHORIZED {
        bail!(
            "401: Vigie needs the API token; pass --token-file with the file of [api] token_file"
        );
    }
    if !status.is_success() {
        let reason = body
            .as_str()
            .map(str::to_string)
            .unwrap_or(body.to_string());
        bail!("{status}: {reason}");
    }
    Ok(body)
}
