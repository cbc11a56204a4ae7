use super::*;

const S: i64 = 1000;
const M: i64 = 60 * S;
const T0: i64 = 1_700_000_000_000;

fn config() -> AlertingConfig {
    AlertingConfig {
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(300),
        repeat_interval: Duration::from_secs(3600),
        resolve_timeout: Duration::from_secs(300),
        ..AlertingConfig::default()
    }
}

fn targets(send_resolved: bool) -> Vec<Target> {
    vec![Target {
        receiver: "ops".into(),
        integration: "test",
        send_resolved,
    }]
}

fn alert(name: &str, instance: &str, state: AlertState, at: i64) -> Alert {
    Alert {
        labels: Labels::new()
            .with("alertname", name)
            .with("instance", instance),
        annotations: Labels::new().with("summary", format!("{name} on {instance}")),
        state,
        active_at_ms: at - M,
        fired_at_ms: Some(at),
        resolved_at_ms: (state == AlertState::Resolved).then_some(at),
        value: 1.0,
        generator_url: "http://vigie/graph".into(),
    }
}

fn fingerprints(job: &Job) -> Vec<(String, GroupStatus)> {
    job.notification
        .alerts
        .iter()
        .map(|a| (a.labels.get("instance").unwrap_or("").to_string(), a.status))
        .collect()
}

#[test]
fn group_wait_is_respected_and_same_group_alerts_arrive_together() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("HighLatency", "a", AlertState::Firing, T0), T0);
    d.receive(
        &alert("HighLatency", "b", AlertState::Firing, T0),
        T0 + 10 * S,
    );
    assert!(d.tick(T0 + 29 * S).is_empty(), "before group_wait");
    let jobs = d.tick(T0 + 30 * S);
    assert_eq!(jobs.len(), 1);
    let n = &jobs[0].notification;
    assert_eq!(n.group_key, "{}:{alertname=\"HighLatency\"}");
    assert_eq!(
        n.group_labels,
        Labels::new().with("alertname", "HighLatency")
    );
    assert_eq!(n.status, GroupStatus::Firing);
    assert_eq!(n.receiver, "ops");
    assert_eq!(
        fingerprints(&jobs[0]),
        vec![
            ("a".into(), GroupStatus::Firing),
            ("b".into(), GroupStatus::Firing)
        ]
    );
    assert_eq!(n.alerts[0].starts_at_ms, T0);
    assert_eq!(n.alerts[0].ends_at_ms, None);
}

#[test]
fn different_groups_are_notified_separately() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "x", AlertState::Firing, T0), T0);
    d.receive(&alert("B", "x", AlertState::Firing, T0), T0);
    assert_eq!(d.group_count(), 2);
    assert_eq!(d.tick(T0 + 30 * S).len(), 2);
}

#[test]
fn group_by_all_labels() {
    let mut c = config();
    c.group_by = vec!["...".into()];
    let mut d = Dispatcher::new(&c, targets(true));
    d.receive(&alert("A", "x", AlertState::Firing, T0), T0);
    d.receive(&alert("A", "y", AlertState::Firing, T0), T0);
    assert_eq!(d.group_count(), 2);
}

#[test]
fn new_alert_in_group_waits_for_group_interval() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    assert_eq!(d.tick(T0 + 30 * S).len(), 1);
    d.receive(&alert("A", "b", AlertState::Firing, T0 + M), T0 + M);
    assert!(
        d.tick(T0 + 30 * S + 4 * M).is_empty(),
        "before group_interval"
    );
    let jobs = d.tick(T0 + 30 * S + 5 * M);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].notification.alerts.len(), 2);
}

