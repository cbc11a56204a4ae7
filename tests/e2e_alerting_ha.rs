//! Alerting high availability against a real Kafka-protocol broker
//! (tansu) with a real third-party producer (kcat): two `vigie run
//! --roles alert` replicas read the same `vigie.alerts`; one is elected
//! and pages, the other stands by. The group is paged once, not once per
//! replica; after the leader is killed with SIGKILL the standby takes
//! over without paging the group again, and sends its resolution once.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::{Broker, kcat_produce};
use common::{Vigie, Webhook, free_port, metric_value};
use serde_json::Value;
use vigie_model::{Alert, AlertState, Labels, topics};

/// One replica's configuration: Kafka at `brokers`, webhook `hook`.
fn replica_config(brokers: &str, peer: &str, hook: &Webhook) -> String {
    format!(
        "[bus]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\npartitions = 3\n\
         [alerting]\ngroup_wait = \"1s\"\ngroup_interval = \"2s\"\nrepeat_interval = \"1h\"\n\
         [alerting.ha]\nenabled = true\npeer = \"{peer}\"\nsession_timeout = \"6s\"\n\
         [[alerting.receivers]]\nname = \"oncall\"\n\
         [[alerting.receivers.webhook_configs]]\nurl = \"{}\"\n",
        hook.url()
    )
}

/// `HostDown` on `instance`, firing or resolved, as one kcat line
/// `fingerprint|json` (kcat `-K '|'` makes the fingerprint the key, as
/// the analyzer keys `vigie.alerts`).
fn alert_line(instance: &str, state: AlertState, now_ms: i64) -> String {
    let alert = Alert {
        labels: Labels::new()
            .with("alertname", "HostDown")
            .with("instance", instance)
            .with("severity", "critical"),
        annotations: Labels::new().with("summary", format!("{instance} is down")),
        state,
        active_at_ms: now_ms - 60_000,
        fired_at_ms: Some(now_ms - 30_000),
        resolved_at_ms: (state == AlertState::Resolved).then_some(now_ms),
        value: 1.0,
        generator_url: String::new(),
    };
    let json = vigie_model::codec::encode_alert(&alert).expect("encode");
    format!(
        "{}|{}\n",
        alert.fingerprint(),
        String::from_utf8(json).expect("utf8")
    )
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("ms fit i64")
}

/// A metric of `vigie`'s `/metrics` (the first sample whose line starts
/// with `prefix`), or `None` when absent or unreachable.
async fn metric(vigie: &Vigie, prefix: &str) -> Option<f64> {
    metric_value(&vigie.addr.to_string(), prefix).await
}

async fn leads(vigie: &Vigie) -> bool {
    metric(vigie, "vigie_alerting_leader ").await == Some(1.0)
}

