//! `vigie actions approve|deny ID`: decides a pending remediation action
//! on a running Vigie through `POST /api/v1/actions/{id}/approve|deny`.

use std::path::Path;

use serde_json::json;

use crate::api_client::{endpoint, post, who};

/// The decision URL for `id` (one percent-encoded path segment) under
/// Vigie's base `url`; `verb` is `approve` or `deny`.
pub fn decision_url(url: &str, id: &str, verb: &str) -> anyhow::Result<reqwest::Url> {
    endpoint(url, &["api", "v1", "actions", id, verb])
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
    let answer = post(
        url,
        decision_url(url, id, verb)?,
        &json!({ "by": who(by) }),
        token_file,
    )
    .await?;
    println!(
        "{} {}",
        answer["decision"].as_str().unwrap_or(verb),
        answer["id"].as_str().unwrap_or(id)
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