#[test]
fn resolved_notification_then_group_dropped() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    assert_eq!(d.tick(T0 + 30 * S).len(), 1);
    d.receive(
        &alert("A", "a", AlertState::Resolved, T0 + 2 * M),
        T0 + 2 * M,
    );
    assert!(d.tick(T0 + 3 * M).is_empty(), "waits for group_interval");
    let jobs = d.tick(T0 + 30 * S + 5 * M);
    assert_eq!(jobs.len(), 1);
    let n = &jobs[0].notification;
    assert_eq!(n.status, GroupStatus::Resolved);
    assert_eq!(n.alerts[0].status, GroupStatus::Resolved);
    assert_eq!(n.alerts[0].ends_at_ms, Some(T0 + 2 * M));
    assert_eq!(d.group_count(), 0);
    assert!(d.tick(T0 + 2 * 3600 * S).is_empty());
}

#[test]
fn partial_resolution_is_sent_when_send_resolved() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    d.receive(&alert("A", "b", AlertState::Firing, T0), T0);
    assert_eq!(d.tick(T0 + 30 * S).len(), 1);
    d.receive(&alert("A", "b", AlertState::Resolved, T0 + M), T0 + M);
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0 + 4 * M);
    let jobs = d.tick(T0 + 30 * S + 5 * M);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].notification.status, GroupStatus::Firing);
    assert_eq!(
        fingerprints(&jobs[0]),
        vec![
            ("a".into(), GroupStatus::Firing),
            ("b".into(), GroupStatus::Resolved)
        ]
    );
    assert_eq!(
        d.alert_count(),
        1,
        "resolved alert forgotten after the flush"
    );
}

#[test]
fn send_resolved_false_skips_resolved_and_still_drops_group() {
    let mut d = Dispatcher::new(&config(), targets(false));
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    assert_eq!(d.tick(T0 + 30 * S).len(), 1);
    d.receive(&alert("A", "a", AlertState::Resolved, T0 + M), T0 + M);
    assert!(d.tick(T0 + 30 * S + 5 * M).is_empty());
    assert_eq!(d.group_count(), 0);
}

#[test]
fn repeat_after_repeat_interval_not_before() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    let first = T0 + 30 * S;
    assert_eq!(d.tick(first).len(), 1);
    // The analyzer re-sends every minute; each group_interval tick
    // before repeat_interval stays quiet.
    let mut t = first;
    let mut sent = 0;
    while t < first + 3600 * S - 5 * M {
        t += M;
        d.receive(&alert("A", "a", AlertState::Firing, T0), t);
        sent += d.tick(t).len();
    }
    assert_eq!(sent, 0, "no repeat before repeat_interval");
    let mut repeat_at = None;
    while repeat_at.is_none() && t < first + 2 * 3600 * S {
        t += M;
        d.receive(&alert("A", "a", AlertState::Firing, T0), t);
        if !d.tick(t).is_empty() {
            repeat_at = Some(t);
        }
    }
    let repeat_at = repeat_at.expect("repeated");
    assert!(repeat_at >= first + 3600 * S, "{}", repeat_at - first);
    assert!(
        repeat_at <= first + 3600 * S + 5 * M,
        "{}",
        repeat_at - first
    );
}

#[test]
fn resolve_timeout_resolves_stale_alerts() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    assert_eq!(d.tick(T0 + 30 * S).len(), 1);
    // Not re-sent: at T0 + 5m it times out; the next flush is at 5m30s.
    assert!(d.tick(T0 + 5 * M).is_empty());
    let jobs = d.tick(T0 + 30 * S + 5 * M);
    assert_eq!(jobs.len(), 1);
    let n = &jobs[0].notification;
    assert_eq!(n.status, GroupStatus::Resolved);
    assert_eq!(n.alerts[0].ends_at_ms, Some(T0 + 5 * M));
    assert_eq!(d.group_count(), 0);
}

#[test]
fn refreshed_alert_does_not_time_out() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    assert_eq!(d.tick(T0 + 30 * S).len(), 1);
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0 + 4 * M);
    assert!(d.tick(T0 + 30 * S + 5 * M).is_empty());
    assert_eq!(d.group_count(), 1);
}