/// The notifications for group `HostDown` with `status`.
fn notified(hook: &Webhook, status: &str) -> Vec<Value> {
    hook.with_status(status, "HostDown")
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_page_once_and_the_standby_takes_over_after_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(free_port(), dir.path().join("tansu.db"));
    let brokers = broker.brokers();
    let hook = Webhook::start().await;

    let start = |peer: &'static str| {
        let config = replica_config(&brokers, peer, &hook);
        async move {
            let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
            Vigie::start_in(dir, &config, "groups: []\n", &["--roles", "alert"]).await
        }
    };
    let a = start("a").await;
    let b = start("b").await;
    // Exactly one of them is elected.
    // Exactly one of them is elected, and stays so once both are in the
    // group (the second to join may take the lead in the rebalance).
    let mut stable = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut leader_is_a = false;
    while stable < 20 {
        let (la, lb) = (leads(&a).await, leads(&b).await);
        if la ^ lb && (stable == 0 || la == leader_is_a) {
            leader_is_a = la;
            stable += 1;
        } else {
            stable = 0;
        }
        assert!(
            Instant::now() < deadline,
            "no single leader: a {la}, b {lb}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (mut leader, standby) = if leader_is_a { (a, b) } else { (b, a) };
    assert!(
        standby.log().contains("stands by"),
        "the standby says so:\n{}",
        standby.log()
    );

    // Six alerts of one group, spread over the three partitions.
    let instances: Vec<String> = (1..=6).map(|i| format!("hv-{i}:9100")).collect();
    let firing: String = instances
        .iter()
        .map(|i| alert_line(i, AlertState::Firing, now_ms()))
        .collect();
    kcat_produce(&brokers, topics::ALERTS, &["-K", "|"], &firing);
    wait_until(
        "the group is paged with all six alerts",
        Duration::from_secs(60),
        || async {
            notified(&hook, "firing")
                .last()
                .is_some_and(|n| n["alerts"].as_array().is_some_and(|a| a.len() == 6))
        },
    )
    .await;
    // Both replicas hold the group; give a second sender time to show up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pages = notified(&hook, "firing");
    let sets: Vec<usize> = pages
        .iter()
        .map(|n| n["alerts"].as_array().map_or(0, Vec::len))
        .collect();
    // Alerts may reach the group over two flushes (e.g. 4, then 6), but
    // no set of alerts is paged twice: one sender.
    let mut distinct = sets.clone();
    distinct.dedup();
    assert_eq!(distinct, sets, "a notification was repeated: {pages:#?}");
    assert_eq!(
        metric(&standby, "vigie_notifications_total").await,
        None,
        "the standby sent nothing:\n{}",
        standby.log()
    );
    let held = |v: &Vigie| {
        let url = format!("http://{}/api/v2/alerts", v.addr);
        async move {
            reqwest::get(url)
                .await
                .ok()?
                .json::<Vec<Value>>()
                .await
                .ok()
                .map(|a| a.len())
        }
    };
    assert_eq!(
        held(&standby).await,
        Some(6),
        "the standby holds every alert"
    );

    // The leader dies; the standby takes over after the session timeout,
    // knowing from the leader's log that the group was paged.
    let pages_before = notified(&hook, "firing").len();
    leader.crash();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !leads(&standby).await {
        assert!(
            Instant::now() < deadline,
            "the standby did not take over:\n{}",
            standby.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        notified(&hook, "firing").len(),
        pages_before,
        "the new leader paged the group again: {:#?}\n{}",
        notified(&hook, "firing"),
        standby.log()
    );

    // The alerts resolve: the new leader sends the resolution, once.
    let resolved: String = instances
        .iter()
        .map(|i| alert_line(i, AlertState::Resolved, now_ms()))
        .collect();
    kcat_produce(&brokers, topics::ALERTS, &["-K", "|"], &resolved);
    wait_until(
        "the resolution is sent",
        Duration::from_secs(60),
        || async { !notified(&hook, "resolved").is_empty() },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let resolutions = notified(&hook, "resolved");
    assert_eq!(resolutions.len(), 1, "{resolutions:#?}");
    // kcat spreads the six lines over three partitions: a group flush may
    // fall between two of them, and then (as in Alertmanager) a "firing"
    // notification carries the first resolved alerts and the resolution
    // the rest. Either way every alert is sent resolved exactly once.
    let since_takeover: Vec<Value> = notified(&hook, "firing")
        .into_iter()
        .skip(pages_before)
        .chain(resolutions.iter().cloned())
        .collect();
    let mut resolved_instances: Vec<String> = since_takeover
        .iter()
        .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["status"] == "resolved")
        .filter_map(|a| a["labels"]["instance"].as_str().map(str::to_string))
        .collect();
    resolved_instances.sort();
    let mut expected = instances.clone();
    expected.sort();
    assert_eq!(resolved_instances, expected, "{since_takeover:#?}");
    assert_eq!(
        metric(&standby, "vigie_notifications_total").await,
        Some(since_takeover.len() as f64)
    );
    drop(broker);
}
