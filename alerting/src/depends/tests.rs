use std::time::Duration;

use vigie_model::{Alert, AlertState};

use super::map::{DependencyMap, MapError};
use super::*;
use crate::config::AlertingConfig;
use crate::dispatch::{Dispatcher, Job, Target};
use crate::history::RecordStatus;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().copied().collect()
}

fn level(child: &str, parent: &str) -> LevelConfig {
    LevelConfig {
        child_label: child.into(),
        child_regex: None,
        parent_label: parent.into(),
        parent_regex: None,
        strip_port: false,
        child_matchers: Vec::new(),
        parent_matchers: None,
    }
}

/// The OpenStack chain: VM alerts name their hypervisor, whose node
/// exporter alerts carry `instance="hv:9100"`; service alerts'
/// `instance="vm:port"` names the VM, whose alerts carry `instance_name`.
fn openstack() -> DependencyConfig {
    DependencyConfig {
        levels: vec![
            LevelConfig {
                strip_port: true,
                ..level("hypervisor", "instance")
            },
            LevelConfig {
                strip_port: true,
                ..level("instance", "instance_name")
            },
        ],
        ..DependencyConfig::default()
    }
}

fn firing(alerts: &[(&str, Labels)]) -> BTreeMap<String, Labels> {
    alerts
        .iter()
        .map(|(fp, l)| (fp.to_string(), l.clone()))
        .collect()
}

fn hv(name: &str) -> Labels {
    labels(&[
        ("alertname", "HostDown"),
        ("instance", &format!("{name}:9100")),
        ("severity", "critical"),
    ])
}

fn vm(name: &str, hypervisor: &str) -> Labels {
    labels(&[
        ("alertname", "InstanceDown"),
        ("instance_name", name),
        ("hypervisor", hypervisor),
        ("severity", "critical"),
    ])
}

fn service(vm: &str) -> Labels {
    labels(&[
        ("alertname", "HttpDown"),
        ("instance", &format!("{vm}:8080")),
        ("severity", "critical"),
    ])
}

#[test]
fn strip_port_cuts_only_ports() {
    assert_eq!(strip_port("hv-3:9100"), "hv-3");
    assert_eq!(strip_port("hv-3"), "hv-3");
    assert_eq!(strip_port("[::1]:9100"), "::1");
    assert_eq!(strip_port("fe80::1"), "fe80::1");
    assert_eq!(strip_port("host:http"), "host:http");
    assert_eq!(strip_port(":9100"), ":9100");
}

#[test]
fn yaml_map_is_transitive() {
    let m = DependencyMap::parse(
        "# rack → hypervisors → VMs\nrack-1: [hv-3]\nhv-3: [vm-1, vm-2]\nvm-1: [db]\n",
        "deps.yaml",
    )
    .expect("map");
    assert_eq!(m.edges(), 4);
    let mut db: Vec<&str> = m.ancestors("db").collect();
    db.sort();
    assert_eq!(db, ["hv-3", "rack-1", "vm-1"]);
    assert_eq!(m.ancestors("vm-2").collect::<Vec<_>>(), ["hv-3", "rack-1"]);
    assert_eq!(m.ancestors("hv-3").collect::<Vec<_>>(), ["rack-1"]);
    assert_eq!(m.ancestors("rack-1").count(), 0, "a root has no ancestor");
    assert_eq!(m.ancestors("unknown").count(), 0);
}

#[test]
fn toml_map_and_empty_yaml_map() {
    let m = DependencyMap::parse("hv-3 = [\"vm-1\", \"vm-2\"]\n", "deps.toml").expect("toml");
    assert_eq!(m.ancestors("vm-1").collect::<Vec<_>>(), ["hv-3"]);
    let empty = DependencyMap::parse("# nothing yet\n", "deps.yaml").expect("empty");
    assert_eq!(empty.edges(), 0);
}

