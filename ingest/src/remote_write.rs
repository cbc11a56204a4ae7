//! Prometheus remote-write 1.0 receiver: `POST /api/v1/write`.
//!
//! Body: a snappy-compressed (block format) protobuf `WriteRequest`, as
//! every Prometheus, Grafana Agent or vmagent sends it. Samples go through
//! the same [`Emitter`] as scraped ones. Answers as Prometheus' own
//! receiver does: 204 on success, 400 with a reason for a request that can
//! never succeed (the sender drops it), 5xx when the bus did not take the
//! data (the sender retries with back-off, so nothing is lost): 503 with
//! `Retry-After` when the bus did not accept it within `bus.publish_timeout`
//! (Kafka or the analyzer is behind: backpressure reaches the sender
//! instead of piling up here), 500 when it refused it. A retried request
//! whose samples were partly published stores nothing twice (the analyzer
//! drops a series' samples at or before its newest stored one).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::post;
use prost::Message as _;
use tracing::warn;
use vigie_model::{Labels, METRIC_NAME_LABEL, Sample};

use crate::Emitter;
use crate::metrics::{REMOTE_WRITE_ERRORS, REMOTE_WRITE_SAMPLES};
use crate::ratelimit::LogLimiter;

/// `Retry-After` of a 503: the sender's own back-off usually waits longer.
const RETRY_AFTER_SECS: &str = "1";

static BACKPRESSURE_LOG: LogLimiter = LogLimiter::new();

/// Largest compressed body accepted.
pub const MAX_COMPRESSED_BYTES: usize = 16 << 20;
/// Largest decompressed body accepted (checked before decompressing).
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// The remote-write protobuf messages (prometheus/prompb, 1.0 subset).
pub mod proto {
    /// A batch of series.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        /// The series.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        /// Metric metadata (type, help); accepted and ignored for now.
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    /// One series with its samples.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Labels, including `__name__`.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Samples in time order.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }

    /// A label pair.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        /// Label name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Label value.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// A sample.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// The value.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// Metric metadata.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        /// Metric type (enum value).
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        /// Metric family name.
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        /// Help text.
        #[prost(string, tag = "4")]
        pub help: String,
        /// Unit.
        #[prost(string, tag = "5")]
        pub unit: String,
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Counter label.
    pub reason: &'static str,
    /// Message for the sender.
    pub message: String,
}

fn reject(reason: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        reason,
        message: message.into(),
    }
}

/// Decodes a remote-write body into samples. Series without a metric name
/// are skipped and counted; any other defect rejects the whole request.
pub fn decode(body: &[u8]) -> Result<Vec<Sample>, Rejection> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| reject("snappy", format!("body is not snappy block format: {e}")))?;
    if len > MAX_DECOMPRESSED_BYTES {
        return Err(reject(
            "too_large",
            format!("decompressed body of {len} bytes exceeds {MAX_DECOMPRESSED_BYTES}"),
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| reject("snappy", format!("cannot decompress body: {e}")))?;
    let request = proto::WriteRequest::decode(raw.as_slice())
        .map_err(|e| reject("protobuf", format!("body is not a WriteRequest: {e}")))?;
    let mut out = Vec::new();
    for series in request.timeseries {
        let mut name = None;
        let mut labels = Labels::new();
        for l in series.labels {
            if l.name == METRIC_NAME_LABEL {
                name = Some(l.value);
            } else {
                labels.insert(l.name, l.value);
            }
        }
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            REMOTE_WRITE_ERRORS.with_label_values(&["no_name"]).inc();
            continue;
        };
        for s in series.samples {
            out.push(Sample::new(
                name.clone(),
                labels.clone(),
                s.timestamp,
                s.value,
            ));
        }
    }
    Ok(out)
}

async fn write(
    State(emitter): State<Arc<Emitter>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, String) {
    if let Some(enc) = headers.get("content-encoding")
        && !enc.as_bytes().eq_ignore_ascii_case(b"snappy")
    {
        REMOTE_WRITE_ERRORS.with_label_values(&["encoding"]).inc();
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HeaderMap::new(),
            "only Content-Encoding: snappy is supported (remote-write 1.0)\n".into(),
        );
    }
    let samples = match decode(&body) {
        Ok(s) => s,
        Err(r) => {
            REMOTE_WRITE_ERRORS.with_label_values(&[r.reason]).inc();
            warn!(reason = r.reason, error = %r.message, "remote-write request rejected");
            return (
                StatusCode::BAD_REQUEST,
                HeaderMap::new(),
                format!("{}\n", r.message),
            );
        }
    };
    let n = samples.len();
    match emitter.emit(samples).await {
        Ok(_) => {
            REMOTE_WRITE_SAMPLES.inc_by(n as u64);
            (StatusCode::NO_CONTENT, HeaderMap::new(), String::new())
        }
        Err(e) if e.is_backpressure() => {
            REMOTE_WRITE_ERRORS
                .with_label_values(&["backpressure"])
                .inc();
            if let Some(suppressed) = BACKPRESSURE_LOG.check() {
                warn!(error = %e, suppressed, "remote-write samples not accepted in time; answering 503, the sender retries");
            }
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            (
                StatusCode::SERVICE_UNAVAILABLE,
                headers,
                format!("{e}; retry later\n"),
            )
        }
        Err(e) => {
            REMOTE_WRITE_ERRORS.with_label_values(&["publish"]).inc();
            warn!(error = %e, "remote-write samples not published; sender will retry");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                HeaderMap::new(),
                format!("{e}\n"),
            )
        }
    }
}

