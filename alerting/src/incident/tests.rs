use std::time::Duration;

use vigie_model::{AnomalyEvent, AnomalyPhase, Labels};

use super::tracker::strip_port_for_tests as strip_port;
use super::*;
use crate::notify::{GroupStatus, NotifiedAlert};

const MIN: i64 = 60_000;
const T0: i64 = 1_700_000_000_000;

fn tracker() -> IncidentTracker {
    IncidentTracker::new(IncidentConfig::default(), Duration::from_secs(300))
}

fn onset(metric: &str, host: &str, at_ms: i64) -> AnomalyEvent {
    AnomalyEvent {
        phase: AnomalyPhase::Onset,
        metric: metric.into(),
        labels: Labels::new().with("host", host),
        score: 1.0,
        at_ms,
    }
}

fn alert_labels(name: &str, host: &str) -> Labels {
    Labels::new().with("alertname", name).with("host", host)
}

fn notified(fp: &str, name: &str, host: &str, firing: bool) -> NotifiedAlert {
    NotifiedAlert {
        status: if firing {
            GroupStatus::Firing
        } else {
            GroupStatus::Resolved
        },
        labels: alert_labels(name, host),
        annotations: Labels::new(),
        starts_at_ms: T0,
        ends_at_ms: None,
        generator_url: String::new(),
        fingerprint: fp.into(),
    }
}

#[test]
fn groups_by_scope_root_is_earliest_onset_and_chain_is_in_time_order() {
    let mut t = tracker();
    // Arrival order differs from event order: load first, temp (earlier).
    t.observe_anomaly(&onset("node_load1", "a", T0 + 2 * MIN), T0 + 2 * MIN);
    t.observe_anomaly(&onset("node_hwmon_temp_celsius", "a", T0), T0 + 2 * MIN);
    t.observe_alert(
        "fp-a",
        &alert_labels("HostOverheating", "a"),
        T0 + 5 * MIN,
        None,
        T0 + 6 * MIN,
    );
    t.observe_alert(
        "fp-b",
        &alert_labels("DiskFull", "b"),
        T0 + 5 * MIN,
        None,
        T0 + 6 * MIN,
    );
    let all = t.list(T0 + 6 * MIN, None);
    assert_eq!(all.len(), 2, "{all:#?}");
    let a = all.iter().find(|i| i.scope == "a").expect("incident a");
    assert_eq!(a.scope_label, "host");
    assert_eq!(a.members.len(), 3);
    let hint = a.hint();
    let root = hint.root_cause.as_ref().expect("a root cause");
    assert_eq!(root.series, "node_hwmon_temp_celsius{host=\"a\"}");
    assert_eq!(root.metric, "node_hwmon_temp_celsius");
    assert_eq!(root.at_ms, T0);
    let chain: Vec<(LinkKind, &str, i64)> = hint
        .chain
        .iter()
        .map(|l| (l.kind, l.name.as_str(), l.delay_ms))
        .collect();
    assert_eq!(
        chain,
        vec![
            (LinkKind::Anomaly, "node_load1{host=\"a\"}", 2 * MIN),
            (LinkKind::Alert, "HostOverheating", 5 * MIN),
        ]
    );
    let line = hint.summary_line().expect("a line");
    assert!(
        line.starts_with(
            "Probable root cause: node_hwmon_temp_celsius{host=\"a\"} anomalous since 2023-11-14T22:13:20Z, then node_load1{host=\"a\"} anomalous (+2m), then alert HostOverheating (+5m)"
        ),
        "{line}"
    );
    let b = all.iter().find(|i| i.scope == "b").expect("incident b");
    assert!(b.hint().root_cause.is_none());
    assert!(b.hint().summary_line().is_none());
}

#[test]
fn instance_port_is_stripped_and_first_scope_label_wins() {
    let mut t = tracker();
    let mut e = onset("node_load1", "x", T0);
    e.labels = Labels::new().with("instance", "10.0.0.5:9100");
    t.observe_anomaly(&e, T0);
    t.observe_alert(
        "fp",
        &Labels::new()
            .with("alertname", "Down")
            .with("instance", "10.0.0.5:9182"),
        T0 + MIN,
        None,
        T0 + MIN,
    );
    let all = t.list(T0 + MIN, None);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].scope, "10.0.0.5");
    assert_eq!(strip_port("[::1]:9100"), "::1");
    assert_eq!(strip_port("host-a"), "host-a");
    assert_eq!(strip_port("fe80::1"), "fe80::1");
    // No scope label: counted, not kept.
    let mut unscoped = onset("up", "x", T0);
    unscoped.labels = Labels::new().with("job", "node");
    t.observe_anomaly(&unscoped, T0);
    assert_eq!(t.list(T0 + MIN, None).len(), 1);
}

