//! Anomaly episodes: turns each series' anomaly scores into onset and end
//! events for `vigie.anomalies` (see [`vigie_model::AnomalyEvent`]).
//!
//! A score at or above `onset` starts an episode, one below `end` (lower:
//! hysteresis) ends it. At most one onset per series is announced per
//! `min_interval`: an episode starting sooner is followed silently (no
//! onset, no end). A series' first `warmup_points` scores are ignored.
//! Memory: a few bytes per scored series. Not checkpointed: after a
//! restart a series warms up again, and one still anomalous then announces
//! a new onset.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_model::{AnomalyEvent, AnomalyPhase, Sample};

use crate::score::{ANOMALY_SCORE, FOR_LABEL};

/// `[analyzer.anomaly_events]`: when a score makes an onset or end event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EpisodeConfig {
    /// Publish events at all.
    pub enabled: bool,
    /// A score at or above this starts an episode (the shipped rule
    /// `AnomalyScoreHigh` alerts above 0.9999).
    pub onset: f64,
    /// A score below this ends it; at most `onset`.
    pub end: f64,
    /// At most one onset per series within this long.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// A series' first scores start no episode: its detector is still
    /// learning the series' range (a wave's first cycle scores 1).
    pub warmup_points: u32,
}

impl Default for EpisodeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            onset: 0.9999,
            end: 0.99,
            min_interval: Duration::from_secs(10 * 60),
            warmup_points: 30,
        }
    }
}

impl EpisodeConfig {
    /// Problems with this section, as `(key, message)` pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let key = |k: &str| format!("analyzer.anomaly_events.{k}");
        if !(self.onset > 0.0 && self.onset <= 1.0) {
            out.push((
                key("onset"),
                "must be in (0, 1], e.g. 0.9999 (the threshold of rules/anomaly.yml)".into(),
            ));
        }
        if !(self.end >= 0.0 && self.end <= self.onset) {
            out.push((
                key("end"),
                format!("must be between 0 and onset ({}), e.g. 0.99", self.onset),
            ));
        }
        out
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    /// Scores seen, up to `warmup_points`.
    points: u32,
    /// In an episode now.
    active: bool,
    /// The current episode's onset was published (so its end is too).
    announced: bool,
    /// Time of the last published onset.
    last_onset_ms: Option<i64>,
}

/// What [`Episodes::observe`] decided for a batch of scores.
#[derive(Debug, Default)]
pub struct Observed {
    /// Events to publish, in score order.
    pub events: Vec<AnomalyEvent>,
    /// Onsets not announced because of `min_interval`.
    pub suppressed: usize,
}

