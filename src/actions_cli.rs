//! `vigie actions approve|deny ID`: decides a pending remediation action
//! on a running Vigie through `POST /api/v1/actions/{id}/approve|deny`.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The decision URL for `id` (one percent-encoded path segment) under
/// Vigie's base `url`; `verb` is `approve` or `deny`.
pub fn decision_url(url: &str, id: &str, verb: &str) -> anyhow::Result<reqwest::Url> {
    let mut u = reqwest::Url::parse(url).with_context(|| format!("--url {url:?} is not a URL"))?;
    u.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--url {url:?} cannot have a path"))?
        .pop_if_empty()
        .extend(["api", "v1", "actions", id, verb]);
    Ok(u)
}

/// Approves (`approve`) or denies pending action `id`; prints the decision.
pub async fn decide(
    url: &str,
    id: &str,
    approve: bool,
    token_file: Option<&Path>,
    by: Option<String>,
) -> anyhow::Result<()> {
    let verb = if approve { "approve" } else { "deny" };
    let target = decision_url(url, id, verb)?;
    let by = by.unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "vigie-cli".into()));
    let mut request = reqwest::Client::new()
        .post(target)
        .json(&json!({ "by": by }));
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
    println!(
        "{} {}",
        body["decision"].as_str().unwrap_or(verb),
        body["id"].as_str().unwrap_or(id)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_encoded_segment() {
        let u = decision_url("http://127.0.0.1:9464/", "a/b c", "deny").expect("url");
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9464/api/v1/actions/a%2Fb%20c/deny"
        );
        assert!(decision_url("not a url", "x", "approve").is_err());
    }
}
