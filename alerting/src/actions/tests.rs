//! Guardrail tests against a real HTTP controller (axum on a loopback port).

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::Semaphore;
use vigie_bus::Subscriber;
use vigie_bus::memory::MemoryBus;
use vigie_model::{Alert, AlertState, Labels};

use super::*;

const SECRET: &str = "s3cret-key";

#[derive(Clone)]
struct Controller {
    /// Bodies received, with whether their signature verified.
    calls: Arc<Mutex<Vec<(serde_json::Value, bool)>>>,
    gate: Arc<Semaphore>,
    status: Arc<AtomicU16>,
}

impl Controller {
    fn calls(&self) -> Vec<(serde_json::Value, bool)> {
        self.calls.lock().expect("calls lock").clone()
    }
}

async fn handle(State(c): State<Controller>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let valid = verify_signature(SECRET.as_bytes(), &body, sig);
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    c.calls.lock().expect("calls lock").push((json, valid));
    if !valid {
        return StatusCode::UNAUTHORIZED;
    }
    let permit = c.gate.acquire().await.expect("gate open");
    permit.forget();
    StatusCode::from_u16(c.status.load(Ordering::SeqCst)).expect("status")
}

/// A controller on a loopback port; its URL.
async fn controller(permits: usize) -> (Controller, String) {
    let c = Controller {
        calls: Arc::default(),
        gate: Arc::new(Semaphore::new(permits)),
        status: Arc::new(AtomicU16::new(200)),
    };
    let app = Router::new()
        .route("/evacuate", post(handle))
        .with_state(c.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (c, format!("http://{addr}/evacuate"))
}

fn secret_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let p = dir.path().join("secret");
    std::fs::write(&p, format!("{SECRET}\n")).expect("write secret");
    p
}

fn action(url: &str, dir: &tempfile::TempDir) -> ActionConfig {
    ActionConfig {
        name: "evacuate".into(),
        matchers: r#"{alertname="HypervisorFailing", severity="critical"}"#.into(),
        url: url.into(),
        secret_file: Some(secret_file(dir)),
        timeout: Duration::from_secs(5),
        retries: 0,
        max_concurrent: 0,
        ..ActionConfig::default()
    }
}

fn alert(instance: &str, state: AlertState) -> Alert {
    Alert {
        labels: Labels::new()
            .with("alertname", "HypervisorFailing")
            .with("severity", "critical")
            .with("instance", instance),
        annotations: Labels::new(),
        state,
        active_at_ms: 1,
        fired_at_ms: Some(2),
        resolved_at_ms: (state == AlertState::Resolved).then_some(3),
        value: 90.0,
        generator_url: String::new(),
    }
}

fn decisions(engine: &ActionEngine) -> Vec<(String, &'static str, Option<String>)> {
    engine
        .audit()
        .all()
        .into_iter()
        .map(|r| (r.target, r.decision.as_str(), r.reason))
        .collect()
}

fn engine(configs: &[ActionConfig]) -> Arc<ActionEngine> {
    ActionEngine::new(configs, AuditLog::in_memory(), None).expect("engine")
}

