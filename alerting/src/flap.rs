//! Flap detection: an alert whose state (firing, resolved) changes more
//! than `flap_changes` times within `flap_window` is flapping. While it
//! flaps, the dispatcher holds it firing instead of resolving and
//! re-firing it, notifies its group once more (the alert annotated
//! `flapping="true"` and `flap_changes="<changes in the window>"`), and
//! stays quiet about it; once no change came for `flap_quiet`, it leaves
//! that state, resolved if its last report was a resolution.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Flap detection settings (`[alerting.flapping]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlapConfig {
    /// More state changes than this within `window` make an alert
    /// flapping; 0 turns flap detection off.
    pub changes: u32,
    /// The window over which changes are counted.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// A flapping alert without a change for this long stops flapping.
    #[serde(with = "humantime_serde")]
    pub quiet: Duration,
}

impl Default for FlapConfig {
    fn default() -> Self {
        Self {
            changes: 6,
            window: Duration::from_secs(10 * 60),
            quiet: Duration::from_secs(10 * 60),
        }
    }
}

#[derive(Debug, Clone)]
struct State {
    firing: bool,
    changes: VecDeque<i64>,
    flapping: bool,
    last_change_ms: i64,
}

/// What [`Flaps::observe`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// The alert is flapping (hold it firing).
    pub flapping: bool,
    /// It started flapping with this report (notify its group).
    pub started: bool,
}

/// Per fingerprint, the recent state changes.
#[derive(Debug, Clone)]
pub struct Flaps {
    config: FlapConfig,
    by_fp: BTreeMap<String, State>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Flaps {
    /// Flap detection with `config`.
    pub fn new(config: FlapConfig) -> Self {
        Self {
            config,
            by_fp: BTreeMap::new(),
        }
    }

    /// Takes in a report of alert `fp` (firing or resolved) at `now_ms`.
    pub fn observe(&mut self, fp: &str, firing: bool, now_ms: i64) -> Observed {
        if self.config.changes == 0 {
            return Observed {
                flapping: false,
                started: false,
            };
        }
        let window = ms(self.config.window);
        let state = self.by_fp.entry(fp.to_string()).or_insert(State {
            firing: false,
            changes: VecDeque::new(),
            flapping: false,
            last_change_ms: now_ms,
        });
        if state.firing != firing {
            state.firing = firing;
            state.changes.push_back(now_ms);
            state.last_change_ms = now_ms;
        }
        while state
            .changes
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) > window)
        {
            state.changes.pop_front();
        }
        let started = !state.flapping && state.changes.len() > self.config.changes as usize;
        state.flapping |= started;
        Observed {
            flapping: state.flapping,
            started,
        }
    }

    /// Whether `fp` is flapping.
    pub fn is_flapping(&self, fp: &str) -> bool {
        self.by_fp.get(fp).is_some_and(|s| s.flapping)
    }

    /// The changes within the window of a flapping `fp`; `None` if it is
    /// not flapping.
    pub fn changes(&self, fp: &str) -> Option<usize> {
        self.by_fp
            .get(fp)
            .filter(|s| s.flapping)
            .map(|s| s.changes.len())
    }

    /// Ends flapping for alerts quiet for `quiet` at `now_ms`; returns those
    /// whose last report was a resolution, with its time. Forgets alerts
    /// with no change within the window.
    pub fn settle(&mut self, now_ms: i64) -> Vec<(String, i64)> {
        let quiet = ms(self.config.quiet);
        let window = ms(self.config.window);
        let mut resolved = Vec::new();
        for (fp, s) in self.by_fp.iter_mut() {
            if s.flapping && now_ms.saturating_sub(s.last_change_ms) >= quiet {
                s.flapping = false;
                s.changes.clear();
                if !s.firing {
                    resolved.push((fp.clone(), s.last_change_ms));
                }
            }
        }
        self.by_fp.retain(|_, s| {
            s.flapping || s.firing || now_ms.saturating_sub(s.last_change_ms) <= window
        });
        resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_changes_than_allowed_in_the_window_flap_until_quiet() {
        let mut f = Flaps::new(FlapConfig {
            changes: 3,
            window: Duration::from_secs(60),
            quiet: Duration::from_secs(120),
        });
        let s = 1000;
        // Slow changes never flap.
        for i in 0..10 {
            assert!(!f.observe("a", i % 2 == 0, i * 61 * s).flapping);
        }
        let t0 = 100_000 * s;
        let seen: Vec<Observed> = (0..6)
            .map(|i| f.observe("b", i % 2 == 0, t0 + i * 5 * s))
            .collect();
        assert!(!seen[2].flapping, "3 changes are allowed");
        assert_eq!(
            seen[3],
            Observed {
                flapping: true,
                started: true
            }
        );
        assert!(seen[4].flapping && !seen[4].started, "started once");
        assert_eq!(f.changes("b"), Some(6));
        // Re-reports of the same state are not changes.
        f.observe("b", false, t0 + 30 * s);
        assert_eq!(f.changes("b"), Some(6));
        assert!(f.settle(t0 + 100 * s).is_empty(), "not quiet yet");
        let done = f.settle(t0 + 25 * s + 120 * s);
        assert_eq!(done, [("b".to_string(), t0 + 25 * s)]);
        assert!(!f.is_flapping("b"));
        let mut off = Flaps::new(FlapConfig {
            changes: 0,
            ..FlapConfig::default()
        });
        assert!((0..100).all(|i| !off.observe("c", i % 2 == 0, i).flapping));
    }
}