/// The `POST /api/v1/write` route, publishing through `emitter`.
pub fn router(emitter: Arc<Emitter>) -> Router {
    Router::new()
        .route("/api/v1/write", post(write))
        .layer(DefaultBodyLimit::max(MAX_COMPRESSED_BYTES))
        .with_state(emitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(req: &proto::WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .expect("compress")
    }

    fn label(n: &str, v: &str) -> proto::Label {
        proto::Label {
            name: n.into(),
            value: v.into(),
        }
    }

    #[test]
    fn decodes_series_and_samples() {
        let req = proto::WriteRequest {
            timeseries: vec![
                proto::TimeSeries {
                    labels: vec![label("__name__", "up"), label("job", "node")],
                    samples: vec![
                        proto::Sample {
                            value: 1.0,
                            timestamp: 1000,
                        },
                        proto::Sample {
                            value: 0.0,
                            timestamp: 2000,
                        },
                    ],
                },
                proto::TimeSeries {
                    labels: vec![label("job", "nameless")],
                    samples: vec![proto::Sample {
                        value: 1.0,
                        timestamp: 1,
                    }],
                },
            ],
            metadata: vec![],
        };
        let samples = decode(&body(&req)).expect("decode");
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].series.metric, "up");
        assert_eq!(samples[0].series.labels.get("job"), Some("node"));
        assert_eq!(samples[1].ts_ms, 2000);
    }

    #[test]
    fn rejects_uncompressed_and_garbage() {
        assert_eq!(
            decode(b"\xff\xff\xff\xff\xff\xff").expect_err("x").reason,
            "snappy"
        );
        let not_proto = snap::raw::Encoder::new()
            .compress_vec(b"\x0a\xff\xff\xff\xff\x0f")
            .expect("compress");
        assert_eq!(decode(&not_proto).expect_err("x").reason, "protobuf");
    }

    /// The bus stopped taking samples: the sender gets 503 with
    /// Retry-After (so Prometheus retries), and the same request succeeds
    /// once the bus has room again.
    #[tokio::test]
    async fn a_full_bus_answers_503_and_the_retry_succeeds() {
        use vigie_bus::Subscriber;
        let bus = vigie_bus::memory::MemoryBus::new(1);
        let mut sub = bus.subscribe(&[vigie_model::topics::METRICS]);
        let emitter = Arc::new(
            Emitter::new(Arc::new(bus), 1)
                .with_publish_timeout(std::time::Duration::from_millis(50)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/api/v1/write",
            listener.local_addr().expect("addr")
        );
        tokio::spawn(async move { axum::serve(listener, router(emitter)).await });
        let request = |ts: i64| {
            body(&proto::WriteRequest {
                timeseries: vec![proto::TimeSeries {
                    labels: vec![label("__name__", "up")],
                    samples: vec![proto::Sample {
                        value: 1.0,
                        timestamp: ts,
                    }],
                }],
                metadata: vec![],
            })
        };
        let client = reqwest::Client::new();
        let post = |b: Vec<u8>| {
            client
                .post(&url)
                .header("Content-Encoding", "snappy")
                .body(b)
                .send()
        };
        let first = post(request(1)).await.expect("post");
        assert_eq!(first.status(), StatusCode::NO_CONTENT);
        let second = post(request(2)).await.expect("post");
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            second.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
            Some(RETRY_AFTER_SECS.as_bytes())
        );
        assert!(
            second.text().await.expect("body").contains("retry later"),
            "the reason is in the body"
        );
        // The analyzer catches up; Prometheus' retry goes through.
        sub.recv().await.expect("recv").expect("the first request");
        let retried = post(request(2)).await.expect("post");
        assert_eq!(retried.status(), StatusCode::NO_CONTENT);
        let d = sub
            .recv()
            .await
            .expect("recv")
            .expect("the retried request");
        let samples = vigie_model::schema::batch_to_samples(
            &vigie_model::codec::decode_batch(&d.message.payload).expect("decode"),
        )
        .expect("samples");
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].ts_ms, 2);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode(&bytes);
        }
    }
}
