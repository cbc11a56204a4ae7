//! The analyzer's pipeline, fed over the bus, publishes anomaly onsets on
//! `vigie.anomalies` when a series jumps, and nothing for a steady one.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigie_analyzer::AnalyzerConfig;
use vigie_analyzer::pipeline::Analyzer;
use vigie_analyzer::storage::Storage;
use vigie_bus::memory::MemoryBus;
use vigie_bus::{Message, Publisher, Subscriber};
use vigie_model::schema::samples_to_batch;
use vigie_model::{AnomalyEvent, AnomalyPhase, Labels, Sample, codec, topics};

fn batch(samples: &[Sample]) -> Message {
    let payload = codec::encode_batch(&samples_to_batch(samples).expect("batch")).expect("encode");
    Message::new(topics::METRICS, vec![0, 0, 0, 0], payload)
}

#[tokio::test]
async fn a_jumping_series_makes_one_onset_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), 1).expect("open"));
    let bus = MemoryBus::new(1024);
    let mut anomalies = bus.subscribe(&[topics::ANOMALIES]);
    let metrics = bus.subscribe(&[topics::METRICS]);
    let publisher: Arc<dyn Publisher> = Arc::new(bus.clone());
    let analyzer = Arc::new(
        Analyzer::new(AnalyzerConfig::default(), storage, publisher.clone())
            .with_anomaly_events(publisher.clone()),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(analyzer.run(Box::new(metrics), stop.clone()));

    let t0 = 1_700_000_000_000i64;
    let hot = Labels::new().with("host", "a").with("sensor", "cpu");
    let calm = Labels::new().with("host", "b");
    // 200 points of a gentle wave, then the temperature jumps and stays up.
    for i in 0..260i64 {
        let wave = (i as f64 * 0.3).sin();
        let temp = if i < 200 { 50.0 + wave } else { 95.0 + wave };
        let ts = t0 + i * 15_000;
        bus.publish(batch(&[
            Sample::new("node_hwmon_temp_celsius", hot.clone(), ts, temp),
            Sample::new("node_load1", calm.clone(), ts, 1.0 + 0.1 * wave),
        ]))
        .await
        .expect("publish");
    }

    let first = tokio::time::timeout(Duration::from_secs(30), anomalies.recv())
        .await
        .expect("an anomaly event within 30 s")
        .expect("bus open")
        .expect("a delivery");
    let event = AnomalyEvent::decode(&first.message.payload).expect("decodes");
    assert_eq!(event.phase, AnomalyPhase::Onset);
    assert_eq!(event.metric, "node_hwmon_temp_celsius");
    assert_eq!(event.labels, hot);
    assert!(event.score >= 0.9999, "score {}", event.score);
    assert!(
        event.at_ms >= t0 + 200 * 15_000,
        "onset at the jump, not before: {}",
        event.at_ms
    );
    assert_eq!(first.message.key, event.key().into_bytes());

    // Nothing for the steady series; at most the hot series' own end.
    stop.cancel();
    task.await.expect("analyzer stops");
    while let Ok(Ok(Some(d))) =
        tokio::time::timeout(Duration::from_millis(200), anomalies.recv()).await
    {
        let e = AnomalyEvent::decode(&d.message.payload).expect("decodes");
        assert_eq!(e.labels, hot, "no event for the steady series: {e:?}");
        assert_ne!(e.phase, AnomalyPhase::Onset, "one onset only: {e:?}");
    }
}
