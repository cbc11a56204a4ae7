//! The analyzer's log state: one [`TemplateMiner`] and the running line
//! count per (template id, source, level), checkpointed together.
//!
//! The pipeline writes the checkpoint (`<data_dir>/state/logminer.cbor`, CBOR,
//! written to a temporary file, synced, then renamed) at every flush, beside
//! the detectors' checkpoint, and reloads it at start, so a restart keeps the
//! template ids and `vigie_log_lines_total` stays monotonic instead of
//! starting again from 1.
//!
//! Bad input is processed or rejected with a counter, never a panic: a body
//! that is empty or only whitespace is not mined (it has no template;
//! `vigie_log_lines_rejected_total{reason="empty"}`); a body with more words
//! than the miner's cap is mined on its first words
//! (`vigie_log_lines_truncated_total`); invalid UTF-8 never gets here (the
//! model's `body` is a string; the tail and the syslog receiver replace
//! invalid bytes). Templates evicted to stay under
//! [`MinerConfig::max_templates`] count in
//! `vigie_log_templates_evicted_total`; `vigie_log_templates` is the number
//! held.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::miner::{MinerConfig, TemplateMatch, TemplateMiner};
use crate::AnalyzerError;
use crate::metrics::{
    LOG_LINES_REJECTED, LOG_LINES_TRUNCATED, LOG_TEMPLATES, LOG_TEMPLATES_EVICTED,
};

/// Name of the checkpoint file, beside the detectors' one.
pub const CHECKPOINT_FILE: &str = "logminer.cbor";

/// Key of a running count: template id, source, level.
pub type CountKey = (u64, String, String);

/// One record's outcome in [`LogState::observe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// What the miner decided.
    pub template: TemplateMatch,
    /// Lines counted for (template, source, level), this one included.
    pub count: u64,
}

/// The miner and the running counts; see the module docs.
#[derive(Debug, Clone)]
pub struct LogState {
    miner: TemplateMiner,
    counts: HashMap<CountKey, u64>,
}

/// What is written to the checkpoint.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    miner: TemplateMiner,
    counts: Vec<(u64, String, String, u64)>,
}

impl LogState {
    /// An empty state whose miner uses `config`.
    pub fn new(config: MinerConfig) -> Self {
        LogState {
            miner: TemplateMiner::new(config),
            counts: HashMap::new(),
        }
    }

    /// The miner.
    pub fn miner(&self) -> &TemplateMiner {
        &self.miner
    }

