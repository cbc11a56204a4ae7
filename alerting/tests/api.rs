//! The Alertmanager API v2 over a real HTTP server, with a real webhook
//! receiver behind the run loop.

mod common;

use std::time::Duration;

use common::webhook_server;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use vigie_alerting::{AlertingConfig, AlertingTask, ReceiverConfig, WebhookConfig};
use vigie_bus::memory::MemoryBus;
use vigie_model::topics;

struct Api {
    base: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<AlertingTask>,
    _bus: MemoryBus,
}

impl Api {
    /// Starts alerting with `receivers` (name, webhook URL) and silences
    /// persisted under `data_dir`, and serves its API on 127.0.0.1:0.
    async fn start(receivers: &[(&str, &str)], data_dir: Option<&std::path::Path>) -> Api {
        let config = AlertingConfig {
            group_wait: Duration::from_millis(200),
            group_interval: Duration::from_secs(1),
            receivers: receivers
                .iter()
                .map(|(name, url)| ReceiverConfig {
                    name: (*name).into(),
                    webhook_configs: vec![WebhookConfig {
                        url: (*url).into(),
                        send_resolved: true,
                        timeout: Duration::from_secs(5),
                        max_alerts: 0,
                        http_config: Default::default(),
                    }],
                    ..ReceiverConfig::default()
                })
                .collect(),
            ..AlertingConfig::default()
        };
        let bus = MemoryBus::new(16);
        let subscriber = bus.subscribe(&[topics::ALERTS]);
        let shutdown = CancellationToken::new();
        let (router, task) =
            vigie_alerting::start(config, data_dir, Box::new(subscriber), shutdown.clone())
                .expect("start");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        Api {
            base: format!("http://{addr}/api/v2"),
            client: reqwest::Client::new(),
            shutdown,
            task: Some(task),
            _bus: bus,
        }
    }

    async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("run");
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn delete(&self, path: &str) -> u16 {
        self.client
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16()
    }

