//! The action audit log as SQL table `actions`, registered the way the
//! analyzer registers its tables (a `MemTable` per query, read afresh
//! from `<data_dir>/state/actions.jsonl`), and queried with DataFusion.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use vigie_alerting::actions::audit::schema;
use vigie_alerting::actions::{AuditLog, AuditRecord, Decision, audit_path, read_batch};

fn record(id: &str, target: &str, decision: Decision, reason: Option<&str>, t: i64) -> AuditRecord {
    AuditRecord {
        id: id.into(),
        time_ms: t,
        action: "evacuate".into(),
        target: target.into(),
        fingerprint: "0123456789abcdef".into(),
        decision,
        reason: reason.map(str::to_string),
        detail: None,
    }
}

#[tokio::test]
async fn the_audit_log_is_queryable_as_table_actions() {
    let data = tempfile::tempdir().expect("tmp");
    let path = audit_path(data.path());
    let log = AuditLog::open(path.clone()).expect("open");
    let t = 1_700_000_000_000;
    log.append(record("r1", "hv1", Decision::Ran, None, t));
    log.append(record("r1", "hv1", Decision::Succeeded, None, t + 1));
    log.append(record("r1", "hv1", Decision::Verified, None, t + 2));
    log.append(record(
        "r2",
        "hv2",
        Decision::Skipped,
        Some("cooldown"),
        t + 3,
    ));
    log.append(record(
        "r3",
        "hv3",
        Decision::Skipped,
        Some("blast_radius"),
        t + 4,
    ));

    // What the lead's registration does per query.
    let batch = read_batch(&path).expect("batch");
    assert_eq!(batch.schema(), schema());
    let ctx = SessionContext::new();
    let table = MemTable::try_new(schema(), vec![vec![batch]]).expect("table");
    ctx.register_table("actions", Arc::new(table))
        .expect("register");

    let rows = ctx
        .sql("SELECT reason, count(*) AS n FROM actions WHERE decision = 'skipped' GROUP BY reason ORDER BY reason")
        .await
        .expect("sql")
        .collect()
        .await
        .expect("collect");
    let reasons = rows[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("reasons");
    let counts = rows[0]
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("counts");
    assert_eq!(
        (
            reasons.value(0),
            counts.value(0),
            reasons.value(1),
            counts.value(1)
        ),
        ("blast_radius", 1, "cooldown", 1)
    );

    let story = ctx
        .sql("SELECT decision FROM actions WHERE id = 'r1' AND time >= to_timestamp_millis(1700000000000) ORDER BY time")
        .await
        .expect("sql")
        .collect()
        .await
        .expect("collect");
    let d = story[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("decisions");
    let d: Vec<&str> = d.iter().flatten().collect();
    assert_eq!(d, ["ran", "succeeded", "verified"]);

    // A missing log is an empty table, not an error.
    let empty = read_batch(&data.path().join("nope.jsonl")).expect("empty");
    assert_eq!(empty.num_rows(), 0);
}