    /// Lines counted for (template id, source, level).
    pub fn count(&self, id: u64, source: &str, level: &str) -> u64 {
        self.counts
            .get(&(id, source.to_string(), level.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Number of running counts held.
    pub fn counts_len(&self) -> usize {
        self.counts.len()
    }

    /// Mines `body` and counts it under (template, `source`, `level`).
    /// `None` (counted as rejected, reason `empty`) when the body has no word.
    pub fn observe(&mut self, body: &str, source: &str, level: &str) -> Option<Observed> {
        if body.trim().is_empty() {
            LOG_LINES_REJECTED.with_label_values(&["empty"]).inc();
            return None;
        }
        let before = self.miner.stats();
        let template = self.miner.add(body);
        let after = self.miner.stats();
        if after.truncated_lines > before.truncated_lines {
            LOG_LINES_TRUNCATED.inc();
        }
        if after.evicted_templates > before.evicted_templates {
            LOG_TEMPLATES_EVICTED.inc_by(after.evicted_templates - before.evicted_templates);
        }
        LOG_TEMPLATES.set(self.miner.len() as i64);
        let n = self
            .counts
            .entry((template.id, source.to_string(), level.to_string()))
            .or_insert(0);
        *n += 1;
        Some(Observed {
            template,
            count: *n,
        })
    }

    /// Drops the counts of templates the miner no longer holds (evicted),
    /// so the counts stay bounded with the templates.
    pub fn prune(&mut self) {
        let miner = &self.miner;
        self.counts
            .retain(|(id, _, _), _| miner.template(*id).is_some());
    }

    /// The checkpoint as CBOR bytes (prunes first).
    pub fn encode(&mut self) -> Result<Vec<u8>, AnalyzerError> {
        self.prune();
        let checkpoint = Checkpoint {
            miner: self.miner.clone(),
            counts: self
                .counts
                .iter()
                .map(|((id, s, l), n)| (*id, s.clone(), l.clone(), *n))
                .collect(),
        };
        let mut out = Vec::new();
        ciborium::into_writer(&checkpoint, &mut out).map_err(|e| AnalyzerError::Eval {
            what: "log miner checkpoint".into(),
            message: format!("serialising: {e}"),
        })?;
        Ok(out)
    }

    /// Reads a state from [`LogState::encode`]'s bytes; the miner takes
    /// `config` (settings come from the configuration, never a checkpoint).
    pub fn decode(bytes: &[u8], config: MinerConfig) -> Result<Self, String> {
        let checkpoint: Checkpoint = ciborium::from_reader(bytes).map_err(|e| e.to_string())?;
        let mut miner = checkpoint.miner;
        miner.restored(config);
        LOG_TEMPLATES.set(miner.len() as i64);
        Ok(LogState {
            miner,
            counts: checkpoint
                .counts
                .into_iter()
                .map(|(id, s, l, n)| ((id, s, l), n))
                .collect(),
        })
    }

    /// Writes the state to `path` (temporary file, synced, renamed).
    pub fn save(&mut self, path: &Path) -> Result<(), AnalyzerError> {
        crate::state_file::write_atomic(path, &self.encode()?)
    }

    /// Reads a state saved by [`LogState::save`]; `Ok(None)` when there is
    /// no checkpoint yet.
    pub fn load(path: &Path, config: MinerConfig) -> Result<Option<Self>, AnalyzerError> {
        use std::io::Read as _;
        let Some(mut file) = crate::state_file::open_if_exists(path)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|source| AnalyzerError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Self::decode(&bytes, config)
            .map(Some)
            .map_err(|e| crate::state_file::unreadable(path, "log miner checkpoint", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LINES: [&str; 8] = [
        "Receiving block blk_1 src: /10.0.0.1:5 dest: /10.0.0.2:6",
        "Verification succeeded for blk_2",
        "session closed for user root",
        "session closed for user news",
        "Receiving block blk_77 src: /10.0.0.9:5 dest: /10.0.0.3:6",
        "session closed for user test",
        "session closed for user cyrus",
        "Verification succeeded for blk_3",
    ];

    #[test]
    fn restored_state_gives_same_ids_and_continues_counts() {
        let mut state = LogState::new(MinerConfig::default());
        let first: Vec<Observed> = LINES
            .iter()
            .map(|l| state.observe(l, "app", "info").expect("mined"))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state").join(CHECKPOINT_FILE);
        state.save(&path).expect("save");
        assert!(!path.with_extension("tmp").exists(), "renamed into place");
        let mut back = LogState::load(&path, MinerConfig::default())
            .expect("load")
            .expect("a checkpoint");
        assert_eq!(back.miner().templates(), state.miner().templates());
        for line in LINES {
            let a = state.observe(line, "app", "info").expect("mined");
            let b = back.observe(line, "app", "info").expect("mined");
            assert_eq!(a, b, "{line}");
            assert!(!b.template.is_new);
        }
        // Counts went on from where they were, not from 1.
        let verified = first[1].template.id;
        assert_eq!(back.count(verified, "app", "info"), 4);
        assert_eq!(back.count(verified, "other", "info"), 0);
    }

    #[test]
    fn missing_checkpoint_is_none_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(CHECKPOINT_FILE);
        assert!(
            LogState::load(&path, MinerConfig::default())
                .expect("no file")
                .is_none()
        );
        std::fs::write(&path, b"\xff not cbor").expect("write");
        let err = LogState::load(&path, MinerConfig::default()).expect_err("garbage");
        assert!(err.to_string().contains("log miner checkpoint"), "{err}");
    }

    #[test]
    fn empty_bodies_are_rejected_and_evicted_counts_pruned() {
        let mut state = LogState::new(MinerConfig {
            max_templates: 2,
            ..MinerConfig::default()
        });
        assert!(state.observe("", "s", "info").is_none());
        assert!(state.observe(" \t\r ", "s", "info").is_none());
        let a = state.observe("alpha one", "s", "info").expect("mined");
        state.observe("beta two three", "s", "info");
        state.observe("gamma four five six", "s", "info");
        assert_eq!(state.miner().stats().evicted_templates, 1);
        assert_eq!(state.counts_len(), 3);
        state.prune();
        assert_eq!(state.counts_len(), 2);
        assert_eq!(state.count(a.template.id, "s", "info"), 0);
    }

    proptest! {
        #[test]
        fn random_bodies_never_panic_and_survive_a_round_trip(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..30)
        ) {
            let cfg = MinerConfig { max_templates: 8, ..MinerConfig::default() };
            let mut state = LogState::new(cfg.clone());
            let mut seen = 0u64;
            for b in &bodies {
                let body = String::from_utf8_lossy(b);
                match state.observe(&body, "src", "info") {
                    Some(o) => {
                        seen += 1;
                        prop_assert!(o.count >= 1);
                        prop_assert!(state.miner().template(o.template.id).is_some());
                    }
                    None => prop_assert!(body.trim().is_empty()),
                }
            }
            prop_assert!(state.miner().len() <= 8);
            prop_assert_eq!(state.miner().stats().lines, seen);
            let bytes = state.encode().expect("encode");
            let mut back = LogState::decode(&bytes, cfg).expect("decode");
            prop_assert_eq!(back.miner().templates(), state.miner().templates());
            for b in &bodies {
                let body = String::from_utf8_lossy(b);
                prop_assert_eq!(back.observe(&body, "src", "info"), state.observe(&body, "src", "info"));
            }
        }
    }
}
