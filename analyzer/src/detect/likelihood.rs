//! Anomaly likelihood (after Numenta's `AnomalyLikelihood`): how unusual
//! the recent short-window average of raw scores is against the long-run
//! distribution of that average.
//!
//! Raw scores are averaged over the last `short` points; the averages of
//! the last `long` points give a mean and standard deviation (floored at
//! `min_std`); the likelihood of a point is `Φ((avg − mean) / std)` with
//! the distribution taken from earlier points only (causal). Until
//! `learning` averages have been seen there is no likelihood.
//!
//! [`log_scale`] maps a likelihood to a score that spreads the values near
//! 1 (0.5 at a tail of 10⁻⁵, 1 at 10⁻¹⁰), as NAB's Numenta detector does.
//!
//! Memory: a ring buffer of `short` values, and the long-run history as
//! at most [`MAX_BLOCKS`] blocks of running sums (each block sums
//! `⌈long / MAX_BLOCKS⌉` consecutive averages), so a series
//! costs a few kilobytes whatever `long` is. The long window therefore
//! holds between `long` and `long + block − 1` averages (exactly `long`
//! when `long ≤ MAX_BLOCKS`). Raw scores that are not finite are treated
//! as 0 and clamped to `[0, 1]`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

/// Numenta-style anomaly likelihood over raw scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnomalyLikelihood {
    short: usize,
    long: usize,
    learning: usize,
    min_std: f64,
    recent: VecDeque<f64>,
    recent_sum: f64,
    /// Long-run history before blocks existed (checkpoints of older
    /// versions); folded into `blocks` on the next update.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    history: VecDeque<f64>,
    /// Long-run history, oldest first; only the last block may be partial.
    #[serde(default)]
    blocks: VecDeque<Block>,
    /// Averages per block (0 in older checkpoints: derived from `long`).
    #[serde(default)]
    block: usize,
    /// Averages held in `blocks`.
    #[serde(default)]
    count: usize,
    sum: f64,
    sum_sq: f64,
    since_resum: usize,
}

/// Blocks of the long-run history at most (plus one partial block).
pub const MAX_BLOCKS: usize = 256;

/// Running sums of consecutive averages.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Block {
    n: u32,
    sum: f64,
    sum_sq: f64,
}

/// Maps a likelihood in `[0, 1]` to `ln(1 + 1e-10 − l) / ln(1e-10)` in `[0, 1]`.
pub fn log_scale(likelihood: f64) -> f64 {
    let l = if likelihood.is_finite() {
        likelihood.clamp(0.0, 1.0)
    } else {
        0.0
    };
    ((1.0 + 1e-10 - l).ln() / 1e-10f64.ln()).clamp(0.0, 1.0)
}

impl AnomalyLikelihood {
    /// A likelihood over `short`-point averages, judged against the last
    /// `long` averages, available after `learning` points; `min_std`
    /// floors the standard deviation.
    pub fn new(short: usize, long: usize, learning: usize, min_std: f64) -> Self {
        let long = long.max(2);
        Self {
            short: short.max(1),
            long,
            learning: learning.clamp(2, long),
            min_std: min_std.max(1e-9),
            recent: VecDeque::new(),
            recent_sum: 0.0,
            history: VecDeque::new(),
            blocks: VecDeque::new(),
            block: block_len(long),
            count: 0,
            sum: 0.0,
            sum_sq: 0.0,
            since_resum: 0,
        }
    }

    /// Numenta's settings for 5-minute data: average of 10, history 8640,
    /// learning 300, std floor 0.0173 (variance 3·10⁻⁴).
    pub fn numenta() -> Self {
        Self::new(10, 8640, 300, 0.0173)
    }

