//! NAB's scoring rules, after the published description and NAB's
//! `sweeper.py`: probationary period, windows, scaled sigmoid rewards,
//! threshold sweep and normalisation. Pure functions, no I/O.

/// NAB's scaled sigmoid of a relative position: `2 / (1 + e^{5y}) − 1`,
/// and `−1` beyond `y = 3`.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// Rows ignored at the start of a file: `min(floor(0.15 n), 750)`.
pub fn probationary_length(rows: usize) -> usize {
    ((rows as f64 * 0.15).floor() as usize).min(750)
}

/// Weights of one scoring profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostMatrix {
    /// True positive weight.
    pub tp: f64,
    /// False positive weight.
    pub fp: f64,
    /// False negative (missed window) weight.
    pub fn_: f64,
}

/// What a detection on a row is worth (before weights).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Row {
    /// In the probationary period: ignored.
    Probation,
    /// Inside window `window` (index within the file): a true positive
    /// worth `reward` (the scaled sigmoid of its position).
    Window {
        /// Window index in the file.
        window: usize,
        /// Unweighted reward, in `(0, 1)`.
        reward: f64,
    },
    /// Outside every window: a false positive worth `penalty` (≤ 0).
    Outside {
        /// Unweighted penalty, in `[−1, 0]`.
        penalty: f64,
    },
}

/// Labels every row of a file of `rows` rows with windows given as
/// inclusive row ranges (sorted, non-overlapping).
pub fn label_rows(rows: usize, windows: &[(usize, usize)]) -> Vec<Row> {
    let probation = probationary_length(rows);
    let mut out = Vec::with_capacity(rows);
    let mut next = 0;
    let mut previous: Option<(usize, f64)> = None; // (right index, width)
    for i in 0..rows {
        while next < windows.len() && windows[next].1 < i {
            let (left, right) = windows[next];
            previous = Some((right, (right - left + 1) as f64));
            next += 1;
        }
        let row = match windows.get(next) {
            Some(&(left, right)) if i >= left => {
                let width = (right - left + 1) as f64;
                let position = -((right - i + 1) as f64) / width;
                Row::Window {
                    window: next,
                    reward: scaled_sigmoid(position),
                }
            }
            _ => match previous {
                None => Row::Outside { penalty: -1.0 },
                Some((right, width)) => {
                    let position = (i - right) as f64 / (width - 1.0).max(1.0);
                    Row::Outside {
                        penalty: scaled_sigmoid(position),
                    }
                }
            },
        };
        out.push(if i < probation { Row::Probation } else { row });
    }
    out
}

/// One file ready for scoring: row labels, window count and scores.
#[derive(Debug, Clone)]
pub struct ScoredFile {
    /// Row labels (see [`label_rows`]).
    pub rows: Vec<Row>,
    /// Number of labelled windows.
    pub windows: usize,
    /// Detector score per row, in `[0, 1]`.
    pub scores: Vec<f64>,
}

/// The parts of a score at one threshold, before weights.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tally {
    /// Sum of the best reward per detected window.
    pub tp: f64,
    /// Sum of false positive penalties (≤ 0).
    pub fp: f64,
    /// Windows detected.
    pub detected: usize,
    /// Windows in total.
    pub windows: usize,
}

impl Tally {
    /// Weighted score.
    pub fn score(&self, cost: &CostMatrix) -> f64 {
        cost.tp * self.tp + cost.fp * self.fp - cost.fn_ * (self.windows - self.detected) as f64
    }
}

/// Tally of a file (or files) at `threshold` (detection = score ≥ threshold).
pub fn tally(files: &[ScoredFile], threshold: f64) -> Tally {
    let mut t = Tally::default();
    for f in files {
        let mut best = vec![None::<f64>; f.windows];
        t.windows += f.windows;
        for (row, score) in f.rows.iter().zip(&f.scores) {
            if *score < threshold {
                continue;
            }
            match *row {
                Row::Probation => {}
                Row::Window { window, reward } => {
                    if let Some(b) = best.get_mut(window) {
                        *b = Some(b.map_or(reward, |x: f64| x.max(reward)));
                    }
                }
                Row::Outside { penalty } => t.fp += penalty,
            }
        }
        for b in best.into_iter().flatten() {
            t.tp += b;
            t.detected += 1;
        }
    }
    t
}

