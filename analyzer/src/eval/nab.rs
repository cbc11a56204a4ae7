//! `vigie eval nab`: the Numenta Anomaly Benchmark scorer.
//!
//! Every file is run through one [`Ensemble`] with
//! [`EnsembleConfig::nab`], the configuration the live pipeline's
//! [`EnsembleConfig::live`] is built on (one configuration for all files,
//! causal: the score of a row uses rows up to it only). Scoring follows NAB (see
//! [`scorer`]): for each profile the threshold that maximises the total
//! score over all files is chosen, and the total is normalised so that
//! the null detector scores 0 and the perfect one 100.

pub mod data;
pub mod scorer;

use std::path::{Path, PathBuf};

use crate::AnalyzerError;
use crate::detect::{Detector, Ensemble, EnsembleConfig};
use crate::forecast::{ForecastConfig, HORIZONS, coverage};

use scorer::{ScoredFile, label_rows, normalise, optimise};

/// Detector name used in the results layout.
pub const DETECTOR: &str = "vigie";

/// Options of `vigie eval nab`.
#[derive(Debug, Clone)]
pub struct NabOptions {
    /// Directory in NAB layout (`<category>/<file>.csv`, `combined_windows.json`, `profiles.json`).
    pub data: PathBuf,
    /// Where to write NAB's results format: this directory plays NAB's
    /// `results/`, files go to `<out>/vigie/<category>/vigie_<file>.csv`.
    pub out: Option<PathBuf>,
}

/// Normalised scores per profile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NabReport {
    /// Standard profile score.
    pub standard: f64,
    /// reward_low_FP_rate profile score.
    pub reward_low_fp: f64,
    /// reward_low_FN_rate profile score.
    pub reward_low_fn: f64,
    /// Files scored.
    pub files: usize,
    /// Chosen thresholds (standard, reward_low_FP, reward_low_FN).
    pub thresholds: [f64; 3],
    /// Labelled windows over all files.
    pub windows: usize,
    /// Share of actual values inside the forecast's 10–90 % band, per
    /// horizon (`"15m"`, `"1h"`, `"4h"`), over all files (the default
    /// [`ForecastConfig`]; about 0.8 is honest).
    pub forecast_coverage: std::collections::BTreeMap<String, f64>,
}

impl NabReport {
    /// `{"standard": x, "reward_low_fp": y, "reward_low_fn": z, "files": n, ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl std::fmt::Display for NabReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NAB ({} files): standard {:.1}, reward_low_FP {:.1}, reward_low_FN {:.1}",
            self.files, self.standard, self.reward_low_fp, self.reward_low_fn
        )?;
        write!(f, "; forecast 10-90% band coverage")?;
        for (h, c) in &self.forecast_coverage {
            write!(f, " {h} {:.1}%", c * 100.0)?;
        }
        Ok(())
    }
}

fn eval_err((what, message): data::DataError) -> AnalyzerError {
    AnalyzerError::Eval { what, message }
}

/// One input file, with its rows and windows.
struct Input {
    name: String,
    rows: Vec<(i64, f64)>,
    windows: Vec<(usize, usize)>,
}

/// Scores every row of `rows` with a fresh detector built by `make`.
pub fn score_series(rows: &[(i64, f64)], make: &dyn Fn() -> Ensemble) -> Vec<f64> {
    let mut detector = make();
    rows.iter()
        .map(|&(ts, v)| detector.update(ts, v).unwrap_or(0.0))
        .collect()
}

fn load(data: &Path) -> Result<Vec<Input>, AnalyzerError> {
    let windows = data::read_windows(&data.join("combined_windows.json")).map_err(eval_err)?;
    let mut inputs = Vec::new();
    for (name, win) in windows {
        let path = data.join(&name);
        if !path.is_file() {
            // combined_windows.json may list files of the full corpus.
            continue;
        }
        let rows = data::read_series(&path).map_err(eval_err)?;
        let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let windows = data::window_rows(&ts, &win);
        inputs.push(Input {
            name,
            rows,
            windows,
        });
    }
    if inputs.is_empty() {
        return Err(AnalyzerError::Eval {
            what: data.display().to_string(),
            message: "no NAB series found: expected <category>/<file>.csv files listed in \
                      combined_windows.json"
                .into(),
        });
    }
    Ok(inputs)
}

