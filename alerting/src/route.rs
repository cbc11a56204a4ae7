//! The routing tree, inhibition rules and time intervals, with
//! Alertmanager's semantics.
//!
//! A [`Routing`] is built either from Vigie's own TOML (one root route
//! sending every alert to every receiver, [`Routing::from_config`]) or from
//! an `alertmanager.yml` ([`crate::alertmanager`]). The dispatcher asks it
//! which routes an alert belongs to ([`Routing::matching`]), whether an
//! alert is inhibited ([`InhibitRule`]), and whether a route is muted now
//! ([`Routing::muted`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use vigie_model::Labels;

use crate::config::{AlertingConfig, GROUP_BY_ALL};
use crate::silence::{Matcher, all_match};

/// One route of the tree, with its settings resolved (inherited from its
/// parent where not set).
#[derive(Debug, Clone)]
pub struct RouteNode {
    /// Alertmanager's route key: `{}` for the root, then
    /// `<parent>/{<matchers>}`; it prefixes the group keys.
    pub key: String,
    /// All must match for an alert to enter this route.
    pub matchers: Vec<Matcher>,
    /// Whether matching goes on to the next siblings after this route matched.
    pub continue_matching: bool,
    /// The receiver notified; `None` (Vigie's TOML) means every receiver.
    pub receiver: Option<String>,
    /// Labels whose values make a group; `["..."]` groups by all labels.
    pub group_by: Vec<String>,
    /// How long a new group waits before its first notification.
    pub group_wait: Duration,
    /// How long to wait before notifying about changes in a group.
    pub group_interval: Duration,
    /// How long before an unchanged, still firing group is notified again.
    pub repeat_interval: Duration,
    /// Names of the time intervals during which this route is muted.
    pub mute_time_intervals: Vec<String>,
    /// Names of the time intervals outside which this route is muted
    /// (empty: always active).
    pub active_time_intervals: Vec<String>,
    /// Indices of the child routes, in order.
    pub children: Vec<usize>,
}

impl RouteNode {
    /// The group labels of an alert on this route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        if self.group_by.iter().any(|l| l == GROUP_BY_ALL) {
            return labels.clone();
        }
        self.group_by
            .iter()
            .filter_map(|name| labels.get(name).map(|v| (name.clone(), v.to_string())))
            .collect()
    }
}

/// `key` of a child route with `matchers` under `parent_key`.
pub fn route_key(parent_key: Option<&str>, matchers: &[Matcher]) -> String {
    let mut sorted: Vec<String> = matchers.iter().map(|m| m.to_string()).collect();
    sorted.sort();
    let own = format!("{{{}}}", sorted.join(","));
    match parent_key {
        Some(p) => format!("{p}/{own}"),
        None => own,
    }
}

/// An inhibition rule: while an alert matching `source` fires, alerts
/// matching `target` with the same values of the `equal` labels are muted.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    /// Matchers the muting (source) alert must satisfy.
    pub source: Vec<Matcher>,
    /// Matchers the muted (target) alert must satisfy.
    pub target: Vec<Matcher>,
    /// Labels whose values must be equal in source and target (a label
    /// missing on both sides counts as equal).
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// The fingerprints of the firing `sources` (fingerprint, labels) that
    /// inhibit an alert with `labels`, as Alertmanager decides: the alert
    /// must match the target matchers; when it also matches the source
    /// matchers, sources that also match the target matchers are skipped,
    /// so an alert never inhibits itself (nor its like).
    pub fn inhibited_by<'a>(
        &self,
        labels: &Labels,
        sources: impl IntoIterator<Item = (&'a str, &'a Labels)>,
    ) -> Vec<String> {
        if !all_match(&self.target, labels) {
            return Vec::new();
        }
        let two_sided = all_match(&self.source, labels);
        sources
            .into_iter()
            .filter(|(_, s)| all_match(&self.source, s))
            .filter(|(_, s)| !(two_sided && all_match(&self.target, s)))
            .filter(|(_, s)| {
                self.equal
                    .iter()
                    .all(|n| s.get(n).unwrap_or("") == labels.get(n).unwrap_or(""))
            })
            .map(|(fp, _)| fp.to_string())
            .collect()
    }
}

/// An inclusive range of integers (`a:b`, or `a` alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First value.
    pub begin: i32,
    /// Last value (inclusive).
    pub end: i32,
}

impl Range {
    fn contains(&self, v: i32) -> bool {
        self.begin <= v && v <= self.end
    }
}

