//! Interop topics: metrics other tools already write to Kafka.
//!
//! Each `[[interop]]` entry names a topic and its format:
//!
//! - `influx`: InfluxDB line protocol, Telegraf's default ([`influx`]);
//! - `telegraf_json`: Telegraf's JSON serializer ([`telegraf`]);
//! - `vector_json`: Vector's metric events, `json` codec ([`vector`]).
//!
//! A consumer per entry ([`spawn_interop`], a [`vigie_bus::kafka::KafkaSubscriber`]
//! in group `group_id`) decodes each message into samples named as
//! Telegraf's and Vector's Prometheus outputs name them ([`names`]), adds
//! the entry's `labels`, and hands them to the same [`Emitter`](crate::Emitter) as scraped
//! samples: sharded by series into `vigie.metrics`, so storage, PromQL and
//! the detectors see them unchanged. A message that cannot be read goes
//! to `vigie.deadletter` (reason in the `vigie-error` header) and is
//! counted in `vigie_interop_rejected_total{topic, format, reason}`; the
//! rest of the batch goes on. Offsets are committed only after the
//! samples were accepted by the bus ([`consume`]): at least once.

pub mod consume;
pub mod influx;
pub mod names;
pub mod telegraf;
pub mod vector;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_bus::{BusConfig, BusKind};
use vigie_model::{Labels, Sample, topics};

pub use consume::{run_consumer, spawn_interop};
pub use influx::Precision;

use crate::error::InteropError;

/// The format of an interop topic's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InteropFormat {
    /// InfluxDB line protocol, one or more lines per message.
    Influx,
    /// Telegraf's JSON serializer (single metric or batch format).
    TelegrafJson,
    /// Vector's metric events, JSON codec.
    VectorJson,
}

impl InteropFormat {
    /// The name in the configuration and in the `format` label.
    pub fn as_str(self) -> &'static str {
        match self {
            InteropFormat::Influx => "influx",
            InteropFormat::TelegrafJson => "telegraf_json",
            InteropFormat::VectorJson => "vector_json",
        }
    }
}

/// `[[interop]]`: one Kafka topic another tool writes metrics to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InteropConfig {
    /// The topic to consume (not one of Vigie's own).
    pub topic: String,
    /// `influx`, `telegraf_json` or `vector_json`.
    pub format: InteropFormat,
    /// Labels added to every sample; they win over the message's tags.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Consumer group (default `vigie-interop-<topic>`); collectors with
    /// the same group share the topic's partitions.
    #[serde(default)]
    pub group_id: Option<String>,
    /// `influx` only: unit of the timestamps, `ns` (default), `us`, `ms`
    /// or `s`.
    #[serde(default)]
    pub precision: Option<Precision>,
    /// `telegraf_json` only: Telegraf's `json_timestamp_units` (default
    /// `1s`; `1ms`, `1us`, `1ns`).
    #[serde(default, with = "humantime_serde")]
    pub json_timestamp_units: Option<Duration>,
}

impl InteropConfig {
    /// An entry for `topic` in `format`, everything else default.
    pub fn new(topic: impl Into<String>, format: InteropFormat) -> Self {
        Self {
            topic: topic.into(),
            format,
            labels: BTreeMap::new(),
            group_id: None,
            precision: None,
            json_timestamp_units: None,
        }
    }

    /// The consumer group this entry joins.
    pub fn group(&self) -> String {
        self.group_id
            .clone()
            .unwrap_or_else(|| format!("vigie-interop-{}", self.topic))
    }

    /// Problems of entry `i`, as `(key, what to fix)`.
    pub fn problems(&self, i: usize) -> Vec<(String, String)> {
        let p = format!("interop[{i}]");
        let mut out = Vec::new();
        let own = [
            topics::METRICS,
            topics::ALERTS,
            topics::LOGS,
            topics::DEADLETTER,
        ];
        if self.topic.trim().is_empty() {
            out.push((
                format!("{p}.topic"),
                "must name a Kafka topic, e.g. \"telegraf\"".into(),
            ));
        } else if own.contains(&self.topic.as_str()) {
            out.push((
                format!("{p}.topic"),
                format!(
                    "`{}` is one of Vigie's own topics; name the topic the other tool writes to",
                    self.topic
                ),
            ));
        }
        if self.group_id.as_ref().is_some_and(|g| g.trim().is_empty()) {
            out.push((
                format!("{p}.group_id"),
                "must not be empty; remove it for the default".into(),
            ));
        }
        if self.precision.is_some() && self.format != InteropFormat::Influx {
            out.push((
                format!("{p}.precision"),
                "only applies to format = \"influx\"; remove it".into(),
            ));
        }
        match self.json_timestamp_units {
            Some(_) if self.format != InteropFormat::TelegrafJson => out.push((
                format!("{p}.json_timestamp_units"),
                "only applies to format = \"telegraf_json\"; remove it".into(),
            )),
            Some(u) if u.is_zero() => out.push((
                format!("{p}.json_timestamp_units"),
                "must be positive, e.g. \"1s\" or \"1ms\"".into(),
            )),
            _ => {}
        }
        out.extend(crate::config::label_problems(&p, &self.labels));
        out
    }
}

