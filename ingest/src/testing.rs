//! Helpers of this crate's tests.

use std::time::Duration;

use vigie_bus::{Message, Subscriber};
use vigie_model::LogRecord;
use vigie_model::codec::decode_batch;
use vigie_model::log_schema::batch_to_logs;

/// The next message `sub` receives within 10 s; fails the test, saying
/// `what` was awaited, otherwise.
pub(crate) async fn next_message(sub: &mut impl Subscriber, what: &str) -> Message {
    tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within 10 s"))
        .expect("recv")
        .expect("bus open")
        .message
}

/// The log records of a `vigie.logs` payload.
pub(crate) fn logs_in(message: &Message) -> Vec<LogRecord> {
    batch_to_logs(&decode_batch(&message.payload).expect("arrow"))
        .expect("logs")
        .into_iter()
        .map(|l| l.record)
        .collect()
}
