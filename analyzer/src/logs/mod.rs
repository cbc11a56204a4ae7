//! Log template mining: split a raw line into its header fields and message
//! ([`header`]), mask the variable parts of the message ([`mask`]) and group
//! messages into templates ([`miner`]), Drain-style; [`state`] holds the
//! analyzer's miner and running line counts and checkpoints them.
//!
//! `vigie eval loghub` ([`crate::eval::loghub`]) scores the miner on Loghub-2k.

pub mod header;
pub mod mask;
pub mod miner;
pub mod state;

pub use header::{HeaderFormat, SplitLine};
pub use mask::{Masker, WILDCARD};
pub use miner::{MinerConfig, MinerStats, TemplateMatch, TemplateMiner};
pub use state::{LogState, Observed};