#[test]
fn signature_verifies_and_forgeries_do_not() {
    let body = br#"{"target":"hv1"}"#;
    let sig = sign(b"key", body);
    assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
    assert!(verify_signature(b"key", body, &sig));
    assert!(!verify_signature(b"other", body, &sig));
    assert!(!verify_signature(b"key", br#"{"target":"hv2"}"#, &sig));
    assert!(!verify_signature(b"key", body, "sha256=zz"));
    // RFC 4231 test case 2.
    assert_eq!(
        sign(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn config_problems_name_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = action("http://127.0.0.1:1/x", &dir);
    assert!(problems(std::slice::from_ref(&good)).is_empty());
    let bad = ActionConfig {
        matchers: "{alertname=~\"(\"}".into(),
        url: "ftp://x".into(),
        secret_file: Some(dir.path().join("missing")),
        rate_limit: Some(RateLimit {
            max: 0,
            per: Duration::from_secs(60),
        }),
        ..good.clone()
    };
    let keys: Vec<String> = problems(&[good, bad]).into_iter().map(|(k, _)| k).collect();
    for k in [
        "action[1].name",
        "action[1].matchers",
        "action[1].url",
        "action[1].secret_file",
        "action[1].rate_limit",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
    }
}

#[tokio::test]
async fn runs_a_signed_call_once_per_episode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctl, url) = controller(100).await;
    let e = engine(&[action(&url, &dir)]);
    e.observe(&alert("hv1", AlertState::Firing)).await;
    e.observe(&alert("hv1", AlertState::Firing)).await; // the re-send
    let mut other = alert("hv2", AlertState::Firing);
    other.labels.insert("severity", "warning"); // does not match
    e.observe(&other).await;
    e.wait_idle().await;
    let calls = ctl.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].1, "signature must verify");
    assert_eq!(calls[0].0["target"], "hv1");
    assert_eq!(calls[0].0["alerts"][0]["labels"]["instance"], "hv1");
    let d = decisions(&e);
    assert_eq!(
        d.iter().map(|x| x.1).collect::<Vec<_>>(),
        ["ran", "succeeded"]
    );
}

#[tokio::test]
async fn dry_run_records_and_does_not_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctl, url) = controller(100).await;
    let e = engine(&[ActionConfig {
        dry_run: true,
        ..action(&url, &dir)
    }]);
    e.observe(&alert("hv1", AlertState::Firing)).await;
    e.wait_idle().await;
    assert!(ctl.calls().is_empty());
    assert_eq!(decisions(&e), [("hv1".into(), "dry_run", None)]);
}

#[tokio::test]
async fn rate_limit_skips_runs_past_max() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctl, url) = controller(100).await;
    let e = engine(&[ActionConfig {
        rate_limit: Some(RateLimit {
            max: 2,
            per: Duration::from_secs(3600),
        }),
        ..action(&url, &dir)
    }]);
    for hv in ["hv1", "hv2", "hv3"] {
        e.observe(&alert(hv, AlertState::Firing)).await;
    }
    e.wait_idle().await;
    assert_eq!(ctl.calls().len(), 2);
    assert!(
        decisions(&e).contains(&("hv3".into(), "skipped", Some("rate_limit".into()))),
        "{:?}",
        decisions(&e)
    );
}

#[tokio::test]
async fn cooldown_is_per_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctl, url) = controller(100).await;
    let e = engine(&[ActionConfig {
        cooldown: Duration::from_secs(3600),
        ..action(&url, &dir)
    }]);
    e.observe(&alert("hv1", AlertState::Firing)).await;
    e.wait_idle().await;
    e.observe(&alert("hv1", AlertState::Resolved)).await;
    e.observe(&alert("hv1", AlertState::Firing)).await; // a new episode
    e.observe(&alert("hv2", AlertState::Firing)).await; // another target
    e.wait_idle().await;
    let targets: Vec<String> = ctl
        .calls()
        .iter()
        .map(|(b, _)| b["target"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(targets, ["hv1", "hv2"]);
    assert!(decisions(&e).contains(&("hv1".into(), "skipped", Some("cooldown".into()))));
}

#[tokio::test]
async fn max_concurrent_skips_while_calls_are_in_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctl, url) = controller(0).await; // calls block until released
    let e = engine(&[ActionConfig {
        max_concurrent: 1,
        ..action(&url, &dir)
    }]);
    e.observe(&alert("hv1", AlertState::Firing)).await;
    e.observe(&alert("hv2", AlertState::Firing)).await;
    ctl.gate.add_permits(10);
    e.wait_idle().await;
    e.observe(&alert("hv3", AlertState::Firing)).await; // room again
    e.wait_idle().await;
    assert_eq!(ctl.calls().len(), 2);
    let d = decisions(&e);
    assert!(
        d.contains(&("hv2".into(), "skipped", Some("max_concurrent".into()))),
        "{d:?}"
    );
    assert!(d.contains(&("hv3".into(), "succeeded", None)), "{d:?}");
}

