//! End to end on the embedded (in-process) bus: real `vigie` binary, real
//! HTTP target, real webhook receiver, real SMTP server.

mod common;

use std::time::Duration;

use common::{GAUGE_RULES, Mode, Smtp, Target, Vigie, Webhook, wait_for};

fn scrape_job(job: &str, target: &Target) -> String {
    format!(
        "[[scrape]]\njob = \"{job}\"\ntargets = [\"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
        target.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauge_jump_fires_pages_and_resolves() {
    let target = Target::start(0).await;
    let hook = Webhook::start().await;
    let smtp = Smtp::start();
    let config = format!(
        "{}[alerting]\ngroup_wait = \"1s\"\ngroup_interval = \"2s\"\nexternal_url = \"http://vigie.test\"\n\
         [[alerting.receivers]]\nname = \"ops\"\n\
         [[alerting.receivers.webhook_configs]]\nurl = \"{}\"\n\
         [[alerting.receivers.email_configs]]\nto = [\"oncall@example.com\"]\nfrom = \"vigie@example.com\"\nsmarthost = \"127.0.0.1:{}\"\nrequire_tls = false\nsend_resolved = true\n",
        scrape_job("app", &target),
        hook.url(),
        smtp.port
    );
    let vigie = Vigie::start(&config, GAUGE_RULES).await;

    // A quiet baseline, long enough for the detector to warm up.
    wait_for("12 baseline scrapes", Duration::from_secs(60), || async {
        (target.scrapes() >= 12).then_some(())
    })
    .await;
    target.set(500.0);

    let firing = wait_for("firing webhook", Duration::from_secs(60), || async {
        hook.with_status("firing", "GaugeHigh").into_iter().next()
    })
    .await;
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["receiver"], "ops");
    assert_eq!(firing["externalURL"], "http://vigie.test");
    assert_eq!(firing["commonLabels"]["severity"], "page");
    let alert = &firing["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "GaugeHigh");
    assert_eq!(alert["labels"]["job"], "app");
    assert_eq!(alert["labels"]["instance"], target.addr.to_string());
    assert_eq!(alert["labels"]["zone"], "a");
    assert_eq!(
        alert["annotations"]["summary"],
        format!("gauge on {} is 500", target.addr)
    );
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert!(alert["fingerprint"].as_str().is_some_and(|f| f.len() == 16));
    assert!(
        firing["groupKey"]
            .as_str()
            .is_some_and(|k| k.contains("GaugeHigh"))
    );

    // The Prometheus-shaped alert list shows it firing.
    let alerts: serde_json::Value = reqwest::get(format!("http://{}/api/v1/alerts", vigie.addr))
        .await
        .expect("alerts")
        .json()
        .await
        .expect("json");
    assert_eq!(alerts["status"], "success");
    assert_eq!(alerts["data"]["alerts"][0]["state"], "firing");

    // The email page arrives too.
    let mail = wait_for("email", Duration::from_secs(30), || async {
        smtp.messages()
            .into_iter()
            .find(|m| m.contains("GaugeHigh"))
    })
    .await;
    assert!(mail.contains("Subject: [FIRING:1] GaugeHigh"), "{mail}");
    assert!(mail.contains("oncall@example.com"), "{mail}");

    // The jump was scored as an anomaly, and stored as a series.
    let score = vigie
        .sql("SELECT max(value) FROM samples WHERE metric = 'vigie_anomaly_score' AND labels['for'] = 'app_gauge'")
        .await;
    let max = score["rows"][0][0].as_f64().expect("a score");
    assert!(max > 0.99, "jump scored only {max}");

    target.set(1.0);
    let resolved = wait_for("resolved webhook", Duration::from_secs(60), || async {
        hook.with_status("resolved", "GaugeHigh").into_iter().next()
    })
    .await;
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        hook.with_status("firing", "GaugeHigh").len(),
        1,
        "paged more than once for one firing"
    );
    let metrics = vigie.metrics().await;
    assert!(
        metrics.contains("vigie_notifications_total{integration=\"webhook\",receiver=\"ops\"}"),
        "{metrics}"
    );
    // Every delivery is in SQL table `notifications`: the firing page and
    // the resolution, by webhook and by email (Vigie's receivers send
    // resolutions by default).
    let want = [
        "email/firing",
        "email/resolved",
        "webhook/firing",
        "webhook/resolved",
    ];
    let rows = wait_for("deliveries in SQL", Duration::from_secs(30), || async {
        let sent = vigie
            .sql("SELECT integration, group_status, count(*) AS n FROM notifications WHERE status = 'sent' GROUP BY 1, 2 ORDER BY 1, 2")
            .await;
        let rows: Vec<String> = sent["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| format!("{}/{}/{}", r[0].as_str().unwrap_or("?"), r[1].as_str().unwrap_or("?"), r[2]))
            .collect();
        (rows.len() >= want.len()).then_some(rows)
    })
    .await;
    let want: Vec<String> = want.iter().map(|w| format!("{w}/1")).collect();
    assert_eq!(rows, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scraped_sample_is_queryable() {
    const SCRAPES: usize = 8;
    const PER_SCRAPE: usize = 6; // app_gauge + 5 extra
    let target = Target::start(PER_SCRAPE - 1).await;
    *target.max_scrapes.lock().expect("lock") = Some(SCRAPES);
    let config = format!(
        "{}[analyzer]\nflush_interval = \"3s\"\n",
        scrape_job("noloss", &target)
    );
    let vigie = Vigie::start(&config, "groups: []\n").await;
    wait_for("all scrapes served", Duration::from_secs(60), || async {
        (target.scrapes() >= SCRAPES).then_some(())
    })
    .await;
    // Let the last batch travel and at least one flush happen; on a slow
    // machine, until every sample and the first staleness marker are in.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let count_stored = || async {
        let stored = vigie
            .count(
                "SELECT count(*) FROM samples WHERE labels['job'] = 'noloss' AND metric LIKE 'app_%' AND NOT isnan(value)",
            )
            .await;
        // When the target went away (404), Vigie wrote Prometheus'
        // staleness markers for its series, which `stored` leaves out.
        let markers = vigie
            .count("SELECT count(*) FROM samples WHERE labels['job'] = 'noloss' AND metric = 'app_gauge' AND isnan(value)")
            .await;
        (stored, markers)
    };
    let expected = (SCRAPES * PER_SCRAPE) as i64;
    let (stored, markers) = wait_for(
        "every sample and a staleness marker stored",
        Duration::from_secs(30),
        || async {
            let (stored, markers) = count_stored().await;
            (stored >= expected && markers >= 1).then_some((stored, markers))
        },
    )
    .await;
    assert_eq!(stored, expected);
    assert!(
        markers >= 1,
        "no staleness marker after the target went away"
    );
    let ups = vigie
        .count("SELECT count(*) FROM samples WHERE metric = 'up' AND labels['job'] = 'noloss' AND value = 1")
        .await;
    assert_eq!(ups, SCRAPES as i64);
    let files = std::fs::read_dir(vigie.dir.path().join("vigie-data/samples"))
        .expect("samples dir")
        .count();
    assert!(files >= 1, "nothing flushed to parquet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_target_gives_up_zero_and_spares_others() {
    let good = Target::start(0).await;
    let bad = Target::start(0).await;
    bad.set_mode(Mode::Garbage);
    let config = format!("{}{}", scrape_job("good", &good), scrape_job("bad", &bad));
    let vigie = Vigie::start(&config, "groups: []\n").await;
    wait_for(
        "scrapes of both targets",
        Duration::from_secs(30),
        || async {
            let n = vigie
                .count("SELECT count(*) FROM samples WHERE metric = 'up' AND labels['job'] = 'bad'")
                .await;
            // Stored, not merely served: the good target's third scrape
            // may still be on its way to the head.
            let good_n = vigie
                .count("SELECT count(*) FROM samples WHERE metric = 'app_gauge' AND labels['job'] = 'good'")
                .await;
            (n >= 3 && good_n >= 3).then_some(())
        },
    )
    .await;
    let bad_up = vigie
        .count("SELECT count(*) FROM samples WHERE metric = 'up' AND labels['job'] = 'bad' AND value <> 0")
        .await;
    assert_eq!(bad_up, 0, "a garbage target must have up == 0");
    let bad_rows = vigie
        .count("SELECT count(*) FROM samples WHERE labels['job'] = 'bad' AND metric NOT LIKE 'scrape_%' AND metric <> 'up'")
        .await;
    assert_eq!(bad_rows, 0, "nothing of a garbage body is stored");
    let good_up = vigie
        .count("SELECT count(*) FROM samples WHERE metric = 'up' AND labels['job'] = 'good' AND value = 1")
        .await;
    assert!(good_up >= 3);
    let good_gauge = vigie
        .count("SELECT count(*) FROM samples WHERE metric = 'app_gauge' AND labels['job'] = 'good'")
        .await;
    assert!(good_gauge >= 3);
    let metrics = vigie.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("vigie_scrape_errors_total{job=\"bad\",reason=\"parse\"}")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigie_sql_prints_a_table_json_and_errors() {
    let vigie = Vigie::start("", "groups: []\n").await;
    let url = format!("http://{}", vigie.addr);
    let run = |args: Vec<String>| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigie"))
            .args(args)
            .output()
            .expect("run vigie sql");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, table, err) = run(vec![
        "sql".into(),
        "SELECT 1 AS one, 'x' AS two".into(),
        "--url".into(),
        url.clone(),
    ]);
    assert!(ok, "{err}");
    assert!(table.starts_with("one | two"), "{table}");
    assert!(table.contains("(1 rows)"), "{table}");
    let (ok, json, _) = run(vec![
        "sql".into(),
        "SELECT 1 AS one".into(),
        "--json".into(),
        "--url".into(),
        url.clone(),
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("json output");
    assert_eq!(v["columns"][0], "one");
    assert_eq!(v["rows"][0][0], 1);
    let (ok, _, err) = run(vec!["sql".into(), "SELEC".into(), "--url".into(), url]);
    assert!(!ok, "bad SQL must fail");
    assert!(err.contains("error"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sql_is_a_400_with_a_reason() {
    let vigie = Vigie::start("", "groups: []\n").await;
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/sql", vigie.addr))
        .json(&serde_json::json!({"query": "SELEC nonsense"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["status"], "error");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/sql", vigie.addr))
        .body("not json")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_reload_on_post_and_sighup_and_survive_a_broken_file() {
    let vigie = Vigie::start("", GAUGE_RULES).await;
    let rules = vigie.dir.path().join("rules.yml");
    let names = || async {
        let v: serde_json::Value = reqwest::get(format!("http://{}/api/v1/rules", vigie.addr))
            .await
            .expect("rules")
            .json()
            .await
            .expect("json");
        v["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert_eq!(names().await, ["GaugeHigh"]);
    let more = format!("{GAUGE_RULES}      - alert: GaugeLow\n        expr: app_gauge < 0\n");
    std::fs::write(&rules, more).expect("write");
    let r = reqwest::Client::new()
        .post(format!("http://{}/-/reload", vigie.addr))
        .send()
        .await
        .expect("reload");
    assert!(r.status().is_success());
    assert_eq!(names().await, ["GaugeHigh", "GaugeLow"]);

    std::fs::write(&rules, "groups: [ broken").expect("write");
    let r = reqwest::Client::new()
        .post(format!("http://{}/-/reload", vigie.addr))
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 500, "a broken file is refused");
    assert_eq!(
        names().await,
        ["GaugeHigh", "GaugeLow"],
        "old rules keep running"
    );

    std::fs::write(&rules, GAUGE_RULES).expect("write");
    vigie.signal("HUP");
    wait_for("SIGHUP reload", Duration::from_secs(10), || async {
        (names().await == ["GaugeHigh"]).then_some(())
    })
    .await;
}