#[test]
fn cycles_are_errors_naming_file_key_and_fix() {
    let e = DependencyMap::parse("hv-3: [vm-1]\nvm-1: [db]\ndb: [hv-3]\n", "deps.yaml")
        .expect_err("cycle");
    let MapError::Invalid { file, key, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(file, "deps.yaml");
    assert!(["hv-3", "vm-1", "db"].contains(&key.as_str()), "{key}");
    let msg = e.to_string();
    assert!(msg.contains("cycle"), "{msg}");
    assert!(msg.contains("remove one of these edges"), "{msg}");
    for name in ["hv-3", "vm-1", "db"] {
        assert!(msg.contains(name), "{msg}");
    }
    let own = DependencyMap::parse("hv-3: [hv-3]\n", "deps.yaml").expect_err("self");
    assert!(own.to_string().contains("lists itself"), "{own}");
}

#[test]
fn bad_map_syntax_names_the_file_and_the_expected_shape() {
    let e = DependencyMap::parse("hv-3: vm-1\n", "deps.yaml").expect_err("not a list");
    let msg = e.to_string();
    assert!(msg.starts_with("deps.yaml: "), "{msg}");
    assert!(msg.contains("hv-3: [vm-1, vm-2]"), "{msg}");
    let e = DependencyMap::parse("hv-3 = 1\n", "deps.toml").expect_err("toml");
    assert!(e.to_string().starts_with("deps.toml: "), "{e}");
}

#[test]
fn config_problems_name_keys() {
    let c = DependencyConfig {
        parent_matchers: vec!["severity=~\"(\"".into()],
        levels: vec![LevelConfig {
            child_regex: Some("(".into()),
            ..level("hyper-visor", "host")
        }],
        map_file: Some("/nonexistent/deps.yaml".into()),
        ..DependencyConfig::default()
    };
    let problems = c.problems();
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "alerting.dependencies.parent_matchers[0]",
            "alerting.dependencies.levels[0].child_label",
            "alerting.dependencies.levels[0].child_regex",
            "alerting.dependencies.map_file",
        ],
        "{problems:?}"
    );
    assert!(
        problems[3].1.contains("/nonexistent/deps.yaml"),
        "{problems:?}"
    );
    assert!(DependencyConfig::default().problems().is_empty());
    assert!(openstack().problems().is_empty());
    // Unknown keys are refused when the TOML is read.
    let typo = serde_json::from_str::<DependencyConfig>(r#"{"level":[]}"#);
    assert!(typo.is_err());
    let typo = serde_json::from_str::<DependencyConfig>(
        r#"{"levels":[{"child_label":"a","parent_label":"b","strip_ports":true}]}"#,
    );
    assert!(typo.is_err());
}

#[test]
fn map_cycle_is_a_config_problem_with_file_and_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("deps.yaml");
    std::fs::write(&path, "hv-3: [vm-1]\nvm-1: [hv-3]\n").expect("write");
    let c = DependencyConfig {
        map_file: Some(path.clone()),
        ..DependencyConfig::default()
    };
    let problems = c.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "alerting.dependencies.map_file");
    assert!(problems[0].1.contains(&path.display().to_string()));
    assert!(problems[0].1.contains("key \"hv-3\""), "{problems:?}");
    // And it reaches `[alerting]`'s problems.
    let all = AlertingConfig {
        dependencies: c,
        ..AlertingConfig::default()
    }
    .problems();
    assert!(
        all.iter()
            .any(|(k, _)| k == "alerting.dependencies.map_file")
    );
}

#[test]
fn one_hypervisor_suppresses_its_vms() {
    let mut d = Dependencies::build(&openstack()).expect("build");
    let mut alerts = vec![("hv".to_string(), hv("hv-3"))];
    for i in 0..20 {
        alerts.push((format!("vm{i:02}"), vm(&format!("vm-{i}"), "hv-3")));
    }
    alerts.push(("other".into(), vm("vm-x", "hv-9")));
    let f: BTreeMap<String, Labels> = alerts.into_iter().collect();
    d.observe(&f);
    assert_eq!(d.view().suppressed.len(), 20);
    assert_eq!(d.dependents("hv"), 20);
    assert_eq!(d.suppressed("other", false), None, "its hypervisor is up");
    let why = d.suppressed("vm07", false).expect("suppressed");
    assert_eq!(why, "depends on HostDown{instance=\"hv-3:9100\"} (hv)");
    let a = d.annotate("hv", true, Labels::new());
    assert_eq!(a.get(ANNOTATION), Some("20"));
    assert_eq!(d.annotate("hv", false, Labels::new()).get(ANNOTATION), None);
}

#[test]
fn only_down_parents_suppress() {
    let mut d = Dependencies::build(&openstack()).expect("build");
    let mut warning = hv("hv-3");
    warning.insert("severity", "warning");
    d.observe(&firing(&[("hv", warning), ("vm", vm("vm-1", "hv-3"))]));
    assert!(d.view().suppressed.is_empty());
    // With no parent matchers, any firing alert of the parent counts.
    let mut any = openstack();
    any.parent_matchers.clear();
    let mut d = Dependencies::build(&any).expect("build");
    let mut warning = hv("hv-3");
    warning.insert("severity", "warning");
    d.observe(&firing(&[("hv", warning), ("vm", vm("vm-1", "hv-3"))]));
    assert!(d.suppressed("vm", false).is_some());
}