#[test]
fn failed_delivery_is_resent_at_next_flush() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    let jobs = d.tick(T0 + 30 * S);
    d.mark_failed(&jobs[0].notification.group_key, jobs[0].target);
    assert_eq!(d.tick(T0 + 30 * S + 5 * M).len(), 1);
    assert!(d.tick(T0 + 30 * S + 10 * M).is_empty());
}

#[test]
fn pending_and_unknown_resolved_alerts_are_ignored() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "a", AlertState::Pending, T0), T0);
    d.receive(&alert("A", "b", AlertState::Resolved, T0), T0);
    assert_eq!(d.group_count(), 0);
}

#[test]
fn fired_and_resolved_within_group_wait_is_not_notified() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    d.receive(
        &alert("A", "a", AlertState::Resolved, T0 + 5 * S),
        T0 + 5 * S,
    );
    assert!(d.tick(T0 + 30 * S).is_empty());
    assert_eq!(d.group_count(), 0);
}

fn silence(d: &mut Dispatcher, name: &str, from: i64, to: i64) -> String {
    use crate::silence::{Matcher, PostableSilence};
    let p = PostableSilence {
        id: None,
        matchers: vec![Matcher::new("alertname", name, false, true).expect("matcher")],
        starts_at: utc(from),
        ends_at: utc(to),
        created_by: "t".into(),
        comment: "c".into(),
    };
    d.silences_mut().set(p, utc(from)).expect("silence")
}

#[test]
fn silenced_alerts_are_not_notified_until_the_silence_ends() {
    let mut d = Dispatcher::new(&config(), targets(true));
    let id = silence(&mut d, "A", T0, T0 + 10 * M);
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    d.receive(&alert("B", "a", AlertState::Firing, T0), T0);
    let jobs = d.tick(T0 + 30 * S);
    assert_eq!(jobs.len(), 1, "only the unsilenced group");
    assert_eq!(
        jobs[0].notification.group_labels.get("alertname"),
        Some("B")
    );
    let held = d.alerts(T0 + 30 * S);
    let a = held
        .iter()
        .find(|h| h.labels.get("alertname") == Some("A"))
        .expect("A held");
    assert_eq!(a.silenced_by, vec![id]);
    // Keep A fresh; its group flushes every 5 minutes, muted until 10m.
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0 + 4 * M);
    d.receive(&alert("B", "a", AlertState::Firing, T0), T0 + 4 * M);
    assert!(d.tick(T0 + 30 * S + 5 * M).is_empty());
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0 + 9 * M);
    d.receive(&alert("B", "a", AlertState::Firing, T0), T0 + 9 * M);
    let jobs = d.tick(T0 + 30 * S + 10 * M);
    assert_eq!(jobs.len(), 1, "notified once the silence expired");
    assert_eq!(
        jobs[0].notification.group_labels.get("alertname"),
        Some("A")
    );
}

#[test]
fn posted_alert_resolves_at_its_end_or_when_already_ended() {
    let mut d = Dispatcher::new(&config(), targets(true));
    let a = alert("A", "a", AlertState::Firing, T0);
    d.receive_posted(&a, Some(T0 + 2 * M), T0);
    assert_eq!(d.tick(T0 + 30 * S).len(), 1);
    assert_eq!(d.alerts(T0 + M)[0].ends_at_ms, T0 + 2 * M);
    assert!(!d.alerts(T0 + M)[0].resolved);
    let jobs = d.tick(T0 + 30 * S + 5 * M);
    assert_eq!(jobs[0].notification.status, GroupStatus::Resolved);
    assert_eq!(jobs[0].notification.alerts[0].ends_at_ms, Some(T0 + 2 * M));
    // A past end on a new alert of an unknown group: nothing to tell.
    d.receive_posted(&a, Some(T0), T0 + 6 * M);
    assert_eq!(d.group_count(), 0);
}

fn routed(yaml: &str, receivers: &[&str]) -> Dispatcher {
    let loaded = crate::alertmanager::parse(yaml, "am.yml").expect("alertmanager.yml");
    let targets = receivers
        .iter()
        .map(|r| Target {
            receiver: (*r).into(),
            integration: "test",
            send_resolved: true,
        })
        .collect();
    Dispatcher::with_routing(&config(), loaded.routing, targets)
}