#[tokio::test]
async fn blast_radius_stops_the_action_and_pages_a_human() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctl, url) = controller(100).await;
    let bus = MemoryBus::new(64);
    let mut pages = bus.subscribe(&[vigie_model::topics::ALERTS]);
    let e = ActionEngine::new(
        &[ActionConfig {
            blast_radius: Some(BlastRadius {
                max_targets: 2,
                window: Duration::from_secs(600),
            }),
            ..action(&url, &dir)
        }],
        AuditLog::in_memory(),
        Some(Arc::new(bus)),
    )
    .expect("engine");
    for hv in ["hv1", "hv2", "hv3", "hv4"] {
        e.observe(&alert(hv, AlertState::Firing)).await;
    }
    e.wait_idle().await;
    assert_eq!(ctl.calls().len(), 2);
    let d = decisions(&e);
    for hv in ["hv3", "hv4"] {
        assert!(
            d.contains(&(hv.into(), "skipped", Some("blast_radius".into()))),
            "{d:?}"
        );
        assert!(
            d.contains(&(hv.into(), "escalated", Some("blast_radius".into()))),
            "{d:?}"
        );
    }
    let page = pages.recv().await.expect("recv").expect("a page");
    let page = vigie_model::codec::decode_alert(&page.message.payload).expect("decode");
    assert_eq!(page.labels.get(ESCALATION_LABEL), Some("evacuate"));
    assert_eq!(page.labels.get("vigie_escalation"), Some("blast_radius"));
    assert_eq!(page.labels.get("instance"), Some("hv3"));
    assert_eq!(page.state, AlertState::Firing);
    // The engine ignores its own pages.
    e.observe(&page).await;
    assert_eq!(decisions(&e).len(), d.len());
}