/// Runs `make`'s detector over every file (in parallel) and scores them.
fn score_all(inputs: &[Input], make: &(dyn Fn() -> Ensemble + Sync)) -> Vec<Vec<f64>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, inputs.len().max(1));
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); inputs.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    inputs
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, input)| (i, score_series(&input.rows, make)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            // A panicking worker leaves its files unscored (all zero).
            for (i, s) in h.join().unwrap_or_default() {
                results[i] = s;
            }
        }
    });
    results
}

fn write_results(out: &Path, input: &Input, scores: &[f64]) -> Result<(), AnalyzerError> {
    let (category, file) = input.name.rsplit_once('/').unwrap_or(("", &input.name));
    let dir = out.join(DETECTOR).join(category);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AnalyzerError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let path = dir.join(format!("{DETECTOR}_{file}"));
    let mut text = String::from("timestamp,value,anomaly_score,label\n");
    let mut windows = input.windows.iter().peekable();
    for (i, ((ts, value), score)) in input.rows.iter().zip(scores).enumerate() {
        while windows.next_if(|w| w.1 < i).is_some() {}
        let label = u8::from(windows.peek().is_some_and(|w| w.0 <= i));
        let ts = chrono::DateTime::from_timestamp_millis(*ts)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        text.push_str(&format!("{ts},{value},{score},{label}\n"));
    }
    std::fs::write(&path, text).map_err(io(&path))
}

/// Runs the evaluation with a detector built by `make` (one per file).
pub fn run_with(
    options: &NabOptions,
    make: &(dyn Fn() -> Ensemble + Sync),
) -> Result<NabReport, AnalyzerError> {
    let costs = data::read_profiles(&options.data.join("profiles.json")).map_err(eval_err)?;
    let inputs = load(&options.data)?;
    let scores = score_all(&inputs, make);
    if let Some(out) = &options.out {
        for (input, s) in inputs.iter().zip(&scores) {
            write_results(out, input, s)?;
        }
    }
    let files: Vec<ScoredFile> = inputs
        .iter()
        .zip(scores)
        .map(|(input, scores)| ScoredFile {
            rows: label_rows(input.rows.len(), &input.windows),
            windows: input.windows.len(),
            scores,
        })
        .collect();
    let windows: usize = files.iter().map(|f| f.windows).sum();
    let forecast = ForecastConfig::default();
    let mut tally = [(0usize, 0usize); 3];
    for input in &inputs {
        for (t, (hit, total)) in tally.iter_mut().zip(coverage(&forecast, &input.rows)) {
            t.0 += hit;
            t.1 += total;
        }
    }
    let forecast_coverage = HORIZONS
        .iter()
        .zip(tally)
        .filter(|(_, (_, total))| *total > 0)
        .map(|((_, h), (hit, total))| (h.to_string(), hit as f64 / total as f64))
        .collect();
    let best = optimise(&files, &costs);
    let norm = |i: usize| normalise(best[i].1, windows, &costs[i]);
    Ok(NabReport {
        standard: norm(0),
        reward_low_fp: norm(1),
        reward_low_fn: norm(2),
        files: files.len(),
        thresholds: [best[0].0, best[1].0, best[2].0],
        windows,
        forecast_coverage,
    })
}

/// Runs the evaluation with [`EnsembleConfig::nab`].
pub fn run(options: &NabOptions) -> Result<NabReport, AnalyzerError> {
    run_with(options, &|| Ensemble::new(EnsembleConfig::nab()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores of noise with two spikes `gap` points apart.
    fn two_spikes(cfg: EnsembleConfig, gap: i64) -> (f64, f64) {
        let mut d = Ensemble::new(cfg);
        let noise = |i: i64| ((i * 7919) % 23) as f64 / 23.0;
        let mut score = |i: i64, v: f64| d.update(i * 300_000, v).unwrap_or(0.0);
        for i in 0..2000 {
            score(i, 10.0 + noise(i));
        }
        let first = score(2000, 30.0);
        for i in 2001..2000 + gap {
            score(i, 10.0 + noise(i));
        }
        (first, score(2000 + gap, 60.0))
    }

    #[test]
    fn a_second_event_after_calm_alarms_again() {
        let alarm = EnsembleConfig::nab().alarm;
        let (first, second) = two_spikes(EnsembleConfig::nab(), 60);
        assert!(first >= alarm && second >= alarm, "{first} {second}");
        // Without re-arming, the second spike falls in the first's
        // refractory period.
        let no_rearm = EnsembleConfig {
            rearm_below: None,
            ..EnsembleConfig::nab()
        };
        let (first, second) = two_spikes(no_rearm, 60);
        assert!(first >= alarm && second == 0.0, "{first} {second}");
    }
}
