use super::*;
use crate::notify::NotifiedAlert;
use vigie_model::Labels;

fn note(group: &str, at: i64) -> Notification {
    Notification {
        receiver: "ops".into(),
        group_key: group.into(),
        status: GroupStatus::Firing,
        group_labels: Labels::new(),
        alerts: vec![NotifiedAlert {
            status: GroupStatus::Firing,
            labels: Labels::new().with("alertname", "A"),
            annotations: Labels::new(),
            starts_at_ms: at,
            ends_at_ms: None,
            generator_url: String::new(),
            fingerprint: "00000000000000aa".into(),
        }],
        external_url: String::new(),
        notified_at_ms: at,
        incident: None,
    }
}

#[test]
fn query_filters_newest_first_and_limits() {
    let dir = tempfile::tempdir().expect("tmp");
    let h = History::open(dir.path());
    for (i, (group, status)) in [
        ("g1", RecordStatus::Retried),
        ("g1", RecordStatus::Sent),
        ("g2", RecordStatus::Failed),
        ("g2", RecordStatus::Sent),
    ]
    .into_iter()
    .enumerate()
    {
        let at = 1000 + i as i64;
        h.append(&Record::delivery(
            &note(group, at),
            "webhook",
            status,
            1,
            None,
            at,
        ))
        .expect("append");
    }
    let sent = h
        .query(&Query::parse(Some("status=sent")).expect("q"))
        .expect("query");
    let groups: Vec<&str> = sent.iter().map(|r| r.group_key.as_str()).collect();
    assert_eq!(groups, ["g2", "g1"], "newest first");
    let g1 = h
        .query(&Query::parse(Some("group_key=g1&limit=1&receiver=ops")).expect("q"))
        .expect("query");
    assert_eq!(g1.len(), 1);
    assert_eq!(g1[0].status, RecordStatus::Sent);
    assert!(
        h.query(&Query::parse(Some("receiver=dev")).expect("q"))
            .expect("query")
            .is_empty()
    );
    assert!(Query::parse(Some("status=lost")).is_err());
    assert!(Query::parse(Some("limit=0")).is_err());
    assert!(Query::parse(Some("reciever=ops")).is_err());
}

#[test]
fn rotation_bounds_the_files_and_keeps_the_newest() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("h.jsonl");
    let h = History::at(path.clone(), 2_000);
    for i in 0..200 {
        h.append(&Record::delivery(
            &note(&format!("g{i}"), i),
            "webhook",
            RecordStatus::Sent,
            1,
            None,
            i,
        ))
        .expect("append");
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    assert!(size(&path) <= 2_000, "{}", size(&path));
    assert!(size(&h.previous()) <= 2_000);
    let all = h.all().expect("all");
    assert!(all.len() < 200, "old records dropped");
    assert_eq!(all.last().map(|r| r.at_ms), Some(199), "newest kept");
    let ts: Vec<i64> = all.iter().map(|r| r.at_ms).collect();
    let mut sorted = ts.clone();
    sorted.sort();
    assert_eq!(ts, sorted, "previous file read first");
}

#[test]
fn torn_last_line_is_skipped() {
    let dir = tempfile::tempdir().expect("tmp");
    let h = History::open(dir.path());
    h.append(&Record::delivery(
        &note("g", 1),
        "email",
        RecordStatus::Sent,
        1,
        None,
        1,
    ))
    .expect("append");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(h.path())
        .expect("open");
    f.write_all(b"{\"at_ms\":2,\"sta").expect("write");
    assert_eq!(h.all().expect("all").len(), 1);
}

#[test]
fn record_batch_has_the_documented_schema() {
    let dir = tempfile::tempdir().expect("tmp");
    let h = History::open(dir.path());
    h.append(&Record::delivery(
        &note("g", 5),
        "webhook",
        RecordStatus::Failed,
        3,
        Some("HTTP 503".into()),
        5,
    ))
    .expect("append");
    let batch = h.record_batch().expect("batch");
    assert_eq!(batch.schema(), schema());
    assert_eq!(batch.num_rows(), 1);
    let ts = batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .expect("ts");
    assert_eq!(ts.value(0), 5);
    // The other columns print without a time zone database.
    let rest = batch
        .project(&[1, 2, 3, 4, 5, 6, 7, 8, 9])
        .expect("project");
    let text = arrow::util::pretty::pretty_format_batches(&[rest])
        .expect("format")
        .to_string();
    for expected in [
        "| failed ",
        "| ops ",
        "| webhook ",
        "| firing ",
        "[00000000000000aa]",
        "| 3 ",
        "HTTP 503",
        &note("g", 5).idempotency_key(),
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
}
