//! Metric samples and series identity.

use std::collections::BTreeMap;
use std::fmt;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The label that holds a metric's name in Prometheus' data model.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// A sorted set of label pairs, without `__name__`.
///
/// Stored as a vector sorted by name: a series has a handful of labels, so
/// a binary search beats a tree, and one allocation holds them all. Names
/// and values up to 24 bytes (almost all of them) live inline, without an
/// allocation of their own: parsing a scrape builds one `Labels` per
/// sample, so this is on ingest's hot path. Serialized as a JSON object.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(CompactString, CompactString)>);

impl Labels {
    /// An empty label set.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty label set with room for `n` labels.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    /// Sets a label; an empty value removes it, as in Prometheus.
    pub fn insert(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        self.set(name.as_ref(), value.as_ref());
    }

    /// [`Labels::insert`], compiled once rather than per argument type.
    fn set(&mut self, name: &str, value: &str) {
        match (self.position(name), value.is_empty()) {
            (Ok(i), true) => {
                self.0.remove(i);
            }
            (Ok(i), false) => self.0[i].1 = CompactString::from(value),
            (Err(_), true) => {}
            (Err(i), false) => self
                .0
                .insert(i, (CompactString::from(name), CompactString::from(value))),
        }
    }

    /// Builder form of [`Labels::insert`].
    pub fn with(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.insert(name, value);
        self
    }

    /// The value of a label, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).ok().map(|i| self.0[i].1.as_str())
    }

    /// Removes a label and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.position(name).ok()?;
        Some(self.0.remove(i).1.into_string())
    }

    /// Iterates label pairs in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no label is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut labels = Labels::with_capacity(iter.size_hint().0);
        for (k, v) in iter {
            labels.insert(k, v);
        }
        labels
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Keys are unique and sorted in a BTreeMap; empty values are kept,
        // as the map form always did.
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        Ok(Self(
            map.into_iter()
                .map(|(k, v)| (CompactString::from(k), CompactString::from(v)))
                .collect(),
        ))
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(
                f,
                "{k}=\"{}\"",
                v.replace('\\', "\\\\").replace('"', "\\\"")
            )?;
        }
        f.write_str("}")
    }
}

/// The identity of a series: metric name plus labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Metric name (`__name__`).
    pub metric: String,
    /// Labels other than `__name__`.
    pub labels: Labels,
}

impl SeriesKey {
    /// Creates a series key.
    pub fn new(metric: impl Into<String>, labels: Labels) -> Self {
        Self {
            metric: metric.into(),
            labels,
        }
    }

    /// A stable 64-bit id (FNV-1a over name and sorted labels).
    ///
    /// Stable across processes and versions: it is the Kafka message key
    /// and the storage sort key, so it must never change for a series.
    pub fn id(&self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                hash ^= u64::from(*b);
                hash = hash.wrapping_mul(PRIME);
            }
        };
        feed(self.metric.as_bytes());
        for (k, v) in self.labels.iter() {
            feed(&[0xff]);
            feed(k.as_bytes());
            feed(&[0xfe]);
            feed(v.as_bytes());
        }
        hash
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.metric, self.labels)
    }
}

/// One point of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The series this point belongs to.
    pub series: SeriesKey,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The value; NaN and infinities are allowed, as in Prometheus.
    pub value: f64,
}

impl Sample {
    /// Creates a sample.
    pub fn new(metric: impl Into<String>, labels: Labels, ts_ms: i64, value: f64) -> Self {
        Self {
            series: SeriesKey::new(metric, labels),
            ts_ms,
            value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_independent_of_label_insertion_order() {
        let a = SeriesKey::new("up", Labels::new().with("job", "a").with("instance", "b"));
        let b = SeriesKey::new("up", Labels::new().with("instance", "b").with("job", "a"));
        assert_eq!(a.id(), b.id());
    }

    #[test]
    fn id_separates_label_boundaries() {
        let a = SeriesKey::new("m", Labels::new().with("ab", "c"));
        let b = SeriesKey::new("m", Labels::new().with("a", "bc"));
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn empty_label_value_removes_label() {
        let l = Labels::new().with("a", "1").with("a", "");
        assert!(l.is_empty());
    }

    #[test]
    fn labels_stay_sorted_and_serialize_as_a_json_object() {
        let long = "a-label-value-longer-than-twenty-four-bytes";
        let mut l = Labels::new()
            .with("zone", "b")
            .with("job", long)
            .with("a", "1");
        assert_eq!(
            l.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["a", "job", "zone"]
        );
        l.insert("zone", "c");
        assert_eq!(l.get("zone"), Some("c"));
        assert_eq!(l.get("job"), Some(long));
        assert_eq!(l.remove("a").as_deref(), Some("1"));
        assert_eq!(l.remove("a"), None);
        let json = serde_json::to_string(&l).expect("json");
        assert_eq!(json, format!(r#"{{"job":"{long}","zone":"c"}}"#));
        let back: Labels = serde_json::from_str(r#"{"zone":"c","job":"x"}"#).expect("labels");
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            [("job", "x"), ("zone", "c")]
        );
        assert_eq!(format!("{back:?}"), r#"{"job": "x", "zone": "c"}"#);
    }

    #[test]
    fn labels_order_is_the_order_of_their_pairs() {
        let a = Labels::new().with("a", "1").with("b", "2");
        let b = Labels::new().with("a", "1").with("c", "0");
        let c = Labels::new().with("a", "2");
        assert!(a < b && b < c);
    }

    #[test]
    fn display_escapes_quotes() {
        let k = SeriesKey::new("m", Labels::new().with("a", "x\"y"));
        assert_eq!(k.to_string(), "m{a=\"x\\\"y\"}");
    }
}
