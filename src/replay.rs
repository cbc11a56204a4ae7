//! `vigie backtest FILE.csv | --series SELECTOR --from T0 --to T1`: runs the
//! live detector and forecaster over one series' history
//! (`vigie_analyzer::replay`) with a progress bar, prints a summary and
//! draws the value, its forecast band, the anomaly score and the alerts as
//! SVG (plotters).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use vigie_analyzer::eval::nab::data::read_series;
use vigie_analyzer::forecast::{ForecastConfig, HORIZONS};
use vigie_analyzer::promql::LabelSet;
use vigie_analyzer::replay::{Replay, ReplayOptions, counter_rates, replay};
use vigie_analyzer::score::is_counter;

use crate::backtest::{fetch_raw, fmt_time, parse_time};

/// What `vigie backtest` was asked (its command-line arguments).
#[derive(clap::Args)]
pub struct Options {
    /// CSV file `timestamp,value` (NAB's layout).
    #[arg(required_unless_present = "series", conflicts_with = "series")]
    pub file: Option<PathBuf>,
    /// Or a selector matching one series of a running Vigie.
    #[arg(long)]
    pub series: Option<String>,
    /// Start with --series: RFC 3339, Unix seconds, or -6h.
    #[arg(long, allow_hyphen_values = true, default_value = "-24h")]
    pub from: String,
    /// End with --series.
    #[arg(long, allow_hyphen_values = true, default_value = "now")]
    pub to: String,
    /// Vigie's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:9464")]
    pub url: String,
    /// The SVG plot to write.
    #[arg(long, default_value = "backtest.svg")]
    pub out: PathBuf,
    /// Horizon of the forecast band drawn: 15m, 1h or 4h.
    #[arg(long, default_value = "15m")]
    pub horizon: String,
    /// Score above which an alert fires.
    #[arg(long, default_value_t = 0.9999)]
    pub threshold: f64,
    /// Print every replayed point as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
}