fn labelled(pairs: &[(&str, &str)]) -> Alert {
    let mut a = alert("A", "a", AlertState::Firing, T0);
    a.labels = pairs.iter().copied().collect();
    a
}

const TREE: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      group_wait: 1s
      continue: true
    - matchers: ['team="db"']
      receiver: db
      group_by: ['...']
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [instance]
receivers: [{name: default}, {name: pager}, {name: db}]
"#;

#[test]
fn routes_pick_receivers_timing_and_group_keys() {
    let mut d = routed(TREE, &["default", "pager", "db"]);
    d.receive(
        &labelled(&[
            ("alertname", "Down"),
            ("severity", "critical"),
            ("team", "db"),
        ]),
        T0,
    );
    d.receive(&labelled(&[("alertname", "Other")]), T0);
    assert_eq!(
        d.group_count(),
        3,
        "pager and db for the first, default for the second"
    );
    let early = d.tick(T0 + S);
    assert_eq!(early.len(), 1, "pager's group_wait is 1s");
    assert_eq!(early[0].notification.receiver, "pager");
    assert_eq!(
        early[0].notification.group_key,
        r#"{}/{severity="critical"}:{alertname="Down"}"#
    );
    let later = d.tick(T0 + 10 * S);
    let mut got: Vec<(String, String)> = later
        .iter()
        .map(|j| {
            (
                j.notification.receiver.clone(),
                j.notification.group_key.clone(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "db".to_string(),
                r#"{}/{team="db"}:{alertname="Down",severity="critical",team="db"}"#.to_string()
            ),
            (
                "default".to_string(),
                r#"{}:{alertname="Other"}"#.to_string()
            ),
        ]
    );
}

#[test]
fn inhibited_alerts_are_left_out_and_shown() {
    let mut d = routed(TREE, &["default", "pager", "db"]);
    let crit = labelled(&[
        ("alertname", "Down"),
        ("severity", "critical"),
        ("instance", "x"),
    ]);
    let warn_x = labelled(&[
        ("alertname", "Slow"),
        ("severity", "warning"),
        ("instance", "x"),
    ]);
    let warn_y = labelled(&[
        ("alertname", "Slow"),
        ("severity", "warning"),
        ("instance", "y"),
    ]);
    for a in [&crit, &warn_x, &warn_y] {
        d.receive(a, T0);
    }
    let jobs = d.tick(T0 + 10 * S);
    let slow: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.notification.group_labels.get("alertname") == Some("Slow"))
        .collect();
    assert_eq!(slow.len(), 1);
    let instances: Vec<&str> = slow[0]
        .notification
        .alerts
        .iter()
        .filter_map(|a| a.labels.get("instance"))
        .collect();
    assert_eq!(instances, ["y"], "the warning on x is inhibited");
    let held = d.alerts(T0 + 10 * S);
    let x = held
        .iter()
        .find(|h| h.labels == warn_x.labels)
        .expect("held");
    assert_eq!(x.inhibited_by, [crit.fingerprint()]);
    // The critical one resolves: the warning on x is notified next.
    let mut resolved = crit.clone();
    resolved.state = AlertState::Resolved;
    resolved.resolved_at_ms = Some(T0 + M);
    d.receive(&resolved, T0 + M);
    let jobs = d.tick(T0 + 10 * S + 5 * M);
    let slow = jobs
        .iter()
        .find(|j| j.notification.group_labels.get("alertname") == Some("Slow"))
        .expect("Slow notified again");
    assert_eq!(slow.notification.alerts.len(), 2);
}