#[tokio::test]
async fn approval_through_the_token_protected_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctl, url) = controller(100).await;
    let e = engine(&[ActionConfig {
        require_approval: true,
        ..action(&url, &dir)
    }]);
    let token = crate::ApiToken::new("tok").expect("token");
    let app = crate::protect(router(Arc::clone(&e)), Some(token));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();

    e.observe(&alert("hv1", AlertState::Firing)).await;
    e.observe(&alert("hv2", AlertState::Firing)).await;
    let listed: serde_json::Value = http
        .get(format!("{base}/api/v1/actions"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let pending = listed["pending"].as_array().expect("pending list");
    assert_eq!(pending.len(), 2, "{listed}");
    let id_of = |hv: &str| {
        pending
            .iter()
            .find(|p| p["target"] == hv)
            .and_then(|p| p["id"].as_str())
            .expect("pending id")
            .to_string()
    };
    let (id1, id2) = (id_of("hv1"), id_of("hv2"));
    assert!(ctl.calls().is_empty(), "nothing runs before approval");

    let unauth = http
        .post(format!("{base}/api/v1/actions/{id1}/approve"))
        .send()
        .await
        .expect("post");
    assert_eq!(unauth.status(), 401);
    let ok = http
        .post(format!("{base}/api/v1/actions/{id1}/approve"))
        .bearer_auth("tok")
        .body(r#"{"by":"alice"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status(), 200);
    let denied = http
        .post(format!("{base}/api/v1/actions/{id2}/deny"))
        .bearer_auth("tok")
        .send()
        .await
        .expect("post");
    assert_eq!(denied.status(), 200);
    let again = http
        .post(format!("{base}/api/v1/actions/{id1}/approve"))
        .bearer_auth("tok")
        .send()
        .await
        .expect("post");
    assert_eq!(again.status(), 404);
    e.wait_idle().await;
    let calls = ctl.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0["target"], "hv1");
    let d = decisions(&e);
    let of = |hv: &str| -> Vec<&str> { d.iter().filter(|x| x.0 == hv).map(|x| x.1).collect() };
    assert_eq!(
        of("hv1"),
        ["pending_approval", "approved", "ran", "succeeded"]
    );
    assert_eq!(of("hv2"), ["pending_approval", "denied"]);
    assert!(e.pending().is_empty());
}

#[tokio::test]
async fn verification_escalates_an_unresolved_alert_and_verifies_a_resolved_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ctl, url) = controller(100).await;
    let bus = MemoryBus::new(64);
    let mut pages = bus.subscribe(&[vigie_model::topics::ALERTS]);
    let e = ActionEngine::new(
        &[ActionConfig {
            verify_within: Some(Duration::from_secs(60)),
            ..action(&url, &dir)
        }],
        AuditLog::in_memory(),
        Some(Arc::new(bus)),
    )
    .expect("engine");
    e.observe(&alert("hv1", AlertState::Firing)).await;
    e.observe(&alert("hv2", AlertState::Firing)).await;
    e.wait_idle().await;
    assert_eq!(
        e.check_verifications(chrono::Utc::now().timestamp_millis())
            .await,
        0
    );
    e.observe(&alert("hv2", AlertState::Resolved)).await;
    let later = chrono::Utc::now().timestamp_millis() + 120_000;
    assert_eq!(e.check_verifications(later).await, 1);
    assert_eq!(e.check_verifications(later).await, 0, "escalated once");
    let d = decisions(&e);
    let of = |hv: &str| -> Vec<&str> { d.iter().filter(|x| x.0 == hv).map(|x| x.1).collect() };
    assert_eq!(of("hv2"), ["ran", "succeeded", "verified", "resolved"]);
    assert_eq!(of("hv1"), ["ran", "succeeded", "escalated"]);
    let page = pages.recv().await.expect("recv").expect("page");
    let page = vigie_model::codec::decode_alert(&page.message.payload).expect("decode");
    assert_eq!(
        (
            page.labels.get("instance"),
            page.labels.get("vigie_escalation"),
            page.state
        ),
        (Some("hv1"), Some("not_resolved"), AlertState::Firing)
    );
    // The page resolves with the alert.
    e.observe(&alert("hv1", AlertState::Resolved)).await;
    let resolved = pages.recv().await.expect("recv").expect("page");
    let resolved = vigie_model::codec::decode_alert(&resolved.message.payload).expect("decode");
    assert_eq!(resolved.state, AlertState::Resolved);
    assert_eq!(resolved.fingerprint(), page.fingerprint());
}

#[tokio::test]
async fn a_failed_call_is_retried_then_escalated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctl, url) = controller(100).await;
    ctl.status.store(503, Ordering::SeqCst);
    let e = engine(&[ActionConfig {
        retries: 1,
        ..action(&url, &dir)
    }]);
    e.observe(&alert("hv1", AlertState::Firing)).await;
    e.wait_idle().await;
    assert_eq!(ctl.calls().len(), 2, "one retry");
    let d: Vec<&str> = decisions(&e).iter().map(|x| x.1).collect();
    assert_eq!(d, ["ran", "failed", "escalated"]);
}

