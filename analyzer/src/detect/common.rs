//! Helpers shared by the detectors: input guard and score conversions.

use serde::{Deserialize, Serialize};
use statrs::function::erf::erf;

/// Rejects unusable points: NaN/±Inf values and timestamps at or before the
/// last accepted one (duplicates and out-of-order points).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Guard {
    last_ts: Option<i64>,
}

impl Guard {
    /// True when the point is usable; then it becomes the last one seen.
    pub(crate) fn accept(&mut self, ts_ms: i64, value: f64) -> bool {
        if !value.is_finite() || self.last_ts.is_some_and(|last| ts_ms <= last) {
            return false;
        }
        self.last_ts = Some(ts_ms);
        true
    }
}

/// Two-sided normal score `2Φ(|z|) − 1 = erf(|z|/√2)` in `[0, 1]`.
pub(crate) fn two_sided(z: f64) -> f64 {
    if z.is_nan() {
        return 0.0;
    }
    if z.is_infinite() {
        return 1.0;
    }
    erf(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0)
}

/// Size of a deviation `dev` against a scale `sigma`, in scales: `0` for a
/// deviation that is float noise, `+∞` for any real deviation when `sigma`
/// is zero (constant history), else `|dev| / sigma`.
///
/// [`two_sided`] of it is the model's score. It is monotone, so the
/// ensemble takes the largest `z` of its models and calls `erf` once
/// instead of once per model (a sixth of its time went to `erf`).
pub(crate) fn deviation_z(dev: f64, sigma: f64, reference: f64) -> f64 {
    let tolerance = 1e-9 * reference.abs().max(1.0);
    let dev = dev.abs();
    if dev <= tolerance {
        0.0
    } else if sigma <= tolerance {
        f64::INFINITY
    } else {
        dev / sigma
    }
}

/// Asks the CPU to start loading every cache line of `data` (a hint: no
/// effect on results). Over many series nothing stays in cache, and the
/// detectors' state is read by chains of dependent loads (binary
/// searches); fetching it all at once first turns a series of memory
/// latencies into one. A no-op off x86-64.
#[inline]
pub(crate) fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let step = (64 / std::mem::size_of::<T>().max(1)).max(1);
        for v in data.iter().step_by(step) {
            safe_arch::prefetch_t0(v);
        }
        if let Some(last) = data.last() {
            safe_arch::prefetch_t0(last);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// [`prefetch`] of one value.
#[inline]
pub(crate) fn prefetch_one<T>(value: Option<&T>) {
    if let Some(v) = value {
        prefetch(std::slice::from_ref(v));
    }
}