#[test]
fn events_beyond_the_window_open_a_new_incident_and_quiet_ones_close() {
    let mut t = tracker();
    t.observe_anomaly(&onset("node_load1", "a", T0), T0);
    // 31 minutes later, nothing firing: a new incident.
    t.observe_anomaly(&onset("node_load5", "a", T0 + 31 * MIN), T0 + 31 * MIN);
    let all = t.list(T0 + 31 * MIN, None);
    assert_eq!(all.len(), 2);
    let closed = t.list(T0 + 31 * MIN, Some(false));
    assert_eq!(closed.len(), 1, "the first closed after 30m of quiet");
    assert_eq!(closed[0].members[0].name, "node_load1{host=\"a\"}");
    assert_eq!(t.list(T0 + 31 * MIN, Some(true)).len(), 1);
}

#[test]
fn an_incident_stays_open_while_an_alert_fires_and_closes_after_resolution_and_quiet() {
    let mut t = tracker();
    let labels = alert_labels("HighLoad", "a");
    t.observe_alert("fp", &labels, T0, None, T0);
    // Re-sent every minute for an hour: still open, later events join.
    for m in 1..=60 {
        t.observe_alert("fp", &labels, T0, None, T0 + m * MIN);
    }
    t.observe_anomaly(&onset("node_load1", "a", T0 + 59 * MIN), T0 + 60 * MIN);
    assert_eq!(t.list(T0 + 60 * MIN, Some(true)).len(), 1);
    assert_eq!(t.list(T0 + 60 * MIN, None)[0].members.len(), 2);
    // Resolved at 61m; closes 30m later.
    t.observe_alert("fp", &labels, T0, Some(T0 + 61 * MIN), T0 + 61 * MIN);
    assert_eq!(t.list(T0 + 90 * MIN, Some(true)).len(), 1);
    assert_eq!(t.list(T0 + 91 * MIN, Some(false)).len(), 1);
    // An alert no longer re-sent counts as resolved after resolve_timeout.
    let mut t = tracker();
    t.observe_alert("fp", &labels, T0, None, T0);
    assert_eq!(t.list(T0 + 4 * MIN, Some(true)).len(), 1);
    assert_eq!(t.list(T0 + 36 * MIN, Some(false)).len(), 1);
}

#[test]
fn caps_bound_memory() {
    let config = IncidentConfig {
        max_open: 2,
        max_members: 3,
        max_closed: 1,
        ..IncidentConfig::default()
    };
    let mut t = IncidentTracker::new(config, Duration::from_secs(300));
    let open_before = crate::metrics::INCIDENTS_CAPPED
        .with_label_values(&["open"])
        .get();
    let members_before = crate::metrics::INCIDENTS_CAPPED
        .with_label_values(&["members"])
        .get();
    for host in ["a", "b", "c"] {
        t.observe_anomaly(&onset("node_load1", host, T0), T0);
    }
    assert_eq!(t.list(T0, None).len(), 2, "max_open");
    for m in 0..5 {
        t.observe_anomaly(&onset(&format!("m{m}"), "a", T0 + MIN), T0 + MIN);
    }
    let a = t
        .list(T0 + MIN, None)
        .into_iter()
        .find(|i| i.scope == "a")
        .expect("a");
    assert_eq!(a.members.len(), 3, "max_members");
    assert_eq!(a.dropped_members, 3);
    assert!(
        crate::metrics::INCIDENTS_CAPPED
            .with_label_values(&["open"])
            .get()
            > open_before
    );
    assert!(
        crate::metrics::INCIDENTS_CAPPED
            .with_label_values(&["members"])
            .get()
            >= members_before + 3
    );
    // Both close; only max_closed = 1 is kept.
    assert_eq!(t.list(T0 + 40 * MIN, None).len(), 1);
}

