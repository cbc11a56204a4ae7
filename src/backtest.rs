//! `vigie rules backtest FILE... --from T0 --to T1`: evaluates rule files
//! over the history a running Vigie (or any Prometheus-compatible server)
//! holds and reports when each alert would have fired and resolved.
//!
//! The series the rules read are fetched once, raw, with instant queries
//! of range selectors (`sel[range]` at `--to`), into memory; then the rule
//! groups are stepped exactly as the live rule manager steps them
//! (`vigie_analyzer::rules::backtest`), with a progress bar on stderr.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use vigie_analyzer::promql::{LabelSet, MemoryStore};
use vigie_analyzer::rules::backtest::{BacktestReport, backtest, selectors};
use vigie_analyzer::rules::{EvalContext, SharedMemoryStore, load_paths};

/// What `vigie rules backtest` was asked.
pub struct Options {
    /// Rule files or directories.
    pub files: Vec<PathBuf>,
    /// Start: RFC 3339, Unix seconds, `now` or `-DURATION` (before now).
    pub from: String,
    /// End, same forms.
    pub to: String,
    /// Vigie's (or a Prometheus') HTTP address.
    pub url: String,
    /// Evaluate every group at this step instead of its interval.
    pub step: Option<Duration>,
    /// Print the report as JSON.
    pub json: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parses a time: RFC 3339, Unix seconds, `now`, or `-1h30m` (before `now_ms`).
pub fn parse_time(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    let s = s.trim();
    if s == "now" {
        return Ok(now_ms);
    }
    if let Some(ago) = s.strip_prefix('-') {
        let d = humantime::parse_duration(ago)
            .with_context(|| format!("`{s}`: not a duration before now (e.g. -6h)"))?;
        return Ok(now_ms - d.as_millis() as i64);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1000.0).round() as i64);
    }
    let t = humantime::parse_rfc3339_weak(s).with_context(|| {
        format!(
            "`{s}`: not a time (RFC 3339 such as 2026-11-28T10:00:00Z, Unix seconds, now, or -6h)"
        )
    })?;
    Ok(t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64)?)
}

pub fn fmt_time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn fmt_duration(ms: i64) -> String {
    humantime::format_duration(Duration::from_secs((ms.max(0) / 1000) as u64)).to_string()
}

/// Raw series: labels and time-ordered points.
pub type RawSeries = Vec<(LabelSet, Vec<(i64, f64)>)>;

/// Fetches the raw samples of `selector` over `(to - range, to]` with an
/// instant query of the range selector `selector[range]` at `to`.
pub async fn fetch_raw(
    client: &reqwest::Client,
    url: &str,
    selector: &str,
    range_ms: i64,
    to_ms: i64,
) -> anyhow::Result<RawSeries> {
    let query = format!("{selector}[{range_ms}ms]");
    let time = format!("{:.3}", to_ms as f64 / 1000.0);
    let endpoint = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/query", url.trim_end_matches('/')),
        &[("query", query.as_str()), ("time", time.as_str())],
    )
    .with_context(|| format!("bad --url {url}"))?;
    let body: Value = client
        .get(endpoint)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?
        .json()
        .await
        .with_context(|| format!("{url} did not answer JSON"))?;
    if body["status"] != "success" {
        bail!("{url} refused `{query}`: {}", body["error"]);
    }
    let mut out = Vec::new();
    for series in body["data"]["result"].as_array().into_iter().flatten() {
        let labels: LabelSet = series["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let points = series["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let t = p[0].as_f64()?;
                let v = p[1].as_str()?.parse::<f64>().ok()?;
                t.is_finite().then_some(((t * 1000.0).round() as i64, v))
            })
            .collect();
        out.push((labels, points));
    }
    Ok(out)
}

/// Renders the report for a terminal.
pub fn render(report: &BacktestReport) -> String {
    let mut out = format!(
        "Backtest {} .. {}: {} evaluations\n\n",
        fmt_time(report.from_ms),
        fmt_time(report.to_ms),
        report.evaluations
    );
    for (rule, s) in &report.rules {
        out.push_str(&format!(
            "{rule}: fired {} time(s), firing {} in total, median pending {}, {} pending episode(s) that never fired\n",
            s.fired,
            fmt_duration(s.firing_ms),
            s.median_pending_ms.map_or("-".into(), fmt_duration),
            s.pending_only
        ));
    }
    if !report.episodes.is_empty() {
        out.push('\n');
    }
    for ep in &report.episodes {
        let labels: Vec<String> = ep
            .labels
            .iter()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        out.push_str(&format!(
            "{} {{{}}}: pending {}, {}, {}\n",
            ep.alertname,
            labels.join(", "),
            fmt_time(ep.pending_at_ms),
            ep.fired_at_ms
                .map_or("never fired".into(), |f| format!("fired {}", fmt_time(f))),
            ep.ended_at_ms
                .map_or("still active at the end".into(), |e| format!(
                    "ended {}",
                    fmt_time(e)
                ))
        ));
    }
    for (rule, e, n) in &report.errors {
        out.push_str(&format!("error: {rule}: {e} ({n} evaluation(s))\n"));
    }
    out
}

/// Runs the backtest and prints the report.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let now = now_ms();
    let from = parse_time(&options.from, now).context("--from")?;
    let to = parse_time(&options.to, now).context("--to")?;
    if from > to {
        bail!(
            "--from ({}) is after --to ({})",
            fmt_time(from),
            fmt_time(to)
        );
    }
    let default_interval = vigie_analyzer::RulesConfig::default().interval;
    let mut groups = load_paths(&options.files, default_interval)?;
    if groups.is_empty() {
        bail!("no rule groups in {:?}", options.files);
    }
    let ctx = EvalContext::default();
    let mut wanted = selectors(&groups, &ctx)?;
    wanted.sort();
    wanted.dedup_by(|b, a| {
        // Same selector: keep the longest look-back.
        a.0 == b.0 && {
            a.1 = a.1.max(b.1);
            true
        }
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let spinner = ProgressBar::new(wanted.len() as u64).with_style(
        ProgressStyle::with_template("loading history {bar:30} {pos}/{len} selectors {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut mem = MemoryStore::new();
    let mut loaded = HashSet::new();
    let mut points = 0;
    for (selector, extent) in &wanted {
        spinner.set_message(selector.clone());
        for (labels, series) in
            fetch_raw(&client, &options.url, selector, to - from + extent, to).await?
        {
            // Two selectors may match the same series: load it once.
            if loaded.insert(labels.clone()) {
                points += series.len();
                for (t, v) in series {
                    mem.add(labels.clone(), t, v);
                }
            }
        }
        spinner.inc(1);
    }
    spinner.finish_and_clear();
    eprintln!(
        "loaded {points} samples of {} series from {}",
        loaded.len(),
        options.url
    );
    let store = SharedMemoryStore::new(mem);
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("evaluating {bar:30} {pos}/{len} [{elapsed} < {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = backtest(
        &mut groups,
        &store,
        &ctx,
        from,
        to,
        options.step,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await;
    bar.finish_and_clear();
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_form() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("now", now).expect("time"), now);
        assert_eq!(parse_time("-1h30m", now).expect("time"), now - 5_400_000);
        assert_eq!(
            parse_time("1700000000.5", now).expect("time"),
            1_700_000_000_500
        );
        assert_eq!(
            parse_time("2026-11-28T10:00:00Z", now).expect("time"),
            1_795_860_000_000
        );
        let err = format!(
            "{:#}",
            parse_time("yesterday", now).expect_err("not a time")
        );
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
