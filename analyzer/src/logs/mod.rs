//! Log template mining: split a raw line into its header fields and message
//! ([`header`]), mask the variable parts of the message ([`mask`]) and group
//! messages into templates ([`miner`]), Drain-style.
//!
//! `vigie eval loghub` ([`crate::eval::loghub`]) scores the miner on Loghub-2k.

pub mod header;
pub mod mask;
pub mod miner;

pub use header::{HeaderFormat, SplitLine};
pub use mask::{Masker, WILDCARD};
pub use miner::{MinerConfig, MinerStats, TemplateMatch, TemplateMiner};