#[test]
fn three_level_chain_names_the_top() {
    let mut d = Dependencies::build(&openstack()).expect("build");
    d.observe(&firing(&[
        ("hv", hv("hv-3")),
        ("vm", vm("vm-1", "hv-3")),
        ("svc", service("vm-1")),
    ]));
    assert_eq!(d.dependents("hv"), 2, "the VM and the service");
    assert_eq!(d.dependents("vm"), 0);
    let why = d.suppressed("svc", false).expect("service suppressed");
    assert!(why.contains("(hv)"), "{why}");
    // The hypervisor back up: the VM suppresses its service.
    d.observe(&firing(&[
        ("vm", vm("vm-1", "hv-3")),
        ("svc", service("vm-1")),
    ]));
    assert_eq!(d.suppressed("vm", false), None);
    assert_eq!(d.dependents("vm"), 1);
    assert!(
        d.suppressed("svc", false)
            .is_some_and(|w| w.contains("InstanceDown{instance_name=\"vm-1\"} (vm)"))
    );
}

#[test]
fn alerts_depending_on_each_other_do_not_suppress_each_other() {
    // `instance` → `instance`: every alert on a host depends on the others.
    let c = DependencyConfig {
        levels: vec![level("instance", "instance")],
        ..DependencyConfig::default()
    };
    let mut d = Dependencies::build(&c).expect("build");
    let a = labels(&[
        ("alertname", "A"),
        ("instance", "x"),
        ("severity", "critical"),
    ]);
    let b = labels(&[
        ("alertname", "B"),
        ("instance", "x"),
        ("severity", "critical"),
    ]);
    d.observe(&firing(&[("a", a), ("b", b)]));
    assert!(d.view().suppressed.is_empty(), "{:?}", d.view());
}

#[test]
fn static_map_and_reload() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("deps.yaml");
    std::fs::write(&path, "hv-3: [vm-1]\n").expect("write");
    let c = DependencyConfig {
        map_file: Some(path.clone()),
        ..DependencyConfig::default()
    };
    let mut d = Dependencies::build(&c).expect("build");
    let host = labels(&[
        ("alertname", "HostDown"),
        ("host", "hv-3"),
        ("severity", "critical"),
    ]);
    let on = |name: &str| {
        labels(&[
            ("alertname", "NodeDown"),
            ("instance", &format!("{name}:9100")),
        ])
    };
    let f = firing(&[("hv", host), ("vm1", on("vm-1")), ("vm2", on("vm-2"))]);
    d.observe(&f);
    assert!(d.suppressed("vm1", false).is_some());
    assert!(d.suppressed("vm2", false).is_none(), "not in the map yet");
    // A changed file is taken at the next observation.
    std::fs::write(&path, "hv-3: [vm-1, vm-2]\n").expect("write");
    d.observe(&f);
    assert!(d.suppressed("vm2", false).is_some());
    // A broken file keeps the previous map.
    std::fs::write(&path, "hv-3: [vm-1]\nvm-1: [hv-3]\n# broken\n").expect("write");
    let errors = DEPENDENCY_MAP_ERRORS.get();
    d.observe(&f);
    assert!(DEPENDENCY_MAP_ERRORS.get() > errors);
    assert!(d.suppressed("vm2", false).is_some(), "previous map kept");
}

const S: i64 = 1000;
const M: i64 = 60 * S;
const T0: i64 = 1_700_000_000_000;

fn dispatcher(deps: DependencyConfig) -> Dispatcher {
    let config = AlertingConfig {
        group_by: vec!["alertname".into()],
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(300),
        repeat_interval: Duration::from_secs(3600),
        dependencies: deps,
        ..AlertingConfig::default()
    };
    let targets = vec![Target {
        receiver: "ops".into(),
        integration: "test",
        send_resolved: true,
    }];
    Dispatcher::new(&config, targets)
}

fn alert(labels: Labels, state: AlertState) -> Alert {
    Alert {
        labels,
        annotations: Labels::new(),
        state,
        active_at_ms: T0 - M,
        fired_at_ms: Some(T0),
        resolved_at_ms: None,
        value: 1.0,
        generator_url: String::new(),
    }
}

