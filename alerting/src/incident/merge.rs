//! One subscriber over two: alerting reads `vigie.alerts` in the shared
//! alerting group and `vigie.anomalies` in a group of its own (with Kafka,
//! every alerting process must see every anomaly event).

use async_trait::async_trait;
use vigie_bus::{BusError, Delivery, Position, Subscriber};

/// Delivers what either subscriber receives; commits go to the one that
/// reads the topic. Closed once both are closed.
pub struct Merged {
    first: Box<dyn Subscriber>,
    second: Box<dyn Subscriber>,
    /// Topics read by `second`; commits of any other go to `first`.
    second_topics: Vec<String>,
    first_open: bool,
    second_open: bool,
}

impl Merged {
    /// Merges `first` and `second`, which reads `second_topics`.
    pub fn new(
        first: Box<dyn Subscriber>,
        second: Box<dyn Subscriber>,
        second_topics: &[&str],
    ) -> Self {
        Self {
            first,
            second,
            second_topics: second_topics.iter().map(|t| t.to_string()).collect(),
            first_open: true,
            second_open: true,
        }
    }
}

#[async_trait]
impl Subscriber for Merged {
    async fn recv(&mut self) -> Result<Option<Delivery>, BusError> {
        loop {
            let got = tokio::select! {
                r = self.first.recv(), if self.first_open => (true, r),
                r = self.second.recv(), if self.second_open => (false, r),
                else => return Ok(None),
            };
            match got {
                (_, Ok(Some(d))) => return Ok(Some(d)),
                (true, Ok(None)) => self.first_open = false,
                (false, Ok(None)) => self.second_open = false,
                (_, Err(e)) => return Err(e),
            }
        }
    }

    async fn commit(&mut self, topic: &str, position: Position) -> Result<(), BusError> {
        if self.second_topics.iter().any(|t| t == topic) {
            self.second.commit(topic, position).await
        } else {
            self.first.commit(topic, position).await
        }
    }
}
