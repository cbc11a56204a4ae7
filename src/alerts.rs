//! `vigie alerts ack ID`: acknowledges an alert group on a running Vigie
//! through `POST /api/v1/alerts/groups/{id}/ack`.

use std::path::Path;

use serde_json::json;

use crate::api_client::{endpoint, post, who};

/// The acknowledgement URL for `id` (a group key or an alert fingerprint,
/// percent-encoded as one path segment) under Vigie's base `url`.
pub fn ack_url(url: &str, id: &str) -> anyhow::Result<reqwest::Url> {
    endpoint(url, &["api", "v1", "alerts", "groups", id, "ack"])
}

/// Acknowledges `id`; prints the groups acknowledged.
pub async fn ack(
    url: &str,
    id: &str,
    token_file: Option<&Path>,
    by: Option<String>,
    comment: Option<String>,
) -> anyhow::Result<()> {
    let body = json!({ "by": who(by), "comment": comment.unwrap_or_default() });
    let answer = post(url, ack_url(url, id)?, &body, token_file).await?;
    for key in answer["acknowledged"].as_array().into_iter().flatten() {
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