/// Problems of every `[[interop]]` entry, plus those of the set: they need
/// the Kafka bus, and a topic is consumed once.
pub fn problems(configs: &[InteropConfig], bus: &BusConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !configs.is_empty() && bus.kind != BusKind::Kafka {
        out.push((
            "interop".into(),
            "interop topics are read from Kafka: set [bus] kind = \"kafka\" and brokers".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in configs.iter().enumerate() {
        out.extend(c.problems(i));
        if !seen.insert(c.topic.as_str()) {
            out.push((
                format!("interop[{i}].topic"),
                format!("topic `{}` is configured twice; keep one entry", c.topic),
            ));
        }
    }
    out
}

/// Counts of things left out of a message without rejecting it (string
/// fields, unusable names, ...), by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Skipped(BTreeMap<&'static str, u64>);

impl Skipped {
    /// Counts `n` more for `reason`.
    pub fn add(&mut self, reason: &'static str, n: u64) {
        *self.0.entry(reason).or_insert(0) += n;
    }

    /// The count of `reason`.
    pub fn get(&self, reason: &str) -> u64 {
        self.0.get(reason).copied().unwrap_or(0)
    }

    /// Every reason and its count.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }
}

/// An RFC 3339 time as milliseconds since the epoch.
pub(crate) fn rfc3339_ms(s: &str) -> Result<i64, InteropError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| InteropError::Timestamp(format!("`{s}`: {e}")))
}

/// What one message became.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The samples to emit (with Influx, those of the good lines even when
    /// some lines were bad).
    pub samples: Vec<Sample>,
    /// What was left out without rejecting the message.
    pub skipped: Skipped,
    /// Why the message is rejected, if it is.
    pub error: Option<InteropError>,
}

/// Turns the messages of one interop topic into samples.
#[derive(Debug)]
pub struct Decoder {
    format: InteropFormat,
    labels: Labels,
    precision: Precision,
    units: Duration,
    totals: vector::Totals,
}

impl Decoder {
    /// A decoder for `config`'s format and labels.
    pub fn new(config: &InteropConfig) -> Self {
        Self {
            format: config.format,
            labels: config.labels.iter().collect(),
            precision: config.precision.unwrap_or_default(),
            units: config
                .json_timestamp_units
                .unwrap_or(Duration::from_secs(1)),
            totals: vector::Totals::default(),
        }
    }

