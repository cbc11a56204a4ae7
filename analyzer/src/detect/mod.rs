//! Streaming anomaly detectors.
//!
//! A [`Detector`] sees the points of one series in time order and returns,
//! for each, a score in `[0, 1]` computed only from earlier points
//! (causal). One module per model; [`Ensemble`] combines them and
//! [`AnomalyLikelihood`] post-processes raw scores.

mod common;
mod cusum;
mod ensemble;
mod ewma;
mod holt_winters;
mod likelihood;
mod multiscale;
mod robust_z;

pub(crate) use common::{prefetch, prefetch_one};
pub use cusum::Cusum;
pub use ensemble::{CusumConfig, Ensemble, EnsembleConfig, LikelihoodConfig, surprise};
pub use ewma::Ewma;
pub use holt_winters::{HoltWinters, HwConfig, MIN_ACF, detect_period};
pub use likelihood::{AnomalyLikelihood, log_scale};
pub use multiscale::{MultiScale, NAB_SCALES};
pub use robust_z::RobustZ;

/// A per-series streaming anomaly detector.
pub trait Detector: Send {
    /// Feeds one point and returns its anomaly score in `[0, 1]`, or `None`
    /// while the detector is still warming up or the point is unusable
    /// (NaN, infinite, out of order).
    fn update(&mut self, ts_ms: i64, value: f64) -> Option<f64>;
}
