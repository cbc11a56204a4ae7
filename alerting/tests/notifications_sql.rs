//! The notification history as SQL table `notifications`, registered the
//! way the analyzer registers its tables (a `MemTable` per query), and
//! queried with DataFusion.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use vigie_alerting::history::{History, Record, RecordStatus, schema};
use vigie_alerting::{GroupStatus, Notification, NotifiedAlert};
use vigie_model::Labels;

fn notification(group: &str, fingerprint: &str) -> Notification {
    Notification {
        receiver: "ops".into(),
        group_key: group.into(),
        status: GroupStatus::Firing,
        group_labels: Labels::new(),
        alerts: vec![NotifiedAlert {
            status: GroupStatus::Firing,
            labels: Labels::new().with("alertname", "DiskFull"),
            annotations: Labels::new(),
            starts_at_ms: 1_700_000_000_000,
            ends_at_ms: None,
            generator_url: String::new(),
            fingerprint: fingerprint.into(),
        }],
        external_url: String::new(),
        notified_at_ms: 1_700_000_000_000,
        incident: None,
    }
}

#[tokio::test]
async fn history_is_queryable_as_table_notifications() {
    let data = tempfile::tempdir().expect("tmp");
    let history = History::open(data.path());
    let t = 1_700_000_000_000;
    for (i, (group, fp, status)) in [
        ("g1", "aaaaaaaaaaaaaaaa", RecordStatus::Retried),
        ("g1", "aaaaaaaaaaaaaaaa", RecordStatus::Sent),
        ("g2", "bbbbbbbbbbbbbbbb", RecordStatus::Failed),
        ("g2", "bbbbbbbbbbbbbbbb", RecordStatus::Sent),
        ("g3", "cccccccccccccccc", RecordStatus::Silenced),
    ]
    .into_iter()
    .enumerate()
    {
        history
            .append(&Record::delivery(
                &notification(group, fp),
                "webhook",
                status,
                1,
                None,
                t + i as i64,
            ))
            .expect("append");
    }

    // What the analyzer does per query.
    let ctx = SessionContext::new();
    let batch = History::open(data.path()).record_batch().expect("batch");
    let table = MemTable::try_new(schema(), vec![vec![batch]]).expect("table");
    ctx.register_table("notifications", Arc::new(table))
        .expect("register");

    let out = ctx
        .sql(
            "SELECT status, count(*) AS n FROM notifications \
             WHERE ts >= TIMESTAMP '2023-11-14T00:00:00Z' GROUP BY status ORDER BY status",
        )
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let statuses = out[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("status");
    let counts = out[0]
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("n");
    let got: Vec<(&str, i64)> = (0..out[0].num_rows())
        .map(|i| (statuses.value(i), counts.value(i)))
        .collect();
    assert_eq!(
        got,
        [("failed", 1), ("retried", 1), ("sent", 2), ("silenced", 1)]
    );

    let out = ctx
        .sql(
            "SELECT group_key FROM notifications \
             WHERE array_has(alerts, 'bbbbbbbbbbbbbbbb') AND status = 'sent'",
        )
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let groups = out[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("group_key");
    assert_eq!(out[0].num_rows(), 1);
    assert_eq!(groups.value(0), "g2");
}