    async fn silence(&self, name: &str, minutes: i64) -> String {
        let now = chrono::Utc::now();
        let (status, body) = self
            .post(
                "/silences",
                &json!({
                    "matchers": [{"name": "alertname", "value": name, "isRegex": false, "isEqual": true}],
                    "startsAt": now.to_rfc3339(),
                    "endsAt": (now + chrono::Duration::minutes(minutes)).to_rfc3339(),
                    "createdBy": "tester",
                    "comment": "maintenance",
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["silenceID"].as_str().expect("silenceID").to_string()
    }
}

fn alert(name: &str, instance: &str) -> Value {
    json!({
        "labels": {"alertname": name, "instance": instance, "severity": "page"},
        "annotations": {"summary": format!("{name} on {instance}")},
        "generatorURL": "http://prometheus.test/graph",
    })
}

fn names(alerts: &Value) -> Vec<String> {
    let mut out: Vec<String> = alerts
        .as_array()
        .expect("array")
        .iter()
        .map(|a| {
            format!(
                "{}/{}",
                a["labels"]["alertname"].as_str().unwrap_or(""),
                a["labels"]["instance"].as_str().unwrap_or("")
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn posted_alerts_are_listed_with_alertmanager_fields_and_filters() {
    let mut api = Api::start(&[("ops", "http://127.0.0.1:9/hook")], None).await;
    let (status, _) = api
        .post(
            "/alerts",
            &json!([
                alert("DiskFull", "db1"),
                alert("DiskFull", "db2"),
                alert("CpuHot", "web1")
            ]),
        )
        .await;
    assert_eq!(status, 200);

    let (status, all) = api.get("/alerts").await;
    assert_eq!(status, 200);
    assert_eq!(names(&all), ["CpuHot/web1", "DiskFull/db1", "DiskFull/db2"]);
    let a = &all.as_array().expect("array")[0];
    for key in [
        "annotations",
        "endsAt",
        "fingerprint",
        "receivers",
        "startsAt",
        "status",
        "updatedAt",
        "generatorURL",
        "labels",
    ] {
        assert!(a.get(key).is_some(), "gettableAlert lacks {key}: {a}");
    }
    assert_eq!(a["receivers"], json!([{"name": "ops"}]));
    assert_eq!(
        a["status"],
        json!({"inhibitedBy": [], "silencedBy": [], "state": "active"})
    );
    assert_eq!(a["generatorURL"], "http://prometheus.test/graph");
    assert_eq!(a["fingerprint"].as_str().map(str::len), Some(16));

    // Matchers in `filter`, repeated.
    let (_, disk) = api.get("/alerts?filter=alertname%3D%22DiskFull%22").await;
    assert_eq!(names(&disk), ["DiskFull/db1", "DiskFull/db2"]);
    let (_, one) = api
        .get("/alerts?filter=alertname%3DDiskFull&filter=instance%3D~%22db%5B2-9%5D%22")
        .await;
    assert_eq!(names(&one), ["DiskFull/db2"]);
    let (_, not_disk) = api.get("/alerts?filter=alertname!%3DDiskFull").await;
    assert_eq!(names(&not_disk), ["CpuHot/web1"]);
    // Receiver filter is an anchored regex.
    let (_, none) = api.get("/alerts?receiver=op").await;
    assert_eq!(names(&none), Vec::<String>::new());
    let (_, all_again) = api.get("/alerts?receiver=o.s").await;
    assert_eq!(all_again.as_array().map(Vec::len), Some(3));

    let (status, reason) = api.get("/alerts?filter=%3Dbad").await;
    assert_eq!(status, 400, "{reason}");
    assert!(reason.as_str().is_some_and(|r| !r.is_empty()), "{reason}");
    let (status, _) = api.get("/alerts?active=maybe").await;
    assert_eq!(status, 400);

    // endsAt in the past resolves: no longer listed.
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let mut resolved = alert("DiskFull", "db1");
    resolved["endsAt"] = json!(past);
    let (status, _) = api.post("/alerts", &json!([resolved])).await;
    assert_eq!(status, 200);
    let (_, after) = api.get("/alerts").await;
    assert_eq!(names(&after), ["CpuHot/web1", "DiskFull/db2"]);

    // Groups: one per group key and receiver.
    let (status, groups) = api.get("/alerts/groups").await;
    assert_eq!(status, 200);
    let groups = groups.as_array().expect("array");
    assert_eq!(groups.len(), 2, "{groups:?}");
    let disk = groups
        .iter()
        .find(|g| g["labels"] == json!({"alertname": "DiskFull"}))
        .expect("DiskFull group");
    assert_eq!(disk["receiver"], json!({"name": "ops"}));
    assert_eq!(disk["alerts"].as_array().map(Vec::len), Some(1));
    api.stop().await;
}

#[tokio::test]
async fn invalid_posts_are_rejected_with_a_reason() {
    let mut api = Api::start(&[("ops", "http://127.0.0.1:9/hook")], None).await;
    let r = api
        .client
        .post(format!("{}/alerts", api.base))
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 400);

    // One bad alert among good ones: 400, the good one is still taken.
    let mut backwards = alert("B", "x");
    backwards["startsAt"] = json!("2030-01-01T00:00:00Z");
    backwards["endsAt"] = json!("2029-01-01T00:00:00Z");
    let (status, reason) = api
        .post(
            "/alerts",
            &json!([{"labels": {}}, {"labels": {"bad-name": "x"}}, backwards, alert("Good", "x")]),
        )
        .await;
    assert_eq!(status, 400);
    let reason = reason.as_str().unwrap_or("").to_string();
    assert!(reason.contains("at least one label"), "{reason}");
    assert!(reason.contains("bad-name"), "{reason}");
    assert!(
        reason.contains("start time must be before end time"),
        "{reason}"
    );
    let (_, all) = api.get("/alerts").await;
    assert_eq!(names(&all), ["Good/x"]);

    let now = chrono::Utc::now();
    for (body, why) in [
        (
            json!({"matchers": [], "startsAt": now, "endsAt": now + chrono::Duration::hours(1),
                "createdBy": "a", "comment": "c"}),
            "at least one matcher",
        ),
        (
            json!({"matchers": [{"name": "a", "value": "(", "isRegex": true}], "startsAt": now,
                "endsAt": now + chrono::Duration::hours(1), "createdBy": "a", "comment": "c"}),
            "regular expression",
        ),
        (
            json!({"matchers": [{"name": "a", "value": "b", "isRegex": false}],
                "startsAt": now - chrono::Duration::hours(2),
                "endsAt": now - chrono::Duration::hours(1), "createdBy": "a", "comment": "c"}),
            "in the past",
        ),
        (json!({"matchers": "nope"}), "postable silence"),
    ] {
        let (status, reason) = api.post("/silences", &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            reason.as_str().is_some_and(|r| r.contains(why)),
            "{why}: {reason}"
        );
    }
    let (status, _) = api
        .post(
            "/silences",
            &json!({"id": "00000000-0000-4000-8000-000000000000",
                    "matchers": [{"name": "a", "value": "b", "isRegex": false}],
                    "startsAt": now, "endsAt": now + chrono::Duration::hours(1),
                    "createdBy": "a", "comment": "c"}),
        )
        .await;
    assert_eq!(status, 404, "update of an unknown silence");
    let (status, _) = api.get("/silence/unknown").await;
    assert_eq!(status, 404);
    assert_eq!(api.delete("/silence/unknown").await, 404);
    let (_, silences) = api.get("/silences").await;
    assert_eq!(silences, json!([]));
    api.stop().await;
}

#[tokio::test]
async fn silenced_alert_is_suppressed_and_not_notified_until_expired() {
    let (url, rec) = webhook_server(0).await;
    let mut api = Api::start(&[("ops", &url)], None).await;
    let id = api.silence("Muted", 60).await;
    assert_eq!(id.len(), 36, "{id}");

    let (status, s) = api.get(&format!("/silence/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["status"]["state"], "active");
    assert_eq!(s["createdBy"], "tester");
    assert_eq!(s["comment"], "maintenance");
    assert_eq!(
        s["matchers"],
        json!([{"name": "alertname", "value": "Muted", "isRegex": false, "isEqual": true}])
    );
    for key in ["updatedAt", "startsAt", "endsAt"] {
        assert!(s[key].is_string(), "{key}: {s}");
    }

    let (status, _) = api
        .post("/alerts", &json!([alert("Muted", "a"), alert("Loud", "a")]))
        .await;
    assert_eq!(status, 200);

    let (_, all) = api.get("/alerts").await;
    let muted = all
        .as_array()
        .expect("array")
        .iter()
        .find(|a| a["labels"]["alertname"] == "Muted")
        .expect("muted alert listed");
    assert_eq!(muted["status"]["state"], "suppressed");
    assert_eq!(muted["status"]["silencedBy"], json!([id]));
    // amtool's default query: active only.
    let (_, active) = api
        .get("/alerts?active=true&silenced=false&inhibited=false&unprocessed=false")
        .await;
    assert_eq!(names(&active), ["Loud/a"]);
    let (_, silenced) = api
        .get("/alerts?active=false&silenced=true&inhibited=false&unprocessed=false")
        .await;
    assert_eq!(names(&silenced), ["Muted/a"]);

    // The webhook hears about Loud, never Muted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let got = rec.accepted.lock().expect("lock").clone();
        if got.iter().any(|p| p["groupLabels"]["alertname"] == "Loud") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Loud never notified"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let muted_payloads = rec
        .accepted
        .lock()
        .expect("lock")
        .iter()
        .filter(|p| {
            // Notified: in a payload's alerts. (An incident's chain may
            // still name it as context for Loud, which shares its host.)
            p["alerts"]
                .as_array()
                .is_some_and(|alerts| alerts.iter().any(|a| a["labels"]["alertname"] == "Muted"))
        })
        .count();
    assert_eq!(muted_payloads, 0, "a silenced alert was notified");

    // Silences listing and filter on the silence's matchers.
    let (_, list) = api.get("/silences").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let (_, filtered) = api.get("/silences?filter=alertname%3DOther").await;
    assert_eq!(filtered, json!([]));

    // Expire: the alert is active again and notified at the next flush.
    assert_eq!(api.delete(&format!("/silence/{id}")).await, 200);
    let (_, s) = api.get(&format!("/silence/{id}")).await;
    assert_eq!(s["status"]["state"], "expired");
    assert_eq!(api.delete(&format!("/silence/{id}")).await, 400, "twice");
    let (_, all) = api.get("/alerts?filter=alertname%3DMuted").await;
    assert_eq!(all[0]["status"]["state"], "active");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let got = rec.accepted.lock().expect("lock").clone();
        if got.iter().any(|p| p["groupLabels"]["alertname"] == "Muted") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Muted not notified after its silence expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.stop().await;
}

#[tokio::test]
async fn silence_update_status_and_receivers() {
    let mut api = Api::start(
        &[
            ("ops", "http://127.0.0.1:9/a"),
            ("mail", "http://127.0.0.1:9/b"),
        ],
        None,
    )
    .await;
    let id = api.silence("X", 30).await;
    let (_, before) = api.get(&format!("/silence/{id}")).await;
    // Update in place: same start and matchers, longer, new comment.
    let mut update = before.clone();
    update["endsAt"] = json!((chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339());
    update["comment"] = json!("longer");
    let (status, body) = api.post("/silences", &update).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["silenceID"], id.as_str());
    let (_, after) = api.get(&format!("/silence/{id}")).await;
    assert_eq!(after["comment"], "longer");
    assert_ne!(after["endsAt"], before["endsAt"]);

    let (status, st) = api.get("/status").await;
    assert_eq!(status, 200);
    assert_eq!(st["cluster"]["status"], "disabled");
    assert_eq!(st["config"]["original"], "");
    assert!(st["uptime"].is_string());
    assert!(
        st["versionInfo"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("vigie-")),
        "{st}"
    );
    let (_, receivers) = api.get("/receivers").await;
    assert_eq!(receivers, json!([{"name": "ops"}, {"name": "mail"}]));
    api.stop().await;
}

#[tokio::test]
async fn silences_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut api = Api::start(&[("ops", "http://127.0.0.1:9/a")], Some(dir.path())).await;
    let kept = api.silence("Kept", 60).await;
    let expired = api.silence("Gone", 60).await;
    assert_eq!(api.delete(&format!("/silence/{expired}")).await, 200);
    api.stop().await;
    assert!(dir.path().join("alerting/silences.json").exists());

    let mut again = Api::start(&[("ops", "http://127.0.0.1:9/a")], Some(dir.path())).await;
    let (status, s) = again.get(&format!("/silence/{kept}")).await;
    assert_eq!(status, 200);
    assert_eq!(s["status"]["state"], "active");
    let (_, e) = again.get(&format!("/silence/{expired}")).await;
    assert_eq!(
        e["status"]["state"], "expired",
        "expired kept for retention"
    );
    let (_, alerts) = again.post("/alerts", &json!([alert("Kept", "h")])).await;
    assert_eq!(alerts, Value::Null);
    let (_, listed) = again.get("/alerts").await;
    assert_eq!(listed[0]["status"]["silencedBy"], json!([kept]));
    again.stop().await;
}