#[test]
fn mute_and_active_time_intervals_hold_notifications() {
    let yaml = r#"
route:
  receiver: default
  routes:
    - matchers: ['team="a"']
      receiver: default
      mute_time_intervals: [always]
    - matchers: ['team="b"']
      receiver: default
      active_time_intervals: [long-ago]
time_intervals:
  - name: always
    time_intervals: [{years: ['2000:2999']}]
  - name: long-ago
    time_intervals: [{years: ['1999']}]
receivers: [{name: default}]
"#;
    let mut d = routed(yaml, &["default"]);
    d.receive(&labelled(&[("alertname", "A"), ("team", "a")]), T0);
    d.receive(&labelled(&[("alertname", "B"), ("team", "b")]), T0);
    d.receive(&labelled(&[("alertname", "C"), ("team", "c")]), T0);
    let jobs = d.tick(T0 + 30 * S);
    assert_eq!(jobs.len(), 1, "only the unmuted route");
    assert_eq!(jobs[0].notification.alerts[0].labels.get("team"), Some("c"));
    assert_eq!(d.group_count(), 3, "muted groups are kept for later");
}

#[test]
fn every_target_gets_a_job() {
    let mut t = targets(true);
    t.push(Target {
        receiver: "mail".into(),
        integration: "email",
        send_resolved: false,
    });
    let mut d = Dispatcher::new(&config(), t);
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    let jobs = d.tick(T0 + 30 * S);
    let receivers: Vec<_> = jobs
        .iter()
        .map(|j| j.notification.receiver.as_str())
        .collect();
    assert_eq!(receivers, vec!["ops", "mail"]);
}

#[test]
fn acknowledged_group_is_muted_until_it_resolves() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    let jobs = d.tick(T0 + 30 * S);
    assert_eq!(jobs.len(), 1);
    let key = jobs[0].notification.group_key.clone();
    assert!(d.acknowledge("nothing-held", "me", "", T0).is_empty());
    // By the fingerprint of one of its alerts.
    let fp = alert("A", "a", AlertState::Firing, T0).fingerprint();
    assert_eq!(
        d.acknowledge(&fp, "me", "on it", T0 + M),
        std::slice::from_ref(&key)
    );
    assert!(d.take_dirty(), "an ack is saved");
    // A new alert joins and repeat_interval passes: nothing is sent.
    let mut t = T0 + M;
    while t < T0 + 3 * 3600 * S {
        t += M;
        d.receive(&alert("A", "a", AlertState::Firing, T0), t);
        d.receive(&alert("A", "b", AlertState::Firing, T0 + 2 * M), t);
        assert!(d.tick(t).is_empty(), "muted at {}", t - T0);
    }
    let records = d.take_records();
    assert_eq!(records.len(), 1, "the muting is recorded once: {records:?}");
    assert_eq!(records[0].status, RecordStatus::Acknowledged);
    assert!(
        records[0]
            .detail
            .as_deref()
            .is_some_and(|x| x.contains("me") && x.contains("on it"))
    );
    // The resolution goes out, and clears the acknowledgement.
    d.receive(&alert("A", "a", AlertState::Resolved, t + M), t + M);
    d.receive(&alert("A", "b", AlertState::Resolved, t + M), t + M);
    let jobs = d.tick(t + 6 * M);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].notification.status, GroupStatus::Resolved);
    assert_eq!(d.group_count(), 0);
    assert!(d.ack(&key).is_none(), "cleared when the group resolved");
    // The same alert firing again is news.
    d.receive(&alert("A", "a", AlertState::Firing, t + 10 * M), t + 10 * M);
    assert_eq!(d.tick(t + 11 * M).len(), 1);
}

#[test]
fn restored_log_keeps_a_re_created_group_quiet_and_owes_its_resolution() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    assert_eq!(d.tick(T0 + 30 * S).len(), 1);
    let saved = d.snapshot();
    assert_eq!(saved.log.len(), 1);

    // A restart: the analyzer re-sends the firing alert.
    let mut d = Dispatcher::new(&config(), targets(true));
    d.restore(saved.clone(), T0 + M);
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0 + M);
    assert!(d.tick(T0 + 2 * M).is_empty(), "already told");
    // Another restart, and the alert resolves before it is re-sent: the
    // resolution is still owed.
    let mut d = Dispatcher::new(&config(), targets(true));
    d.restore(saved.clone(), T0 + M);
    d.receive(&alert("A", "a", AlertState::Resolved, T0 + M), T0 + M);
    let jobs = d.tick(T0 + 2 * M);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].notification.status, GroupStatus::Resolved);
    // Entries of groups that never come back are dropped.
    let mut d = Dispatcher::new(&config(), targets(true));
    d.restore(saved, T0 + M);
    assert!(d.tick(T0 + 7 * M).is_empty());
    assert!(d.snapshot().log.is_empty());
}

