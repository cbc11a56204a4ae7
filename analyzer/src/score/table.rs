//! The per-series state of a [`super::ScoreBank`]: a dense vector of
//! states and a map from series id to position.
//!
//! The map holds 16 bytes per series and stays in cache; the states (a
//! few kilobytes each with their heap) do not. Resolving every sample of
//! a batch to a position first lets the scoring loop load the state of
//! the series a few samples ahead while it updates the current one (see
//! [`crate::detect::Ensemble::prefetch`]): over many series the cache
//! misses overlap instead of following one another.
//!
//! Serialised as a map from series id to state, the format the bank's
//! checkpoint had when it held a `HashMap<u64, SeriesState>`.

use std::collections::HashMap;

use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// The index's hasher: series ids are hashes already, SipHash on them
/// was a tenth of the scoring loop; foldhash is seeded per process.
type Hasher = foldhash::fast::RandomState;

/// Series states by id, stored densely.
pub(super) struct Table<S> {
    index: HashMap<u64, usize, Hasher>,
    states: Vec<S>,
}

impl<S> Default for Table<S> {
    fn default() -> Self {
        Self {
            index: HashMap::default(),
            states: Vec::new(),
        }
    }
}

impl<S> Table<S> {
    /// Number of series.
    pub(super) fn len(&self) -> usize {
        self.states.len()
    }

    /// The position of series `id`, created with `new` when absent.
    pub(super) fn slot(&mut self, id: u64, new: impl FnOnce() -> S) -> usize {
        *self.index.entry(id).or_insert_with(|| {
            self.states.push(new());
            self.states.len() - 1
        })
    }

    /// The state at `slot` (from [`Table::slot`]).
    pub(super) fn at(&self, slot: usize) -> Option<&S> {
        self.states.get(slot)
    }

    /// The state at `slot`, to update.
    pub(super) fn at_mut(&mut self, slot: usize) -> Option<&mut S> {
        self.states.get_mut(slot)
    }

    /// The state of series `id`.
    pub(super) fn get_mut(&mut self, id: u64) -> Option<&mut S> {
        let slot = *self.index.get(&id)?;
        self.states.get_mut(slot)
    }

    /// Every state, in no particular order.
    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut S> {
        self.states.iter_mut()
    }
}

impl<S: Serialize> Serialize for Table<S> {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut map = serializer.serialize_map(Some(self.index.len()))?;
        for (id, &slot) in &self.index {
            map.serialize_entry(id, &self.states[slot])?;
        }
        map.end()
    }
}

impl<'de, S: Deserialize<'de>> Deserialize<'de> for Table<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = HashMap::<u64, S>::deserialize(deserializer)?;
        let mut table = Table {
            index: HashMap::with_capacity_and_hasher(map.len(), Hasher::default()),
            states: Vec::with_capacity(map.len()),
        };
        for (id, state) in map {
            table.index.insert(id, table.states.len());
            table.states.push(state);
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_stable_and_ids_distinct() {
        let mut t = Table::default();
        let a = t.slot(7, || "a");
        let b = t.slot(9, || "b");
        assert_ne!(a, b);
        assert_eq!(t.slot(7, || "other"), a, "an existing id keeps its state");
        assert_eq!(t.at(a), Some(&"a"));
        assert_eq!(t.get_mut(9).map(|s| *s), Some("b"));
        assert_eq!(t.get_mut(8), None);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn serialises_as_the_map_it_replaced() {
        let mut t = Table::default();
        t.slot(1, || 10u32);
        t.slot(2, || 20u32);
        let mut buf = Vec::new();
        ciborium::into_writer(&t, &mut buf).expect("encode table");
        let as_map: HashMap<u64, u32> =
            ciborium::from_reader(buf.as_slice()).expect("decode as map");
        assert_eq!(as_map, HashMap::from([(1, 10), (2, 20)]));
        let mut old = Vec::new();
        ciborium::into_writer(&as_map, &mut old).expect("encode map");
        let mut back: Table<u32> = ciborium::from_reader(old.as_slice()).expect("decode as table");
        assert_eq!(back.len(), 2);
        assert_eq!(back.get_mut(2).copied(), Some(20));
        let one = back.slot(1, || 0);
        assert_eq!(back.at(one), Some(&10));
    }
}