    /// Decodes one message; points without a time get `now_ms`. Never
    /// panics, whatever the bytes.
    pub fn decode(&mut self, payload: &[u8], now_ms: i64) -> Decoded {
        let mut d = Decoded::default();
        match self.format {
            InteropFormat::Influx => {
                let Ok(text) = std::str::from_utf8(payload) else {
                    d.error = Some(InteropError::Utf8);
                    return d;
                };
                let (points, errors) = influx::parse(text, self.precision);
                d.samples = names::points_to_samples(&points, &self.labels, now_ms, &mut d.skipped);
                if let Some(first) = errors.first() {
                    d.error = Some(InteropError::Syntax {
                        line: first.line,
                        message: first.message.clone(),
                        bad: errors.len(),
                        lines: errors.len() + points.len(),
                    });
                }
            }
            InteropFormat::TelegrafJson => {
                match telegraf::parse(payload, self.units, &mut d.skipped) {
                    Ok(points) => {
                        d.samples =
                            names::points_to_samples(&points, &self.labels, now_ms, &mut d.skipped);
                    }
                    Err(e) => d.error = Some(e),
                }
            }
            InteropFormat::VectorJson => {
                match vector::to_samples(
                    payload,
                    &self.labels,
                    now_ms,
                    &mut self.totals,
                    &mut d.skipped,
                ) {
                    Ok(samples) => d.samples = samples,
                    Err(e) => d.error = Some(e),
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Vec<InteropConfig> {
        #[derive(Deserialize)]
        struct Doc {
            interop: Vec<InteropConfig>,
        }
        toml::from_str::<Doc>(toml_text).expect("parse").interop
    }

    fn kafka() -> BusConfig {
        BusConfig {
            kind: BusKind::Kafka,
            brokers: "127.0.0.1:9092".into(),
            ..BusConfig::default()
        }
    }

    #[test]
    fn config_parses_and_is_checked() {
        let c = parse(
            "[[interop]]\ntopic = \"telegraf\"\nformat = \"influx\"\nprecision = \"ms\"\nlabels = { dc = \"par1\" }\n\
             [[interop]]\ntopic = \"tj\"\nformat = \"telegraf_json\"\njson_timestamp_units = \"1ms\"\ngroup_id = \"g\"\n",
        );
        assert_eq!(c[0].precision, Some(Precision::Ms));
        assert_eq!(c[0].group(), "vigie-interop-telegraf");
        assert_eq!(c[1].json_timestamp_units, Some(Duration::from_millis(1)));
        assert_eq!(c[1].group(), "g");
        assert!(
            problems(&c, &kafka()).is_empty(),
            "{:?}",
            problems(&c, &kafka())
        );
        let keys = |p: Vec<(String, String)>| p.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(problems(&c, &BusConfig::default())), ["interop"]);

        let bad = parse(
            "[[interop]]\ntopic = \"vigie.metrics\"\nformat = \"vector_json\"\nprecision = \"s\"\nlabels = { \"a-b\" = \"x\" }\n\
             [[interop]]\ntopic = \"vigie.metrics\"\nformat = \"influx\"\njson_timestamp_units = \"1s\"\ngroup_id = \"\"\n",
        );
        assert_eq!(
            keys(problems(&bad, &kafka())),
            [
                "interop[0].topic",
                "interop[0].precision",
                "interop[0].labels.a-b",
                "interop[1].topic",
                "interop[1].group_id",
                "interop[1].json_timestamp_units",
                "interop[1].topic",
            ]
        );
        assert!(toml::from_str::<InteropConfig>("topic = \"t\"\nformat = \"csv\"\n").is_err());
        assert!(
            toml::from_str::<InteropConfig>("topic = \"t\"\nformat = \"influx\"\nfoo = 1\n")
                .is_err()
        );
    }

    #[test]
    fn every_format_ends_in_the_same_samples() {
        let expect = |format, payload: &str| {
            let mut config = InteropConfig::new("t", format);
            config.labels.insert("dc".into(), "par1".into());
            let d = Decoder::new(&config).decode(payload.as_bytes(), 0);
            assert_eq!(d.error, None);
            assert_eq!(d.samples.len(), 1, "{format:?}");
            let s = &d.samples[0];
            assert_eq!(s.series.metric, "cpu_usage_idle", "{format:?}");
            assert_eq!(s.series.labels.get("host"), Some("a"));
            assert_eq!(s.series.labels.get("dc"), Some("par1"));
            assert_eq!((s.ts_ms, s.value), (1_458_229_140_000, 97.5));
        };
        expect(
            InteropFormat::Influx,
            "cpu,host=a usage_idle=97.5 1458229140000000000\n",
        );
        expect(
            InteropFormat::TelegrafJson,
            r#"{"name":"cpu","tags":{"host":"a"},"fields":{"usage_idle":97.5},"timestamp":1458229140}"#,
        );
        expect(
            InteropFormat::VectorJson,
            r#"{"name":"usage_idle","namespace":"cpu","tags":{"host":"a"},"timestamp":"2016-03-17T15:39:00Z","kind":"absolute","gauge":{"value":97.5}}"#,
        );
    }

    #[test]
    fn influx_keeps_good_lines_and_reports_the_bad_one() {
        let mut d = Decoder::new(&InteropConfig::new("t", InteropFormat::Influx));
        let got = d.decode(b"m v=1 1000000\nm v=\xff\n", 0);
        assert_eq!(got.error, Some(InteropError::Utf8));
        assert!(got.samples.is_empty());
        let got = d.decode(b"m v=1 1000000\nm x\nm v=2,s=\"str\" 2000000\n", 0);
        assert_eq!(got.samples.len(), 2);
        assert_eq!(got.skipped.get("string_field"), 1);
        let e = got.error.expect("one bad line");
        assert_eq!(e.reason(), "syntax");
        assert!(e.to_string().starts_with("line 2: "), "{e}");
        assert!(e.to_string().ends_with("(1 of 3 lines rejected)"), "{e}");
    }
}
