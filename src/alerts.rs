//! `vigie alerts ack ID`: acknowledges an alert group on a running Vigie
//! through `POST /api/v1/alerts/groups/{id}/ack`.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The acknowledgement URL for `id` (a group key or an alert fingerprint,
/// percent-encoded as one path segment) under Vigie's base `url`.
pub fn ack_url(url: &str, id: &str) -> anyhow::Result<reqwest::Url> {
    let mut u = reqwest::Url::parse(url).with_context(|| format!("--url {url:?} is not a URL"))?;
    u.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--url {url:?} cannot have a path"))?
        .pop_if_empty()
        .extend(["api", "v1", "alerts", "groups", id, "ack"]);
    Ok(u)
}

/// Acknowledges `id`; prints the groups acknowledged.
pub async fn ack(
    url: &str,
    id: &str,
    token_file: Option<&Path>,
    by: Option<String>,
    comment: Option<String>,
) -> anyhow::Result<()> {
    let target = ack_url(url, id)?;
    let by = by.unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "vigie-cli".into()));
    let mut request = reqwest::Client::new()
        .post(target.clone())
        .json(&json!({ "by": by, "comment": comment.unwrap_or_default() }));
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
    for key in body["acknowledged"].as_array().into_iter().flatten() {
        println!("acknowledged {}", key.as_str().unwrap_or_default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_encoded_segment() {
        let u = ack_url("http://127.0.0.1:9464/", r#"{}/{a="b"}:{alertname="X"}"#).expect("url");
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9464/api/v1/alerts/groups/%7B%7D%2F%7Ba=%22b%22%7D:%7Balertname=%22X%22%7D/ack"
        );
        assert!(ack_url("not a url", "x").is_err());
    }
}