#[tokio::test]
async fn the_audit_log_survives_a_restart_and_reads_as_arrow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctl, url) = controller(100).await;
    let config = [ActionConfig {
        cooldown: Duration::from_secs(3600),
        rate_limit: Some(RateLimit {
            max: 2,
            per: Duration::from_secs(3600),
        }),
        ..action(&url, &dir)
    }];
    let path = audit_path(dir.path());
    {
        let e = ActionEngine::new(&config, AuditLog::open(path.clone()).expect("open"), None)
            .expect("engine");
        e.observe(&alert("hv1", AlertState::Firing)).await;
        e.wait_idle().await;
        e.observe(&alert("hv1", AlertState::Resolved)).await;
    }
    let e = ActionEngine::new(&config, AuditLog::open(path.clone()).expect("open"), None)
        .expect("engine");
    e.observe(&alert("hv1", AlertState::Firing)).await; // cooldown remembered
    e.observe(&alert("hv2", AlertState::Firing)).await; // second run of 2
    e.observe(&alert("hv3", AlertState::Firing)).await; // rate limit remembered
    e.wait_idle().await;
    assert_eq!(ctl.calls().len(), 2);
    let d = decisions(&e);
    assert!(
        d.contains(&("hv1".into(), "skipped", Some("cooldown".into()))),
        "{d:?}"
    );
    assert!(
        d.contains(&("hv3".into(), "skipped", Some("rate_limit".into()))),
        "{d:?}"
    );
    let text = std::fs::read_to_string(&path).expect("read log");
    assert_eq!(text.lines().count(), d.len());
    let batch = e.audit().record_batch().expect("batch");
    assert_eq!(batch.schema(), audit::schema());
    assert_eq!(batch.num_rows(), d.len());
    let col = batch
        .column_by_name("decision")
        .and_then(|c| c.as_any().downcast_ref::<arrow::array::StringArray>())
        .expect("decision column");
    assert_eq!(col.value(0), "ran");
    assert_eq!(col.value(1), "succeeded");
}

#[tokio::test]
async fn run_loop_reads_alerts_from_the_bus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctl, url) = controller(100).await;
    let bus = MemoryBus::new(64);
    let sub: Box<dyn Subscriber> = Box::new(bus.subscribe(&[vigie_model::topics::ALERTS]));
    let e = engine(&[action(&url, &dir)]);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(Arc::clone(&e).run(sub, stop.clone()));
    let a = alert("hv1", AlertState::Firing);
    let payload = vigie_model::codec::encode_alert(&a).expect("encode");
    vigie_bus::Publisher::publish(
        &bus,
        vigie_bus::Message::new(
            vigie_model::topics::ALERTS,
            a.fingerprint().into_bytes(),
            payload,
        ),
    )
    .await
    .expect("publish");
    for _ in 0..500 {
        if decisions(&e).len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    task.await.expect("run loop");
    assert_eq!(ctl.calls().len(), 1);
    assert_eq!(
        decisions(&e).iter().map(|x| x.1).collect::<Vec<_>>(),
        ["ran", "succeeded"]
    );
}

#[tokio::test]
async fn a_pending_approval_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctl, url) = controller(100).await;
    let config = [ActionConfig {
        require_approval: true,
        ..action(&url, &dir)
    }];
    let path = audit_path(dir.path());
    {
        let e = ActionEngine::new(&config, AuditLog::open(path.clone()).expect("open"), None)
            .expect("engine");
        e.observe(&alert("hv1", AlertState::Firing)).await;
        assert_eq!(e.pending().len(), 1);
    }
    let e = ActionEngine::new(&config, AuditLog::open(path).expect("open"), None).expect("engine");
    let pending = e.pending();
    assert_eq!(pending.len(), 1, "restored");
    let id = pending[0].id.clone();
    // Before the analyzer re-sends the alert, approval must wait.
    assert!(matches!(
        e.approve(&id, "alice").await,
        Err(ActionError::AlertUnknown(_))
    ));
    e.observe(&alert("hv1", AlertState::Firing)).await; // the re-send
    assert_eq!(e.pending().len(), 1, "the re-send does not ask again");
    e.approve(&id, "alice").await.expect("approve");
    e.wait_idle().await;
    assert_eq!(ctl.calls().len(), 1);
    let d: Vec<&str> = decisions(&e).iter().map(|x| x.1).collect();
    assert_eq!(d, ["pending_approval", "approved", "ran", "succeeded"]);
}