fn series_name(labels: &LabelSet) -> String {
    let name = labels.get("__name__").cloned().unwrap_or_default();
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

async fn load(options: &Options) -> anyhow::Result<(String, Vec<(i64, f64)>)> {
    match (&options.file, &options.series) {
        (Some(file), None) => {
            let points =
                read_series(file).map_err(|(what, msg)| anyhow::anyhow!("{what}: {msg}"))?;
            Ok((file.display().to_string(), points))
        }
        (None, Some(selector)) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let from = parse_time(&options.from, now).context("--from")?;
            let to = parse_time(&options.to, now).context("--to")?;
            if from >= to {
                bail!("--from must be before --to");
            }
            let client = reqwest::Client::new();
            let mut found = fetch_raw(&client, &options.url, selector, to - from, to).await?;
            match found.len() {
                1 => {
                    let (labels, points) = found.remove(0);
                    let name = series_name(&labels);
                    let metric = labels.get("__name__").cloned().unwrap_or_default();
                    let points = if is_counter(&metric) {
                        counter_rates(&points)
                    } else {
                        points
                    };
                    Ok((name, points))
                }
                0 => bail!("`{selector}` matches no series between --from and --to"),
                n => bail!(
                    "`{selector}` matches {n} series (e.g. {}); narrow it to one",
                    found
                        .iter()
                        .take(3)
                        .map(|(l, _)| series_name(l))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        _ => bail!("give either a CSV file or --series SELECTOR"),
    }
}

/// Runs the replay, prints the summary (or JSON) and writes the plot.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let Some(horizon) = HORIZONS.iter().position(|(_, h)| *h == options.horizon) else {
        bail!("--horizon must be 15m, 1h or 4h");
    };
    let (name, points) = load(&options).await?;
    if points.is_empty() {
        bail!("{name}: no points");
    }
    let defaults = vigie_analyzer::AnalyzerConfig::default();
    let replay_options = ReplayOptions {
        window: defaults.detector_window,
        min_points: defaults.detector_min_points,
        forecast: ForecastConfig::default(),
        horizon,
        threshold: options.threshold,
    };
    let bar = ProgressBar::new(points.len() as u64).with_style(
        ProgressStyle::with_template("replaying {bar:30} {pos}/{len} points [{elapsed} < {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let result = replay(&points, &replay_options, &mut |done| bar.set_position(done));
    bar.finish_and_clear();
    draw(&options.out, &name, &result, options.threshold)?;
    if options.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        print!(
            "{}",
            summary(&name, &result, options.threshold, &options.out)
        );
    }
    Ok(())
}

/// The text summary.
pub fn summary(name: &str, r: &Replay, threshold: f64, out: &Path) -> String {
    let (first, last) = (r.points[0].ts_ms, r.points[r.points.len() - 1].ts_ms);
    let alert_times: Vec<String> = r
        .points
        .iter()
        .filter(|p| p.alert)
        .take(10)
        .map(|p| fmt_time(p.ts_ms))
        .collect();
    let more = if r.alerts > alert_times.len() {
        ", ..."
    } else {
        ""
    };
    format!(
        "series: {name}: {} points from {} to {}\n\
         alerts: {} (score > {threshold} at {} points){}{}{}\n\
         forecast band ({}, 10-90%): {}\n\
         plot: {}\n",
        r.points.len(),
        fmt_time(first),
        fmt_time(last),
        r.alerts,
        r.points_above,
        if alert_times.is_empty() { "" } else { ": " },
        alert_times.join(", "),
        more,
        r.horizon,
        r.band_coverage.map_or(
            "no band yet (series shorter than the horizon)".into(),
            |c| { format!("contains {:.1}% of actual values", c * 100.0) }
        ),
        out.display()
    )
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

/// Draws the value with its band and alerts (top) and the score with the
/// threshold (bottom) as SVG.
fn draw(out: &Path, name: &str, r: &Replay, threshold: f64) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing {}: {e}", out.display());
    let root = SVGBackend::new(out, (1200, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(470);
    let x0 = r.points[0].ts_ms;
    let x1 = r.points[r.points.len() - 1].ts_ms.max(x0 + 1);
    let (y0, y1) = bounds(r.points.iter().flat_map(|p| {
        let (lo, hi) = p.band.unwrap_or((p.value, p.value));
        [p.value, lo, hi]
    }));
    let fmt_x = |t: &i64| fmt_time(*t).replace('T', " ").replace('Z', "");
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("{name}: value and {} forecast band", r.horizon),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&fmt_x)
        .draw()
        .map_err(|e| err(&e))?;
    let band = RGBColor(120, 160, 230).mix(0.35);
    for w in r.points.windows(2) {
        if let (Some((a_lo, a_hi)), Some((b_lo, b_hi))) = (w[0].band, w[1].band) {
            chart
                .draw_series(std::iter::once(Polygon::new(
                    vec![
                        (w[0].ts_ms, a_lo),
                        (w[1].ts_ms, b_lo),
                        (w[1].ts_ms, b_hi),
                        (w[0].ts_ms, a_hi),
                    ],
                    band.filled(),
                )))
                .map_err(|e| err(&e))?;
        }
    }
    chart
        .draw_series(LineSeries::new(
            r.points.iter().map(|p| (p.ts_ms, p.value)),
            &RGBColor(20, 60, 140),
        ))
        .map_err(|e| err(&e))?
        .label("value")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(20, 60, 140)));
    chart
        .draw_series(
            r.points
                .iter()
                .filter(|p| p.alert)
                .map(|p| Circle::new((p.ts_ms, p.value), 5, RED.filled())),
        )
        .map_err(|e| err(&e))?
        .label("alert fires")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    let mut score = ChartBuilder::on(&bottom)
        .caption("anomaly score", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..1.05)
        .map_err(|e| err(&e))?;
    score
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&fmt_x)
        .draw()
        .map_err(|e| err(&e))?;
    score
        .draw_series(LineSeries::new(
            r.points
                .iter()
                .filter_map(|p| p.score.map(|s| (p.ts_ms, s))),
            &RGBColor(200, 110, 0),
        ))
        .map_err(|e| err(&e))?;
    score
        .draw_series(LineSeries::new([(x0, threshold), (x1, threshold)], &RED))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