#[test]
fn a_notification_gets_the_incident_of_its_alerts_with_ends() {
    let mut t = tracker();
    t.observe_anomaly(&onset("node_hwmon_temp_celsius", "a", T0 - MIN), T0);
    let hint = t
        .hint_for(&[notified("fp-a", "HostOverheating", "a", true)], T0 + MIN)
        .expect("a hint");
    assert_eq!(
        hint.root_cause.as_ref().map(|c| c.metric.as_str()),
        Some("node_hwmon_temp_celsius")
    );
    let json = hint.to_json();
    assert_eq!(json["id"], hint.id.as_str());
    assert_eq!(json["chain"][0]["delaySeconds"], 60.0);
    assert_eq!(json["rootCause"]["anomalousSince"], "2023-11-14T22:12:20Z");
    // An end event is recorded on the member.
    let mut end = onset("node_hwmon_temp_celsius", "a", T0 + 2 * MIN);
    end.phase = AnomalyPhase::End;
    t.observe_anomaly(&end, T0 + 2 * MIN);
    let i = &t.list(T0 + 2 * MIN, None)[0];
    assert_eq!(i.members[0].ended_ms, Some(T0 + 2 * MIN));
    // An alert of another host has its own incident, without a root.
    let other = t
        .hint_for(&[notified("fp-b", "DiskFull", "b", true)], T0 + MIN)
        .expect("b's own incident");
    assert_ne!(other.id, hint.id);
    assert!(other.root_cause.is_none());
    // Off: nothing.
    let mut off = IncidentTracker::new(
        IncidentConfig {
            enabled: false,
            ..IncidentConfig::default()
        },
        Duration::from_secs(300),
    );
    assert!(
        off.hint_for(&[notified("fp-a", "X", "a", true)], T0)
            .is_none()
    );
}

#[test]
fn delays_format_compactly_and_config_problems_name_keys() {
    assert_eq!(format_delay(0), "+0s");
    assert_eq!(format_delay(150_000), "+2m30s");
    assert_eq!(format_delay(3_900_000), "+1h5m");
    assert_eq!(format_delay(-180_000), "-3m");
    assert!(IncidentConfig::default().problems().is_empty());
    let bad = IncidentConfig {
        scope_labels: vec![],
        window: Duration::ZERO,
        max_members: 0,
        ..IncidentConfig::default()
    };
    let keys: Vec<String> = bad.problems().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![
            "alerting.incidents.scope_labels",
            "alerting.incidents.window",
            "alerting.incidents.max_members"
        ]
    );
    assert_eq!(
        default_consumer_group("vigie", "am-1"),
        "vigie-incidents-am-1"
    );
}

#[tokio::test]
async fn merged_subscriber_delivers_both_and_commits_to_the_owner() {
    use vigie_bus::memory::MemoryBus;
    use vigie_bus::{Message, Publisher, Subscriber};
    let alerts_bus = MemoryBus::new(8);
    let anomalies_bus = MemoryBus::new(8);
    let mut merged = Merged::new(
        Box::new(alerts_bus.subscribe(&[vigie_model::topics::ALERTS])),
        Box::new(anomalies_bus.subscribe(&[vigie_model::topics::ANOMALIES])),
        &[vigie_model::topics::ANOMALIES],
    );
    alerts_bus
        .publish(Message::new(
            vigie_model::topics::ALERTS,
            vec![],
            b"a".to_vec(),
        ))
        .await
        .expect("publish");
    anomalies_bus
        .publish(Message::new(
            vigie_model::topics::ANOMALIES,
            vec![],
            b"b".to_vec(),
        ))
        .await
        .expect("publish");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let d = merged.recv().await.expect("recv").expect("open");
        merged
            .commit(&d.message.topic, d.position)
            .await
            .expect("commit goes to the subscriber that read it");
        seen.push(d.message.topic);
    }
    seen.sort();
    assert_eq!(seen, vec!["vigie.alerts", "vigie.anomalies"]);
    drop(alerts_bus);
    drop(anomalies_bus);
    assert!(
        merged.recv().await.expect("recv").is_none(),
        "closed once both are"
    );
}

#[test]
fn a_vm_alert_naming_its_hypervisor_joins_the_hypervisors_incident() {
    let mut t = tracker();
    let mut hot = onset("node_hwmon_temp_celsius", "x", T0);
    hot.labels = Labels::new().with("instance", "hv-3:9100");
    t.observe_anomaly(&hot, T0);
    // The VM's own scope is its instance; its hypervisor label matches.
    t.observe_alert(
        "fp-vm",
        &Labels::new()
            .with("alertname", "InstanceDown")
            .with("instance", "vm-1:9100")
            .with("hypervisor", "hv-3"),
        T0 + 3 * MIN,
        None,
        T0 + 3 * MIN,
    );
    let all = t.list(T0 + 3 * MIN, None);
    assert_eq!(all.len(), 1, "{all:#?}");
    let hint = all[0].hint();
    assert_eq!(all[0].scope, "hv-3");
    assert_eq!(
        hint.root_cause.map(|c| c.metric),
        Some("node_hwmon_temp_celsius".to_string())
    );
    assert_eq!(hint.chain[0].name, "InstanceDown");
}