    /// Feeds one raw score; returns the likelihood once learned.
    pub fn update(&mut self, raw: f64) -> Option<f64> {
        let raw = if raw.is_finite() {
            raw.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.recent.push_back(raw);
        self.recent_sum += raw;
        if self.recent.len() > self.short {
            self.recent_sum -= self.recent.pop_front().unwrap_or(0.0);
        }
        let avg = (self.recent_sum / self.recent.len() as f64).max(0.0);
        if !self.history.is_empty() || self.block == 0 {
            self.migrate();
        }
        let n = self.count;
        let likelihood = (n >= self.learning).then(|| {
            let mean = self.sum / n as f64;
            let var = (self.sum_sq / n as f64 - mean * mean).max(0.0);
            let std = var.sqrt().max(self.min_std);
            Normal::standard().cdf((avg - mean) / std)
        });
        self.push(avg);
        self.since_resum += 1;
        if self.since_resum >= self.long {
            // Running sums drift; recompute them exactly now and then.
            self.since_resum = 0;
            self.sum = self.blocks.iter().map(|b| b.sum).sum();
            self.sum_sq = self.blocks.iter().map(|b| b.sum_sq).sum();
            self.recent_sum = self.recent.iter().sum();
        }
        likelihood
    }

    /// Starts loading the memory the next update reads (see
    /// [`super::common::prefetch`]).
    pub(crate) fn prefetch(&self) {
        use super::common::prefetch_one;
        prefetch_one(self.recent.front());
        prefetch_one(self.recent.back());
        prefetch_one(self.blocks.back());
    }

    /// Appends one average to the long-run history and drops the oldest
    /// block once the rest still holds `long` averages.
    fn push(&mut self, avg: f64) {
        let block = self.block.max(1);
        if self.blocks.back().is_none_or(|b| b.n as usize >= block) {
            self.blocks.push_back(Block::default());
        }
        if let Some(b) = self.blocks.back_mut() {
            b.n += 1;
            b.sum += avg;
            b.sum_sq += avg * avg;
        }
        self.count += 1;
        self.sum += avg;
        self.sum_sq += avg * avg;
        loop {
            // Every block but the last is full: the front's size is known
            // without reading it, which saves a cache line on most points.
            let front_n = if self.blocks.len() > 1 {
                block
            } else {
                self.blocks.front().map_or(0, |b| b.n as usize)
            };
            if self.count - front_n < self.long {
                break;
            }
            let Some(front) = self.blocks.front().copied() else {
                break;
            };
            self.blocks.pop_front();
            self.count -= front.n as usize;
            self.sum -= front.sum;
            self.sum_sq -= front.sum_sq;
        }
    }

    /// Folds a checkpoint of an older version (plain history) into blocks.
    fn migrate(&mut self) {
        self.block = block_len(self.long);
        let history = std::mem::take(&mut self.history);
        self.blocks.clear();
        (self.count, self.sum, self.sum_sq) = (0, 0.0, 0.0);
        for avg in history {
            self.push(avg);
        }
    }
}

/// Averages per block for a long window of `long`.
fn block_len(long: usize) -> usize {
    long.div_ceil(MAX_BLOCKS).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_after_quiet_is_likely_anomalous() {
        let mut l = AnomalyLikelihood::new(5, 200, 50, 0.01);
        for i in 0..50 {
            assert_eq!(l.update(0.1 + (i % 3) as f64 * 0.05), None);
        }
        let mut typical: f64 = 0.0;
        for i in 0..100 {
            typical = typical.max(l.update(0.1 + (i % 3) as f64 * 0.05).expect("learned"));
        }
        assert!(typical < 0.99, "typical {typical}");
        let burst = l.update(1.0).expect("learned");
        assert!(burst > 0.9999, "burst {burst}");
        assert!(log_scale(burst) > 0.3);
    }

    #[test]
    fn log_scale_is_monotone_and_bounded() {
        assert_eq!(log_scale(0.0), 0.0);
        assert!((log_scale(0.99999) - 0.5).abs() < 1e-3);
        assert!(log_scale(1.0) > 0.99);
        assert_eq!(log_scale(f64::NAN), 0.0);
        assert!(log_scale(0.9) < log_scale(0.99));
    }

    /// The likelihood over an exact window of the last `long` averages,
    /// computed from scratch.
    fn exact(
        raws: &[f64],
        short: usize,
        long: usize,
        learning: usize,
        min_std: f64,
    ) -> Vec<Option<f64>> {
        let mut avgs: Vec<f64> = Vec::new();
        let mut out = Vec::new();
        for i in 0..raws.len() {
            let lo = (i + 1).saturating_sub(short);
            let avg = raws[lo..=i].iter().sum::<f64>() / (i + 1 - lo) as f64;
            let hist = &avgs[avgs.len().saturating_sub(long)..];
            out.push((hist.len() >= learning).then(|| {
                let n = hist.len() as f64;
                let mean = hist.iter().sum::<f64>() / n;
                let var = (hist.iter().map(|v| v * v).sum::<f64>() / n - mean * mean).max(0.0);
                Normal::standard().cdf((avg - mean) / var.sqrt().max(min_std))
            }));
            avgs.push(avg);
        }
        out
    }

    #[test]
    fn short_long_window_is_exact() {
        let raws: Vec<f64> = (0..2000)
            .map(|i| ((i * 7919) % 101) as f64 / 100.0)
            .collect();
        let mut l = AnomalyLikelihood::new(5, 200, 50, 0.01);
        let got: Vec<Option<f64>> = raws.iter().map(|r| l.update(*r)).collect();
        for (i, (g, e)) in got.iter().zip(exact(&raws, 5, 200, 50, 0.01)).enumerate() {
            match (g, e) {
                (Some(g), Some(e)) => assert!((g - e).abs() < 1e-9, "point {i}: {g} vs {e}"),
                (g, e) => assert_eq!(g.is_some(), e.is_some(), "point {i}"),
            }
        }
    }

    #[test]
    fn long_history_is_blocks_of_bounded_size() {
        let long = 8640;
        let mut l = AnomalyLikelihood::new(10, long, 300, 0.0173);
        let raws: Vec<f64> = (0..30_000).map(|i| ((i * 31) % 97) as f64 / 96.0).collect();
        let got: Vec<Option<f64>> = raws.iter().map(|r| l.update(*r)).collect();
        let block = long.div_ceil(MAX_BLOCKS);
        assert!(
            l.blocks.len() <= MAX_BLOCKS + 1,
            "{} blocks",
            l.blocks.len()
        );
        assert!(
            (long..long + block).contains(&l.count),
            "{} averages",
            l.count
        );
        // The window is a few averages longer than `long` at most, so the
        // likelihoods stay close to the exact ones.
        let exact = exact(&raws, 10, long, 300, 0.0173);
        let worst = got
            .iter()
            .zip(&exact)
            .filter_map(|(g, e)| Some((g.as_ref()? - e.as_ref()?).abs()))
            .fold(0.0, f64::max);
        assert!(worst < 0.01, "largest difference {worst}");
    }

    #[test]
    fn checkpoint_of_an_older_version_is_folded_into_blocks() {
        let mut current = AnomalyLikelihood::new(3, 100, 10, 0.01);
        for i in 0..150 {
            current.update((i % 7) as f64 / 7.0);
        }
        // What an older version wrote: the plain history of averages.
        let mut old = serde_json::to_value(&current).expect("json");
        let history: Vec<f64> = {
            let mut l = AnomalyLikelihood::new(3, 100, 10, 0.01);
            (0..150).for_each(|i| {
                l.update((i % 7) as f64 / 7.0);
            });
            l.blocks.iter().map(|b| b.sum).collect()
        };
        let obj = old.as_object_mut().expect("object");
        obj.remove("blocks");
        obj.remove("block");
        obj.remove("count");
        obj.insert("history".into(), serde_json::json!(history));
        let mut migrated: AnomalyLikelihood = serde_json::from_value(old).expect("older shape");
        for i in 150..200 {
            let r = (i % 7) as f64 / 7.0;
            let (m, c) = (migrated.update(r), current.update(r));
            let (m, c) = (m.expect("learned"), c.expect("learned"));
            assert!((m - c).abs() < 1e-9, "point {i}: {m} vs {c}");
        }
    }

    #[test]
    fn bad_raw_scores_and_bounded_memory() {
        let mut l = AnomalyLikelihood::new(3, 20, 5, 0.01);
        for i in 0..1000 {
            let raw = match i % 4 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => -3.0,
                _ => 0.5,
            };
            if let Some(p) = l.update(raw) {
                assert!((0.0..=1.0).contains(&p));
            }
        }
        assert!(l.count <= 20 && l.blocks.len() <= 20 && l.recent.len() <= 3);
    }
}
