//! Anomaly episodes: what the analyzer publishes on `vigie.anomalies`.
//!
//! A series' anomaly score crossing the onset threshold upward starts an
//! episode ([`AnomalyPhase::Onset`]); falling back below the (lower) end
//! threshold ends it ([`AnomalyPhase::End`]). Alerting groups these events
//! with alerts of the same host or service into incidents.

use serde::{Deserialize, Serialize};

use crate::{Labels, ModelError, SeriesKey};

/// Start or end of an anomaly episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyPhase {
    /// The score crossed the onset threshold upward.
    Onset,
    /// The score fell back below the end threshold.
    End,
}

impl AnomalyPhase {
    /// `"onset"` or `"end"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyPhase::Onset => "onset",
            AnomalyPhase::End => "end",
        }
    }
}

/// One anomaly event of one series (JSON on `vigie.anomalies`, keyed by
/// [`AnomalyEvent::key`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyEvent {
    /// Onset or end.
    pub phase: AnomalyPhase,
    /// The scored metric (the `for` label of `vigie_anomaly_score`).
    pub metric: String,
    /// The scored series' own labels (without `for`).
    pub labels: Labels,
    /// The anomaly score at the crossing, in `[0, 1]`.
    pub score: f64,
    /// Time of the sample that crossed (ms since epoch).
    pub at_ms: i64,
}

impl AnomalyEvent {
    /// The scored series.
    pub fn series(&self) -> SeriesKey {
        SeriesKey::new(self.metric.clone(), self.labels.clone())
    }

    /// The message key: the scored series' id as 16 hex digits, so every
    /// event of one series keeps its order.
    pub fn key(&self) -> String {
        format!("{:016x}", self.series().id())
    }

    /// JSON encoding.
    pub fn encode(&self) -> Result<Vec<u8>, ModelError> {
        Ok(serde_json::to_vec(self)?)
    }

    /// Decodes the JSON of [`AnomalyEvent::encode`]; garbage is an error.
    pub fn decode(payload: &[u8]) -> Result<Self, ModelError> {
        Ok(serde_json::from_slice(payload)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_key() {
        let e = AnomalyEvent {
            phase: AnomalyPhase::Onset,
            metric: "node_load1".into(),
            labels: Labels::new().with("host", "a"),
            score: 0.99995,
            at_ms: 1_000,
        };
        let bytes = e.encode().expect("encode");
        assert!(String::from_utf8_lossy(&bytes).contains("\"phase\":\"onset\""));
        assert_eq!(AnomalyEvent::decode(&bytes).expect("decode"), e);
        assert_eq!(e.key().len(), 16);
        assert_eq!(e.series().to_string(), "node_load1{host=\"a\"}");
        assert!(AnomalyEvent::decode(b"{\"phase\":\"bogus\"}").is_err());
        assert!(AnomalyEvent::decode(b"\xff").is_err());
    }
}
