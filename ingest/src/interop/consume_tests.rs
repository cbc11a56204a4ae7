use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use vigie_bus::memory::MemoryBus;
use vigie_bus::{BusError, Message};
use vigie_model::codec::decode_batch;
use vigie_model::schema::batch_to_samples;
use vigie_model::topics;

use super::*;
use crate::interop::InteropFormat;

async fn metrics_samples(
    sub: &mut vigie_bus::memory::MemorySubscriber,
    want: usize,
) -> Vec<Sample> {
    let mut got = Vec::new();
    while got.len() < want {
        let d = tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("samples arrive")
            .expect("recv")
            .expect("open");
        got.extend(
            batch_to_samples(&decode_batch(&d.message.payload).expect("arrow")).expect("samples"),
        );
    }
    got
}

#[tokio::test]
async fn good_messages_become_samples_and_garbage_a_dead_letter() {
    let bus = MemoryBus::new(64);
    let mut metrics = bus.subscribe(&[topics::METRICS]);
    let source = bus.subscribe(&["telegraf"]);
    let emitter = Arc::new(Emitter::new(Arc::new(bus.clone()), 3));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_consumer(
        InteropConfig::new("telegraf", InteropFormat::Influx),
        Box::new(source),
        emitter,
        Arc::new(bus.clone()),
        shutdown.clone(),
    ));
    for payload in [
        &b"cpu,host=a usage_idle=97.5,usage_user=2.5 1000000000\n"[..],
        b"this is not line protocol",
        b"mem,host=a used=1i 2000000000\nmem,host=b used=2i 2000000000",
    ] {
        bus.publish(Message::new("telegraf", b"k".to_vec(), payload.to_vec()))
            .await
            .expect("publish");
    }
    let mut got = metrics_samples(&mut metrics, 4).await;
    got.sort_by(|a, b| a.series.cmp(&b.series));
    let names: Vec<_> = got.iter().map(|s| s.series.to_string()).collect();
    assert_eq!(
        names,
        [
            "cpu_usage_idle{host=\"a\"}",
            "cpu_usage_user{host=\"a\"}",
            "mem_used{host=\"a\"}",
            "mem_used{host=\"b\"}",
        ]
    );
    assert_eq!(got[0].ts_ms, 1000);
    let dead = bus.retained(topics::DEADLETTER);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, b"this is not line protocol");
    assert_eq!(
        dead[0].header(topics::HEADER_SOURCE_TOPIC),
        Some("telegraf")
    );
    assert!(
        dead[0]
            .header(topics::HEADER_ERROR)
            .is_some_and(|r| r.starts_with("line 1: ")),
        "{:?}",
        dead[0].headers
    );
    let rejected = INTEROP_REJECTED
        .with_label_values(&["telegraf", "influx", "syntax"])
        .get();
    assert_eq!(rejected, 1);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops")
        .expect("no panic");
}

/// A subscriber that hands out scripted deliveries and records commits.
struct Scripted {
    deliveries: VecDeque<Delivery>,
    log: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Subscriber for Scripted {
    async fn recv(&mut self) -> Result<Option<Delivery>, BusError> {
        match self.deliveries.pop_front() {
            Some(d) => Ok(Some(d)),
            None => std::future::pending().await,
        }
    }

    async fn commit(&mut self, topic: &str, position: Position) -> Result<(), BusError> {
        self.log.lock().expect("lock").push(format!(
            "commit {topic} {}@{}",
            position.partition, position.offset
        ));
        Ok(())
    }
}

/// A bus that refuses the first `failures` metrics messages.
struct Flaky {
    failures: Mutex<usize>,
    log: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Publisher for Flaky {
    async fn publish(&self, message: Message) -> Result<(), BusError> {
        let mut failures = self.failures.lock().expect("lock");
        let mut log = self.log.lock().expect("lock");
        if message.topic == topics::METRICS && *failures > 0 {
            *failures -= 1;
            log.push("refused".into());
            return Err(BusError::Closed);
        }
        log.push(format!("published {}", message.topic));
        Ok(())
    }

    async fn flush(&self, _timeout: Duration) -> Result<(), BusError> {
        Ok(())
    }
}

#[tokio::test]
async fn offsets_are_committed_only_after_the_bus_took_the_samples() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let delivery = |partition, offset, payload: &str| Delivery {
        message: Message::new("vec", Vec::new(), payload.as_bytes().to_vec()),
        position: Position { partition, offset },
    };
    let gauge = r#"{"name":"g","kind":"absolute","gauge":{"value":1}}"#;
    let subscriber = Scripted {
        deliveries: [
            delivery(0, 5, gauge),
            delivery(1, 9, "{oops"),
            delivery(0, 6, gauge),
        ]
        .into(),
        log: log.clone(),
    };
    let bus = Arc::new(Flaky {
        failures: Mutex::new(2),
        log: log.clone(),
    });
    let emitter = Arc::new(Emitter::new(bus.clone(), 1));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_consumer(
        InteropConfig::new("vec", InteropFormat::VectorJson),
        Box::new(subscriber),
        emitter,
        bus,
        shutdown.clone(),
    ));
    for _ in 0..100 {
        if log.lock().expect("lock").len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops")
        .expect("no panic");
    assert_eq!(
        *log.lock().expect("lock"),
        [
            "published vigie.deadletter",
            "refused",
            "refused",
            "published vigie.metrics",
            "commit vec 0@6",
            "commit vec 1@9",
        ]
    );
}

#[tokio::test]
async fn shutdown_while_the_bus_refuses_commits_nothing() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let subscriber = Scripted {
        deliveries: [Delivery {
            message: Message::new("t", Vec::new(), b"m v=1".to_vec()),
            position: Position {
                partition: 0,
                offset: 1,
            },
        }]
        .into(),
        log: log.clone(),
    };
    let bus = Arc::new(Flaky {
        failures: Mutex::new(usize::MAX),
        log: log.clone(),
    });
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_consumer(
        InteropConfig::new("t", InteropFormat::Influx),
        Box::new(subscriber),
        Arc::new(Emitter::new(bus.clone(), 1)),
        bus,
        shutdown.clone(),
    ));
    for _ in 0..100 {
        if !log.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops during the back-off")
        .expect("no panic");
    let log = log.lock().expect("lock");
    assert!(log.iter().all(|l| l == "refused"), "{log:?}");
    assert!(!log.is_empty());
}