/// One of Alertmanager's time intervals: every field that is set must
/// match (an empty list matches everything).
#[derive(Debug, Clone, Default)]
pub struct TimeInterval {
    /// Minutes of the day, start inclusive, end exclusive (`[540, 1020)`
    /// for 09:00-17:00).
    pub times: Vec<(u32, u32)>,
    /// Weekdays, 0 = Sunday ... 6 = Saturday.
    pub weekdays: Vec<Range>,
    /// Days of the month, 1..=31, or negative from the end (-1 = last day).
    pub days_of_month: Vec<Range>,
    /// Months, 1..=12.
    pub months: Vec<Range>,
    /// Years.
    pub years: Vec<Range>,
    /// The time zone the fields are read in (UTC when `None`).
    pub location: Option<chrono_tz::Tz>,
}

fn days_in_month(year: i32, month: u32) -> i32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    chrono::NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day() as i32)
}

impl TimeInterval {
    /// Whether `t` falls within this interval.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        match self.location {
            Some(tz) => self.contains_local(&tz.from_utc_datetime(&t.naive_utc())),
            None => self.contains_local(&t),
        }
    }

    fn contains_local<T: Datelike + Timelike>(&self, t: &T) -> bool {
        let minute = t.hour() * 60 + t.minute();
        if !self.times.is_empty() && !self.times.iter().any(|(s, e)| *s <= minute && minute < *e) {
            return false;
        }
        let weekday = t.weekday().num_days_from_sunday() as i32;
        if !self.weekdays.is_empty() && !self.weekdays.iter().any(|r| r.contains(weekday)) {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let days = days_in_month(t.year(), t.month());
            let day = t.day() as i32;
            let hit = self.days_of_month.iter().any(|r| {
                let resolve = |v: i32| if v < 0 { days + v + 1 } else { v };
                let (begin, end) = (resolve(r.begin), resolve(r.end));
                begin <= days && begin.clamp(-days, days) <= day && day <= end.clamp(-days, days)
            });
            if !hit {
                return false;
            }
        }
        if !self.months.is_empty() && !self.months.iter().any(|r| r.contains(t.month() as i32)) {
            return false;
        }
        if !self.years.is_empty() && !self.years.iter().any(|r| r.contains(t.year())) {
            return false;
        }
        true
    }
}

/// The whole routing configuration the dispatcher works with.
#[derive(Debug, Clone)]
pub struct Routing {
    /// The routes; index 0 is the root.
    pub routes: Vec<RouteNode>,
    /// Inhibition rules.
    pub inhibit_rules: Vec<InhibitRule>,
    /// Named time intervals (each a list; any may match).
    pub time_intervals: BTreeMap<String, Vec<TimeInterval>>,
}

impl Routing {
    /// Vigie's TOML setup: one root route with the configured grouping and
    /// timing, notifying every receiver; no inhibition.
    pub fn from_config(config: &AlertingConfig) -> Self {
        Routing {
            routes: vec![RouteNode {
                key: "{}".into(),
                matchers: Vec::new(),
                continue_matching: false,
                receiver: None,
                group_by: config.group_by.clone(),
                group_wait: config.group_wait,
                group_interval: config.group_interval,
                repeat_interval: config.repeat_interval,
                mute_time_intervals: Vec::new(),
                active_time_intervals: Vec::new(),
                children: Vec::new(),
            }],
            inhibit_rules: Vec::new(),
            time_intervals: BTreeMap::new(),
        }
    }

    /// The routes an alert with `labels` belongs to, in tree order: walking
    /// down from the root, the first matching child wins unless it has
    /// `continue`; a route none of whose children match takes the alert.
    pub fn matching(&self, labels: &Labels) -> Vec<usize> {
        self.match_from(0, labels)
    }

    fn match_from(&self, idx: usize, labels: &Labels) -> Vec<usize> {
        let Some(route) = self.routes.get(idx) else {
            return Vec::new();
        };
        if !all_match(&route.matchers, labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for &child in &route.children {
            let found = self.match_from(child, labels);
            let matched = !found.is_empty();
            all.extend(found);
            if matched && !self.routes[child].continue_matching {
                break;
            }
        }
        if all.is_empty() {
            all.push(idx);
        }
        all
    }

    /// The receivers an alert with `labels` goes to, one per matching
    /// route, in order (as `amtool config routes test` prints them);
    /// `"*"` stands for "every receiver" (Vigie's TOML root).
    pub fn receivers_for(&self, labels: &Labels) -> Vec<String> {
        self.matching(labels)
            .into_iter()
            .map(|i| {
                self.routes[i]
                    .receiver
                    .clone()
                    .unwrap_or_else(|| "*".into())
            })
            .collect()
    }

    /// Whether route `idx` is muted at `now`: inside one of its mute time
    /// intervals, or outside all of its active time intervals.
    pub fn muted(&self, idx: usize, now: DateTime<Utc>) -> bool {
        let Some(route) = self.routes.get(idx) else {
            return false;
        };
        let within = |name: &String| {
            self.time_intervals
                .get(name)
                .is_some_and(|list| list.iter().any(|ti| ti.contains(now)))
        };
        route.mute_time_intervals.iter().any(within)
            || (!route.active_time_intervals.is_empty()
                && !route.active_time_intervals.iter().any(within))
    }

    /// The routing tree as indented text, one route per line (for logs
    /// and `check-config`).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        self.describe_from(0, 0, &mut out);
        out
    }