fn names(jobs: &[Job]) -> Vec<String> {
    let mut out: Vec<String> = jobs
        .iter()
        .flat_map(|j| &j.notification.alerts)
        .map(|a| {
            format!(
                "{} {} {}",
                a.labels.get("alertname").unwrap_or(""),
                a.labels
                    .get("instance_name")
                    .or_else(|| a.labels.get("instance"))
                    .unwrap_or(""),
                a.status.as_str()
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn dispatcher_pages_the_hypervisor_once_and_its_vms_after_it_resolves() {
    let mut d = dispatcher(openstack());
    d.receive(&alert(hv("hv-3"), AlertState::Firing), T0);
    for i in 0..5 {
        d.receive(
            &alert(vm(&format!("vm-{i}"), "hv-3"), AlertState::Firing),
            T0,
        );
    }
    let jobs = d.tick(T0 + 30 * S);
    assert_eq!(names(&jobs), ["HostDown hv-3:9100 firing"]);
    let hv_alert = &jobs[0].notification.alerts[0];
    assert_eq!(hv_alert.annotations.get(ANNOTATION), Some("5"));
    assert_eq!(
        crate::depends::dependents_line(&jobs[0].notification).as_deref(),
        Some("5 dependents suppressed")
    );
    let slack = crate::notify::slack::default_text(&jobs[0].notification);
    assert!(slack.ends_with("\n5 dependents suppressed"), "{slack}");
    let email = crate::notify::email::text_body(&jobs[0].notification);
    assert!(email.contains("\n5 dependents suppressed ("), "{email}");
    assert!(email.contains("dependents_suppressed = 5"), "{email}");
    let records = d.take_records();
    assert_eq!(records.len(), 1, "one group of VMs: {records:?}");
    assert_eq!(records[0].status, RecordStatus::Suppressed);
    assert_eq!(records[0].alerts.len(), 5);
    assert!(
        records[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("HostDown")),
        "{records:?}"
    );
    // The hypervisor resolves; vm-0..2 resolve with it, vm-3 and vm-4 fire on.
    let t = T0 + 2 * M;
    let mut resolved = alert(hv("hv-3"), AlertState::Resolved);
    resolved.resolved_at_ms = Some(t);
    d.receive(&resolved, t);
    for i in 0..5 {
        let state = if i < 3 {
            AlertState::Resolved
        } else {
            AlertState::Firing
        };
        let mut a = alert(vm(&format!("vm-{i}"), "hv-3"), state);
        a.resolved_at_ms = (i < 3).then_some(t);
        d.receive(&a, t);
    }
    let jobs = d.tick(T0 + 30 * S + 5 * M);
    assert_eq!(
        names(&jobs),
        [
            "HostDown hv-3:9100 resolved",
            "InstanceDown vm-3 firing",
            "InstanceDown vm-4 firing",
        ],
        "never-notified resolutions are not sent"
    );
    // Nothing stale follows: the next flushes are quiet.
    for k in 1..4 {
        for i in 3..5 {
            d.receive(
                &alert(vm(&format!("vm-{i}"), "hv-3"), AlertState::Firing),
                T0 + 30 * S + (5 * k + 4) * M,
            );
        }
        assert!(d.tick(T0 + 30 * S + (5 * k + 5) * M).is_empty());
    }
}

#[test]
fn dependents_notified_before_the_parent_failed_still_resolve() {
    let mut d = dispatcher(openstack());
    d.receive(&alert(vm("vm-1", "hv-3"), AlertState::Firing), T0);
    assert_eq!(names(&d.tick(T0 + 30 * S)), ["InstanceDown vm-1 firing"]);
    // The hypervisor fails after the VM was paged: the VM's group is
    // quiet while it is down...
    d.receive(&alert(hv("hv-3"), AlertState::Firing), T0 + M);
    let jobs = d.tick(T0 + M + 30 * S);
    assert_eq!(names(&jobs), ["HostDown hv-3:9100 firing"]);
    assert_eq!(
        jobs[0].notification.alerts[0].annotations.get(ANNOTATION),
        Some("1")
    );
    // ... and the VM's resolution still closes what its firing opened.
    let t = T0 + 3 * M;
    let mut a = alert(vm("vm-1", "hv-3"), AlertState::Resolved);
    a.resolved_at_ms = Some(t);
    d.receive(&a, t);
    d.receive(&alert(hv("hv-3"), AlertState::Firing), t);
    let jobs = d.tick(T0 + 30 * S + 5 * M);
    assert_eq!(names(&jobs), ["InstanceDown vm-1 resolved"]);
}

#[test]
fn suppressions_count_in_the_metric() {
    let before = crate::metrics::NOTIFICATIONS_SUPPRESSED
        .with_label_values(&["dependency"])
        .get();
    let mut d = dispatcher(openstack());
    d.receive(&alert(hv("hv-7"), AlertState::Firing), T0);
    d.receive(&alert(vm("vm-70", "hv-7"), AlertState::Firing), T0);
    d.receive(&alert(vm("vm-71", "hv-7"), AlertState::Firing), T0);
    d.tick(T0 + 30 * S);
    let after = crate::metrics::NOTIFICATIONS_SUPPRESSED
        .with_label_values(&["dependency"])
        .get();
    assert!(after >= before + 2, "{before} -> {after}");
}