#[test]
fn resolution_while_silenced_still_reaches_targets_told_it_fired() {
    let mut d = Dispatcher::new(&config(), targets(true));
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
    assert_eq!(d.tick(T0 + 30 * S).len(), 1);
    silence(&mut d, "A", T0 + M, T0 + 3600 * S);
    d.receive(&alert("A", "a", AlertState::Firing, T0), T0 + 2 * M);
    assert!(d.tick(T0 + 30 * S + 5 * M).is_empty(), "silenced");
    d.receive(
        &alert("A", "a", AlertState::Resolved, T0 + 6 * M),
        T0 + 6 * M,
    );
    let jobs = d.tick(T0 + 30 * S + 10 * M);
    assert_eq!(
        jobs.len(),
        1,
        "the resolution closes what the firing opened"
    );
    assert_eq!(jobs[0].notification.status, GroupStatus::Resolved);
    // Silenced from the start: never told, so no resolution either.
    d.receive(&alert("A", "z", AlertState::Firing, T0), T0 + 11 * M);
    assert!(d.tick(T0 + 12 * M).is_empty());
    d.receive(
        &alert("A", "z", AlertState::Resolved, T0 + 12 * M),
        T0 + 12 * M,
    );
    assert!(d.tick(T0 + 20 * M).is_empty());
}

/// Feeds an alert that crosses its threshold every 7 s for 30 minutes
/// (the analyzer sends firing, then resolved, then firing, ...), then
/// stays resolved for 30 minutes, ticking every second as the run loop
/// does; returns the notifications.
fn oscillate(flapping: crate::flap::FlapConfig) -> Vec<Job> {
    let cfg = AlertingConfig {
        group_interval: Duration::from_secs(60),
        flapping,
        ..config()
    };
    let mut d = Dispatcher::new(&cfg, targets(true));
    let mut jobs = Vec::new();
    let mut t = T0;
    while t < T0 + 60 * M {
        let step = (t - T0) / (7 * S);
        if (t - T0) % (7 * S) == 0 && t < T0 + 30 * M {
            let state = if step % 2 == 0 {
                AlertState::Firing
            } else {
                AlertState::Resolved
            };
            d.receive(&alert("A", "a", state, t), t);
        }
        jobs.extend(d.tick(t));
        t += S;
    }
    jobs
}