/// Per scored series, whether it is in an anomaly episode.
#[derive(Debug)]
pub struct Episodes {
    config: EpisodeConfig,
    by_series: HashMap<u64, State>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Episodes {
    /// Episode tracking with `config`.
    pub fn new(config: EpisodeConfig) -> Self {
        Self {
            config,
            by_series: HashMap::new(),
        }
    }

    /// Series tracked (one small entry per scored series).
    pub fn len(&self) -> usize {
        self.by_series.len()
    }

    /// Whether no series is tracked.
    pub fn is_empty(&self) -> bool {
        self.by_series.is_empty()
    }

    /// Takes in derived samples (as [`crate::score::ScoreBank::score`]
    /// returns them); only `vigie_anomaly_score` points count. Returns the
    /// events to publish.
    pub fn observe(&mut self, scores: &[Sample]) -> Observed {
        let mut out = Observed::default();
        if !self.config.enabled {
            return out;
        }
        let gap = ms(self.config.min_interval);
        let warmup = self.config.warmup_points;
        for s in scores {
            if s.series.metric != ANOMALY_SCORE || s.value.is_nan() {
                continue;
            }
            let st = self.by_series.entry(s.series.id()).or_default();
            if st.points < warmup {
                // Scores of a detector still learning its series' range.
                st.points += 1;
                continue;
            }
            if !st.active && s.value >= self.config.onset {
                let announce = st
                    .last_onset_ms
                    .is_none_or(|t| s.ts_ms.saturating_sub(t) >= gap);
                st.active = true;
                st.announced = announce;
                if announce {
                    st.last_onset_ms = Some(s.ts_ms);
                    out.events.push(event(AnomalyPhase::Onset, s));
                } else {
                    out.suppressed += 1;
                }
            } else if st.active && s.value < self.config.end {
                if st.announced {
                    out.events.push(event(AnomalyPhase::End, s));
                }
                st.active = false;
                st.announced = false;
            }
        }
        out
    }
}

/// The event of score sample `s` (labels without `for`).
fn event(phase: AnomalyPhase, s: &Sample) -> AnomalyEvent {
    let mut labels = s.series.labels.clone();
    let metric = labels.remove(FOR_LABEL).unwrap_or_default();
    AnomalyEvent {
        phase,
        metric,
        labels,
        score: s.value,
        at_ms: s.ts_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_model::Labels;

    fn score(host: &str, ts_ms: i64, value: f64) -> Sample {
        let labels = Labels::new()
            .with("host", host)
            .with(FOR_LABEL, "node_load1");
        Sample::new(ANOMALY_SCORE, labels, ts_ms, value)
    }

    fn phases(o: &Observed) -> Vec<(AnomalyPhase, i64)> {
        o.events.iter().map(|e| (e.phase, e.at_ms)).collect()
    }

    fn no_warmup() -> Episodes {
        Episodes::new(EpisodeConfig {
            warmup_points: 0,
            ..EpisodeConfig::default()
        })
    }

    #[test]
    fn onset_then_end_with_hysteresis() {
        let mut e = no_warmup();
        let o = e.observe(&[
            score("a", 1_000, 0.5),
            score("a", 2_000, 0.99995),
            score("a", 3_000, 1.0),
            // Between end and onset: still in the episode.
            score("a", 4_000, 0.995),
            score("a", 5_000, 0.3),
        ]);
        assert_eq!(
            phases(&o),
            vec![(AnomalyPhase::Onset, 2_000), (AnomalyPhase::End, 5_000)]
        );
        let onset = &o.events[0];
        assert_eq!(onset.metric, "node_load1");
        assert_eq!(onset.labels, Labels::new().with("host", "a"));
        assert_eq!(o.suppressed, 0);
    }

    #[test]
    fn one_onset_per_series_per_min_interval() {
        let mut e = no_warmup();
        let minute = 60_000;
        let o = e.observe(&[
            score("a", 0, 1.0),
            score("a", minute, 0.1),
            // A second episode 2 minutes later: followed, not announced.
            score("a", 2 * minute, 1.0),
            score("a", 3 * minute, 0.1),
            // Another series is independent.
            score("b", 3 * minute, 1.0),
            // After 10 minutes, announced again.
            score("a", 11 * minute, 1.0),
        ]);
        assert_eq!(
            phases(&o),
            vec![
                (AnomalyPhase::Onset, 0),
                (AnomalyPhase::End, minute),
                (AnomalyPhase::Onset, 3 * minute),
                (AnomalyPhase::Onset, 11 * minute),
            ]
        );
        assert_eq!(o.events[2].labels.get("host"), Some("b"));
        assert_eq!(o.suppressed, 1);
    }

    #[test]
    fn warm_up_scores_and_other_metrics_start_nothing() {
        let mut e = Episodes::new(EpisodeConfig {
            warmup_points: 3,
            ..EpisodeConfig::default()
        });
        let o = e.observe(&[
            Sample::new("vigie_forecast", Labels::new(), 0, 1.0),
            score("a", 0, 1.0),
            score("a", 1_000, 1.0),
            score("a", 2_000, 0.2),
            score("a", 3_000, 1.0),
        ]);
        assert_eq!(phases(&o), vec![(AnomalyPhase::Onset, 3_000)]);
        assert_eq!(e.len(), 1);
        let mut off = Episodes::new(EpisodeConfig {
            enabled: false,
            warmup_points: 0,
            ..EpisodeConfig::default()
        });
        assert!(off.observe(&[score("a", 0, 1.0)]).events.is_empty());
    }

    #[test]
    fn problems_name_the_key() {
        assert!(EpisodeConfig::default().problems().is_empty());
        let bad = EpisodeConfig {
            onset: 0.5,
            end: 0.9,
            ..EpisodeConfig::default()
        };
        let p = bad.problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "analyzer.anomaly_events.end");
    }
}
