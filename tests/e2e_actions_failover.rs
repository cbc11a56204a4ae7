//! The failover story on the real binary (issue #8, item 7): a scraped
//! hypervisor's temperature rises, a rule fires, the `[[action]]` calls a
//! controller (a real axum server standing for the cloud API that
//! evacuates the hypervisor) once, with an HMAC-signed body; the
//! controller's effect brings the temperature down, the alert resolves
//! and the audit log shows ran → succeeded → verified. A forged
//! signature is rejected by the controller.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{Target, Vigie, Webhook, get_json, wait_for};
use serde_json::Value;
use vigie_alerting::actions::{SIGNATURE_HEADER, verify_signature};

const SECRET: &str = "evacuation-shared-secret";

const RULES: &str = r#"
groups:
  - name: hypervisors
    rules:
      - alert: HypervisorFailing
        expr: app_gauge > 80
        labels: {severity: critical}
        annotations:
          summary: "hypervisor temperature above 80"
"#;

/// The cloud API: evacuates the hypervisor named in a correctly signed
/// request, which (in this test) cools the target down.
#[derive(Clone)]
struct Controller {
    target: Target,
    evacuated: Arc<Mutex<Vec<Value>>>,
    rejected: Arc<Mutex<usize>>,
}

async fn evacuate(State(c): State<Controller>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !verify_signature(SECRET.as_bytes(), &body, sig) {
        *c.rejected.lock().expect("lock") += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    c.evacuated.lock().expect("lock").push(json);
    c.target.set(20.0); // the workload left: the hypervisor cools down
    StatusCode::ACCEPTED
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evacuation_resolves_the_alert_and_is_verified() {
    let target = Target::start(0).await;
    target.set(40.0);
    let controller = Controller {
        target: target.clone(),
        evacuated: Arc::default(),
        rejected: Arc::default(),
    };
    let app = Router::new()
        .route("/evacuate", post(evacuate))
        .with_state(controller.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let controller_url = format!("http://{}/evacuate", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let hook = Webhook::start().await;

    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    std::fs::write(dir.path().join("action.key"), format!("{SECRET}\n")).expect("secret");
    let config = format!(
        "[[scrape]]\njob = \"hypervisor\"\ntargets = [\"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         [alerting]\ngroup_wait = \"1s\"\ngroup_interval = \"1s\"\n\
         [[alerting.receivers]]\nname = \"ops\"\n\
         [[alerting.receivers.webhook_configs]]\nurl = \"{}\"\n\
         [[action]]\nname = \"evacuate\"\n\
         matchers = '{{alertname=\"HypervisorFailing\", severity=\"critical\"}}'\n\
         url = \"{controller_url}\"\nsecret_file = \"action.key\"\ntimeout = \"5s\"\nretries = 1\n\
         cooldown = \"1h\"\nrate_limit = {{ max = 3, per = \"1h\" }}\n\
         blast_radius = {{ max_targets = 2, window = \"10m\" }}\nverify_within = \"2m\"\n",
        target.addr,
        hook.url()
    );
    let vigie = Vigie::start_in(dir, &config, RULES, &[]).await;
    wait_for("a few scrapes", Duration::from_secs(60), || async {
        (target.scrapes() >= 2).then_some(())
    })
    .await;

    target.set(95.0); // the hypervisor overheats
    let actions = format!("http://{}/api/v1/actions", vigie.addr);
    // "verified" and "resolved" are written one after the other: wait for
    // the last of the story, so that the audit log below holds all of it.
    let id = wait_for(
        "the action to be verified and resolved",
        Duration::from_secs(90),
        || {
            let actions = actions.clone();
            async move {
                let listed = get_json(&actions).await?;
                listed["recent"]
                    .as_array()?
                    .iter()
                    .find(|r| r["decision"] == "resolved")
                    .and_then(|r| r["id"].as_str())
                    .map(str::to_string)
            }
        },
    )
    .await;

    let evacuated = controller.evacuated.lock().expect("lock").clone();
    assert_eq!(
        evacuated.len(),
        1,
        "one evacuation: {evacuated:?}\n{}",
        vigie.log()
    );
    assert_eq!(evacuated[0]["target"], target.addr.to_string());
    assert_eq!(
        evacuated[0]["alerts"][0]["labels"]["alertname"],
        "HypervisorFailing"
    );

    // The audit log on disk tells the story, in order, under one run id.
    let text = std::fs::read_to_string(vigie.dir.path().join("vigie-data/state/actions.jsonl"))
        .expect("audit log");
    let story: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["id"] == id.as_str())
        .filter_map(|r| r["decision"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        story,
        ["ran", "succeeded", "verified", "resolved"],
        "{text}"
    );
    // The same story through SQL table `actions`.
    let sql = vigie
        .sql(&format!(
            "SELECT decision FROM actions WHERE id = '{id}' ORDER BY time"
        ))
        .await;
    let decisions: Vec<&str> = sql["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r[0].as_str())
        .collect();
    // (Two decisions may share a millisecond: compare as sets.)
    let (mut decisions, mut want) = (decisions, story.clone());
    decisions.sort_unstable();
    want.sort_unstable();
    assert_eq!(decisions, want, "{sql}");

    // Nobody was paged about the action (no escalation alert).
    let escalations: Vec<Value> = hook
        .received
        .lock()
        .expect("lock")
        .iter()
        .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| !a["labels"]["vigie_action"].is_null())
        .collect();
    assert!(escalations.is_empty(), "{escalations:?}");

    // A forged request (right body, wrong key) is refused by the controller.
    let body = serde_json::to_vec(&evacuated[0]).expect("body");
    let forged = vigie_alerting::actions::sign(b"not-the-secret", &body);
    let refused = reqwest::Client::new()
        .post(&controller_url)
        .header(SIGNATURE_HEADER, forged)
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 401);
    assert_eq!(*controller.rejected.lock().expect("lock"), 1);
    assert_eq!(controller.evacuated.lock().expect("lock").len(), 1);
}

async fn refuse() -> StatusCode {
    StatusCode::SERVICE_UNAVAILABLE
}

/// A failed action pages a human: the escalation alert goes through the
/// dispatcher to the receiver of the original alert's route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_action_pages_the_routes_receiver() {
    let target = Target::start(0).await;
    target.set(95.0);
    let app = Router::new().route("/evacuate", post(refuse));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let controller_url = format!("http://{}/evacuate", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let hook = Webhook::start().await;
    let config = format!(
        "[[scrape]]\njob = \"hypervisor\"\ntargets = [\"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         [alerting]\ngroup_wait = \"1s\"\ngroup_interval = \"1s\"\n\
         [[alerting.receivers]]\nname = \"ops\"\n\
         [[alerting.receivers.webhook_configs]]\nurl = \"{}\"\n\
         [[action]]\nname = \"evacuate\"\nmatchers = '{{alertname=\"HypervisorFailing\"}}'\n\
         url = \"{controller_url}\"\nretries = 0\n",
        target.addr,
        hook.url()
    );
    let vigie = Vigie::start(&config, RULES).await;
    let page = wait_for("the page", Duration::from_secs(60), || async {
        hook.received
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
            .find(|a| a["labels"]["vigie_action"] == "evacuate")
    })
    .await;
    assert_eq!(page["labels"]["vigie_escalation"], "failed", "{page}");
    assert_eq!(page["labels"]["alertname"], "HypervisorFailing");
    assert_eq!(page["status"], "firing", "{page}\n{}", vigie.log());
}
