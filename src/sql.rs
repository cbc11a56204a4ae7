//! `vigie sql "QUERY"`: runs SQL on a running Vigie through
//! `POST /api/v1/sql` and prints a table (or the JSON with `--json`).

use anyhow::{Context, bail};
use serde_json::Value;

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders `{"columns": [...], "rows": [[...]]}` as an aligned text table.
pub fn render(result: &Value) -> String {
    let columns: Vec<String> = result["columns"]
        .as_array()
        .map(|c| c.iter().map(cell).collect())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = result["rows"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|row| {
                    row.as_array()
                        .map(|c| c.iter().map(cell).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    out.push_str(&line(&columns));
    out.push('\n');
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out.push_str(&format!("({} rows)\n", rows.len()));
    out
}

/// Sends `query` to the Vigie at `url` and prints the result.
pub async fn run(url: &str, query: &str, json: bool) -> anyhow::Result<()> {
    let endpoint = format!("{}/api/v1/sql", url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&endpoint)
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await
        .with_context(|| {
            format!("cannot reach Vigie at {endpoint} (is `vigie run` running? --url)")
        })?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{endpoint} did not answer JSON"))?;
    if !status.is_success() {
        bail!(
            "{}",
            body["error"]
                .as_str()
                .unwrap_or("query failed without a reason")
        );
    }
    if json {
        println!("{body}");
    } else {
        print!("{}", render(&body));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_aligned_table() {
        let v = serde_json::json!({
            "columns": ["metric", "n"],
            "rows": [["up", 3], ["node_load1", null]]
        });
        let text = render(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "metric     | n");
        assert_eq!(lines[1], "-----------+-----");
        assert_eq!(lines[2], "up         | 3");
        assert_eq!(lines[3], "node_load1 | NULL");
        assert_eq!(lines[4], "(2 rows)");
    }
}
