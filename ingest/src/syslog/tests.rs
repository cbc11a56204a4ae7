use super::*;
use tokio::io::AsyncWriteExt;
use vigie_bus::Subscriber;
use vigie_bus::memory::{MemoryBus, MemorySubscriber};
use vigie_model::codec::decode_batch;
use vigie_model::log_schema::batch_to_logs;
use vigie_model::topics;

async fn started(labels: &[(&str, &str)]) -> (SyslogReceiver, MemorySubscriber, CancellationToken) {
    let bus = MemoryBus::new(256);
    let sub = bus.subscribe(&[topics::LOGS]);
    let emitter = Arc::new(Emitter::new(Arc::new(bus), 1));
    let local: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let mut config = SyslogConfig::new(Some(local), Some(local));
    config.max_message_bytes = 200;
    for (k, v) in labels {
        config.labels.insert((*k).into(), (*v).into());
    }
    let stop = CancellationToken::new();
    let r = start(&config, emitter, stop.clone()).await.expect("start");
    (r, sub, stop)
}

/// Receives records until `n` arrived (5 s at most).
async fn receive(sub: &mut MemorySubscriber, n: usize) -> Vec<(String, LogRecord)> {
    let mut out = Vec::new();
    while out.len() < n {
        let d = tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("records arrive")
            .expect("recv")
            .expect("bus open");
        let key = String::from_utf8(d.message.key.clone()).expect("utf8 key");
        let batch = decode_batch(&d.message.payload).expect("decode");
        for l in batch_to_logs(&batch).expect("logs") {
            out.push((key.clone(), l.record));
        }
    }
    out
}

fn by_body<'a>(got: &'a [(String, LogRecord)], body: &str) -> &'a (String, LogRecord) {
    got.iter()
        .find(|(_, r)| r.body == body)
        .unwrap_or_else(|| panic!("no record {body:?} in {got:?}"))
}

#[tokio::test]
async fn udp_and_tcp_messages_become_records() {
    let (r, mut sub, stop) = started(&[("env", "test")]).await;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.send_to(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine evntslog 77 ID47 [ex@32473 iut=\"3\"] hello udp\n",
        r.udp.expect("udp addr"),
    )
    .expect("send");
    let mut tcp = tokio::net::TcpStream::connect(r.tcp.expect("tcp addr"))
        .await
        .expect("connect");
    let counted = b"<34>Oct 11 22:14:15 web1 su[12]: counted one";
    tcp.write_all(format!("{} ", counted.len()).as_bytes())
        .await
        .expect("write");
    tcp.write_all(counted).await.expect("write");
    tcp.write_all(b"<30>Oct 11 22:14:16 web1 nginx: newline one\n")
        .await
        .expect("write");
    tcp.shutdown().await.expect("shutdown");

    let got = receive(&mut sub, 3).await;
    let (key, rec) = by_body(&got, "hello udp");
    assert_eq!(key, "syslog/mymachine");
    assert_eq!(rec.severity.as_deref(), Some("info"), "notice is info");
    assert_eq!(
        rec.ts_ms,
        chrono::DateTime::parse_from_rfc3339("2003-10-11T22:14:15.003Z")
            .expect("ts")
            .timestamp_millis()
    );
    let l = &rec.labels;
    assert_eq!(l.get("source"), Some("syslog"));
    assert_eq!(l.get("transport"), Some("udp"));
    assert_eq!(l.get("peer"), Some("127.0.0.1"));
    assert_eq!(l.get("facility"), Some("local4"));
    assert_eq!(l.get("syslog_severity"), Some("notice"));
    assert_eq!(l.get("hostname"), Some("mymachine"));
    assert_eq!(l.get("app"), Some("evntslog"));
    assert_eq!(l.get("procid"), Some("77"));
    assert_eq!(l.get("msgid"), Some("ID47"));
    assert_eq!(l.get("ex@32473.iut"), Some("3"));
    assert_eq!(l.get("env"), Some("test"));

    let (_, rec) = by_body(&got, "counted one");
    assert_eq!(rec.severity.as_deref(), Some("error"), "crit is error");
    assert_eq!(rec.labels.get("transport"), Some("tcp"));
    assert_eq!(rec.labels.get("app"), Some("su"));
    assert_eq!(rec.labels.get("procid"), Some("12"));
    assert_eq!(rec.labels.get("facility"), Some("auth"));
    let (_, rec) = by_body(&got, "newline one");
    assert_eq!(rec.labels.get("facility"), Some("daemon"));

    stop.cancel();
    for t in r.tasks {
        tokio::time::timeout(Duration::from_secs(2), t)
            .await
            .expect("stops")
            .expect("no panic");
    }
}

#[tokio::test]
async fn garbage_is_kept_and_counted() {
    let (r, mut sub, stop) = started(&[]).await;
    let before = SYSLOG_ERRORS.with_label_values(&["udp", "pri"]).get();
    let cut_before = SYSLOG_ERRORS.with_label_values(&["udp", "truncated"]).get();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let to = r.udp.expect("udp addr");
    udp.send_to(b"no pri \xff here", to).expect("send");
    udp.send_to(&[b'x'; 300], to).expect("send");
    let got = receive(&mut sub, 2).await;
    let (key, rec) = by_body(&got, "no pri \u{fffd} here");
    assert_eq!(key, "syslog/127.0.0.1", "keyed by peer without hostname");
    assert_eq!(rec.severity, None);
    assert_eq!(rec.labels.get("facility"), None);
    let (_, cut) = by_body(&got, &"x".repeat(200));
    assert_eq!(cut.labels.get("transport"), Some("udp"));
    assert!(SYSLOG_ERRORS.with_label_values(&["udp", "pri"]).get() >= before + 2);
    assert!(SYSLOG_ERRORS.with_label_values(&["udp", "truncated"]).get() > cut_before);
    stop.cancel();
}

#[tokio::test]
async fn address_in_use_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let bus = MemoryBus::new(4);
    let emitter = Arc::new(Emitter::new(Arc::new(bus), 1));
    let err = start(
        &SyslogConfig::new(None, Some(addr)),
        emitter,
        CancellationToken::new(),
    )
    .await
    .err()
    .expect("in use");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[test]
fn config_problems() {
    let c: SyslogConfig = toml::from_str("labels = { __x = \"y\" }\n").expect("parse");
    let keys: Vec<String> = c.problems(0).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["syslog[0]", "syslog[0].labels"]);
    let c: SyslogConfig = toml::from_str("udp = \"0.0.0.0:514\"\n").expect("parse");
    assert!(c.problems(0).is_empty());
    assert_eq!(c.max_message_bytes, 65536);
    // A record larger than a bus message could never be published.
    let c: SyslogConfig =
        toml::from_str("tcp = \"127.0.0.1:601\"\nmax_message_bytes = 4194304\n").expect("parse");
    let problems = c.problems(0);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "syslog[0].max_message_bytes");
    assert!(problems[0].1.contains("262144"), "{}", problems[0].1);
    assert!(toml::from_str::<SyslogConfig>("udpp = \"0.0.0.0:514\"\n").is_err());
}