    fn describe_from(&self, idx: usize, depth: usize, out: &mut String) {
        let r = &self.routes[idx];
        let _ = writeln!(
            out,
            "{:indent$}{} -> {}{}",
            "",
            r.key,
            r.receiver.as_deref().unwrap_or("every receiver"),
            if r.continue_matching {
                " (continue)"
            } else {
                ""
            },
            indent = depth * 2
        );
        for &c in &r.children {
            self.describe_from(c, depth + 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Matcher {
        Matcher::parse(s).expect("matcher")
    }

    fn node(key: &str, matchers: Vec<Matcher>, receiver: &str, cont: bool) -> RouteNode {
        RouteNode {
            key: key.into(),
            matchers,
            continue_matching: cont,
            receiver: Some(receiver.into()),
            group_by: vec![],
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(3600),
            mute_time_intervals: vec![],
            active_time_intervals: vec![],
            children: vec![],
        }
    }

    #[test]
    fn first_match_wins_unless_continue() {
        let mut root = node("{}", vec![], "default", false);
        root.children = vec![1, 2, 3];
        let routing = Routing {
            routes: vec![
                root,
                node("a", vec![m("team=\"db\"")], "db", true),
                node("b", vec![m("severity=\"critical\"")], "pager", false),
                node("c", vec![m("team=~\"db|web\"")], "web", false),
            ],
            inhibit_rules: vec![],
            time_intervals: BTreeMap::new(),
        };
        let l = |pairs: &[(&str, &str)]| pairs.iter().copied().collect::<Labels>();
        assert_eq!(
            routing.receivers_for(&l(&[("team", "db"), ("severity", "critical")])),
            ["db", "pager"]
        );
        assert_eq!(routing.receivers_for(&l(&[("team", "db")])), ["db", "web"]);
        assert_eq!(routing.receivers_for(&l(&[("team", "web")])), ["web"]);
        assert_eq!(routing.receivers_for(&l(&[("team", "x")])), ["default"]);
    }

    #[test]
    fn inhibition_needs_equal_labels_and_skips_itself() {
        let rule = InhibitRule {
            source: vec![m("severity=\"critical\"")],
            target: vec![m("severity=~\"warning|critical\"")],
            equal: vec!["instance".into()],
        };
        let crit = Labels::new()
            .with("severity", "critical")
            .with("instance", "a");
        let warn_a = Labels::new()
            .with("severity", "warning")
            .with("instance", "a");
        let warn_b = Labels::new()
            .with("severity", "warning")
            .with("instance", "b");
        let sources = [("c", &crit)];
        assert_eq!(rule.inhibited_by(&warn_a, sources), ["c"]);
        assert!(rule.inhibited_by(&warn_b, sources).is_empty());
        assert!(rule.inhibited_by(&crit, sources).is_empty(), "not itself");
    }

    #[test]
    fn time_interval_fields_and_location() {
        let ti = TimeInterval {
            times: vec![(9 * 60, 17 * 60)],
            weekdays: vec![Range { begin: 1, end: 5 }],
            location: Some(chrono_tz::Europe::Paris),
            ..TimeInterval::default()
        };
        // Monday 2024-01-15 08:30 UTC is 09:30 in Paris.
        let t = Utc.with_ymd_and_hms(2024, 1, 15, 8, 30, 0).unwrap();
        assert!(ti.contains(t));
        // 16:30 UTC is 17:30 in Paris: outside.
        assert!(!ti.contains(Utc.with_ymd_and_hms(2024, 1, 15, 16, 30, 0).unwrap()));
        // Sunday.
        assert!(!ti.contains(Utc.with_ymd_and_hms(2024, 1, 14, 9, 30, 0).unwrap()));
        let last_days = TimeInterval {
            days_of_month: vec![Range { begin: -2, end: -1 }],
            ..TimeInterval::default()
        };
        assert!(last_days.contains(Utc.with_ymd_and_hms(2024, 2, 29, 0, 0, 0).unwrap()));
        assert!(last_days.contains(Utc.with_ymd_and_hms(2024, 2, 28, 0, 0, 0).unwrap()));
        assert!(!last_days.contains(Utc.with_ymd_and_hms(2024, 2, 27, 0, 0, 0).unwrap()));
    }
}