#[test]
fn an_oscillating_alert_is_notified_once_as_flapping_then_resolved() {
    // More than 4 changes within 5 minutes: flapping before group_wait ends.
    let flapping = crate::flap::FlapConfig {
        changes: 4,
        window: Duration::from_secs(300),
        quiet: Duration::from_secs(600),
    };
    let jobs = oscillate(flapping);
    let summary: Vec<(GroupStatus, Option<&str>)> = jobs
        .iter()
        .map(|j| {
            (
                j.notification.status,
                j.notification.alerts[0].annotations.get("flapping"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (GroupStatus::Firing, Some("true")),
            (GroupStatus::Resolved, None)
        ],
        "one notification while it flapped, one when it settled"
    );
    let changes: usize = jobs[0].notification.alerts[0]
        .annotations
        .get("flap_changes")
        .and_then(|n| n.parse().ok())
        .expect("flap_changes");
    assert!(changes > 4, "{changes}");
    // The resolution is dated at the last change and sent after the
    // quiet window.
    let resolved_at = jobs[1].notification.alerts[0].ends_at_ms.expect("ended");
    assert_eq!(resolved_at, T0 + 1799 * S, "7 s × 257, the last report");
    assert!(jobs[1].notification.notified_at_ms >= T0 + 40 * M);

    // Without flap detection the same series pages dozens of times.
    let off = oscillate(crate::flap::FlapConfig {
        changes: 0,
        ..crate::flap::FlapConfig::default()
    });
    assert!(off.len() >= 20, "{}", off.len());
}

/// High availability: a leader and a standby fed the same alerts; the
/// standby sends nothing, takes the leader's log, and after taking over
/// sends only what is news (here: the resolution the leader still owed).
#[test]
fn a_standby_sends_nothing_and_after_taking_over_sends_only_the_news() {
    let mut leader = Dispatcher::new(&config(), targets(true));
    let mut standby = Dispatcher::new(&config(), targets(true));
    standby.set_standby(true);
    for d in [&mut leader, &mut standby] {
        d.receive(&alert("HostDown", "a", AlertState::Firing, T0), T0);
        d.receive(&alert("HostDown", "b", AlertState::Firing, T0), T0);
    }
    let sent = leader.tick(T0 + 30 * S);
    assert_eq!(sent.len(), 1);
    assert!(
        standby.tick(T0 + 30 * S).is_empty(),
        "the standby sends nothing"
    );
    let key = sent[0].notification.group_key.clone();
    let entry = leader.log_entry(0, &key, "leader").expect("logged");
    assert_eq!(entry.firing.len(), 2);
    assert!(standby.note_peer(&entry, T0 + 31 * S));
    // Another configuration's target is ignored.
    let foreign = vigie_model::NotificationLogEntry {
        receiver: "someone-else".into(),
        ..entry.clone()
    };
    assert!(!standby.note_peer(&foreign, T0 + 31 * S));

    // The alerts resolve; the leader dies before telling anyone. The
    // standby keeps the owed resolution through its own flushes...
    for d in [&mut leader, &mut standby] {
        d.receive(
            &alert("HostDown", "a", AlertState::Resolved, T0 + M),
            T0 + M,
        );
        d.receive(
            &alert("HostDown", "b", AlertState::Resolved, T0 + M),
            T0 + M,
        );
    }
    assert!(standby.tick(T0 + 6 * M).is_empty());
    assert_eq!(standby.group_count(), 1, "the owed resolution is kept");
    // ...and sends it, once, when it leads.
    standby.set_standby(false);
    let jobs = standby.tick(T0 + 11 * M);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].notification.status, GroupStatus::Resolved);
    assert_eq!(jobs[0].notification.alerts.len(), 2);
    assert!(standby.tick(T0 + 16 * M).is_empty());
    assert_eq!(standby.group_count(), 0);
}

/// A standby that took over does not repeat a page the leader sent.
#[test]
fn a_standby_taking_over_does_not_repeat_what_the_leader_sent() {
    let mut leader = Dispatcher::new(&config(), targets(true));
    let mut standby = Dispatcher::new(&config(), targets(true));
    standby.set_standby(true);
    for d in [&mut leader, &mut standby] {
        d.receive(&alert("HostDown", "a", AlertState::Firing, T0), T0);
    }
    let sent = leader.tick(T0 + 30 * S);
    let key = sent[0].notification.group_key.clone();
    assert!(standby.tick(T0 + 30 * S).is_empty());
    let entry = leader.log_entry(0, &key, "leader").expect("logged");
    standby.note_peer(&entry, T0 + 31 * S);
    standby.set_standby(false);
    for t in [T0 + 6 * M, T0 + 11 * M, T0 + 30 * M] {
        standby.receive(&alert("HostDown", "a", AlertState::Firing, T0), t);
        assert!(standby.tick(t).is_empty(), "repeated at {t}");
    }
    // Until repeat_interval passes, as for the leader itself.
    standby.receive(&alert("HostDown", "a", AlertState::Firing, T0), T0 + 61 * M);
    assert_eq!(standby.tick(T0 + 61 * M).len(), 1);
}