fn dropped(reason: &str) -> u64 {
    crate::metrics::DROPPED_LOG_RECORDS
        .with_label_values(&["syslog", reason])
        .get()
}

/// A UDP datagram that finds the queue to the batcher full is dropped and
/// counted, and the listener keeps reading (no waiting, no panic).
#[tokio::test]
async fn udp_drops_and_counts_when_the_queue_is_full() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    // Room for two records; nobody reads the queue.
    let (tx, _rx) = mpsc::channel(2);
    let ctx = Arc::new(Context {
        labels: Labels::new(),
        max: 200,
        tx,
    });
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve_udp(socket, ctx, stop.clone()));
    let before = dropped("queue_full");
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    for i in 0..10 {
        sender
            .send_to(format!("<13>message {i}").as_bytes(), addr)
            .expect("send");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dropped("queue_full") - before < 8 {
        assert!(std::time::Instant::now() < deadline, "8 datagrams counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops")
        .expect("no panic");
    assert_eq!(dropped("queue_full") - before, 8, "10 sent, 2 queued");
}

/// When the bus does not take a batch within the publish timeout, its
/// records are counted; the other hosts' records of the same round are
/// counted without waiting another timeout each.
#[tokio::test]
async fn batches_the_bus_does_not_take_are_counted() {
    let bus = MemoryBus::new(1);
    let _never_read = bus.subscribe(&[topics::LOGS]);
    let emitter =
        Arc::new(Emitter::new(Arc::new(bus), 1).with_publish_timeout(Duration::from_millis(30)));
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(batch(rx, emitter));
    let record = |body: &str| LogRecord {
        ts_ms: 1,
        labels: Labels::new(),
        severity: None,
        body: body.into(),
    };
    let before = dropped("timeout");
    let mut sent = 0;
    for (host, n) in [("a", 2), ("b", 3), ("c", 4)] {
        for i in 0..n {
            tx.send((format!("syslog/{host}"), record(&format!("{host} {i}"))))
                .await
                .expect("queue");
            sent += 1;
        }
    }
    // Every sender gone: the batcher publishes what it holds and ends.
    drop(tx);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the batcher does not wait for ever")
        .expect("no panic");
    // Everything was queued before the batcher ran, so it publishes one
    // round: host a's 2 records fill the channel, b's 3 wait the timeout,
    // c's 4 are counted at once.
    assert_eq!(dropped("timeout") - before, 3 + 4, "of {sent} records");
}