/// Best threshold and score of `files` for each cost matrix: sweeps every
/// distinct score value (and "never detect") in one pass.
pub fn optimise(files: &[ScoredFile], costs: &[CostMatrix]) -> Vec<(f64, f64)> {
    let mut windows_total = 0;
    let mut points: Vec<(f64, Row, usize)> = Vec::new();
    for f in files {
        for (row, score) in f.rows.iter().zip(&f.scores) {
            match *row {
                Row::Probation => {}
                Row::Window { window, reward } => points.push((
                    *score,
                    Row::Window {
                        window: windows_total + window,
                        reward,
                    },
                    0,
                )),
                r @ Row::Outside { .. } => points.push((*score, r, 0)),
            }
        }
        windows_total += f.windows;
    }
    points.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut best_reward = vec![None::<f64>; windows_total];
    let mut tally = Tally {
        windows: windows_total,
        ..Tally::default()
    };
    let mut best: Vec<(f64, f64)> = costs
        .iter()
        .map(|c| (f64::INFINITY, tally.score(c)))
        .collect();
    let mut i = 0;
    while i < points.len() {
        let threshold = points[i].0;
        while i < points.len() && points[i].0 == threshold {
            match points[i].1 {
                Row::Window { window, reward } => {
                    let slot = &mut best_reward[window];
                    match *slot {
                        None => {
                            tally.tp += reward;
                            tally.detected += 1;
                            *slot = Some(reward);
                        }
                        Some(old) if reward > old => {
                            tally.tp += reward - old;
                            *slot = Some(reward);
                        }
                        Some(_) => {}
                    }
                }
                Row::Outside { penalty } => tally.fp += penalty,
                Row::Probation => {}
            }
            i += 1;
        }
        for (b, c) in best.iter_mut().zip(costs) {
            let s = tally.score(c);
            if s > b.1 {
                *b = (threshold, s);
            }
        }
    }
    best
}

/// NAB's normalised score: `100 (S − S_null) / (S_perfect − S_null)`, with
/// the null detector missing every window and the perfect one detecting
/// each at its first row.
pub fn normalise(score: f64, windows: usize, cost: &CostMatrix) -> f64 {
    let null = -cost.fn_ * windows as f64;
    let perfect = cost.tp * scaled_sigmoid(-1.0) * windows as f64;
    if perfect - null <= 0.0 {
        return 0.0;
    }
    100.0 * (score - null) / (perfect - null)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: CostMatrix = CostMatrix {
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    };

    /// 100 rows (probation 15), one window on rows 40..=49 (width 10).
    fn file(detect: &[usize]) -> ScoredFile {
        let mut scores = vec![0.0; 100];
        for &i in detect {
            scores[i] = 1.0;
        }
        ScoredFile {
            rows: label_rows(100, &[(40, 49)]),
            windows: 1,
            scores,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn sigmoid_values() {
        // 2/(1+e^-5) - 1
        assert!(close(scaled_sigmoid(-1.0), 0.986_614_298_151_430_3));
        assert!(close(scaled_sigmoid(0.0), 0.0));
        assert_eq!(scaled_sigmoid(3.5), -1.0);
        assert_eq!(probationary_length(100), 15);
        assert_eq!(probationary_length(100_000), 750);
    }

    #[test]
    fn detection_at_window_start_earns_full_reward() {
        let t = tally(&[file(&[40])], 0.5);
        assert!(close(t.tp, scaled_sigmoid(-1.0)));
        assert!(close(t.score(&STANDARD), 0.986_614_298_151_430_3));
        assert!(close(normalise(t.score(&STANDARD), 1, &STANDARD), 100.0));
    }

    #[test]
    fn detection_at_window_end_earns_little_and_only_first_counts() {
        // Row 49: position −1/10 → 2/(1+e^-0.5) − 1.
        let t = tally(&[file(&[49])], 0.5);
        let expected = 2.0 / (1.0 + (-0.5f64).exp()) - 1.0;
        assert!(close(t.tp, expected), "{}", t.tp);
        // Rows 45 and 49: only the earliest (best) counts: position −5/10.
        let t = tally(&[file(&[45, 49])], 0.5);
        assert!(close(t.tp, 2.0 / (1.0 + (-2.5f64).exp()) - 1.0));
        assert_eq!(t.detected, 1);
    }

    #[test]
    fn false_positives_and_misses() {
        // Before any window: −1 × A_FP; window missed: −A_FN.
        let t = tally(&[file(&[20])], 0.5);
        assert!(close(t.score(&STANDARD), -0.11 - 1.0));
        // Row 54: 5 rows after the window end (49), width 10 → position 5/9.
        let t = tally(&[file(&[40, 54])], 0.5);
        let fp = 2.0 / (1.0 + (25.0f64 / 9.0).exp()) - 1.0;
        assert!(close(t.fp, fp), "{} vs {fp}", t.fp);
        // Far after the window: −1.
        let t = tally(&[file(&[99])], 0.5);
        assert!(close(t.fp, -1.0));
        // Probation is ignored; no detection scores the null score (normalised 0).
        let t = tally(&[file(&[3])], 0.5);
        assert!(close(t.score(&STANDARD), -1.0));
        assert!(close(normalise(t.score(&STANDARD), 1, &STANDARD), 0.0));
    }

    #[test]
    fn optimise_matches_tally_at_the_best_threshold() {
        let mut f = file(&[]);
        f.scores[20] = 0.9; // FP before the window
        f.scores[44] = 0.7; // TP
        f.scores[80] = 0.6; // FP after
        let files = [f];
        let best = optimise(&files, &[STANDARD]);
        assert!(close(best[0].0, 0.7));
        assert!(close(best[0].1, tally(&files, 0.7).score(&STANDARD)));
        for th in [0.0, 0.6, 0.65, 0.8, 0.95] {
            assert!(tally(&files, th).score(&STANDARD) <= best[0].1 + 1e-12);
        }
    }
}
