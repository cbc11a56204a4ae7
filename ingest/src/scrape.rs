//! Prometheus-style scraping of one target.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::ACCEPT;
use vigie_model::{Labels, Sample};

use crate::config::ScrapeConfig;
use crate::exposition;
use crate::metrics::{SCRAPE_ERRORS, SCRAPES};
use crate::source::{Source, now_ms};

/// What the scraper asks for (text format 0.0.4).
pub const ACCEPT_HEADER: &str = "text/plain;version=0.0.4";

/// Why a scrape failed; the `reason` label of `vigie_scrape_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// The connection could not be made (or the request could not be sent).
    Connect,
    /// The scrape took longer than the timeout.
    Timeout,
    /// The target answered with a non-2xx status.
    HttpStatus,
    /// The body is not valid exposition text.
    Parse,
    /// Reading the body failed.
    Body,
}

impl FailureReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Connect => "connect",
            FailureReason::Timeout => "timeout",
            FailureReason::HttpStatus => "http_status",
            FailureReason::Parse => "parse",
            FailureReason::Body => "body",
        }
    }
}

/// One target of a scrape job, as a [`Source`].
pub struct ScrapeTarget {
    name: String,
    job: String,
    instance: String,
    url: String,
    interval: Duration,
    timeout: Duration,
    /// `job`, `instance` and the job's extra labels.
    target_labels: Labels,
    client: reqwest::Client,
    /// Series ids of the previous successful scrape.
    previous: HashSet<u64>,
}

impl ScrapeTarget {
    /// A scraper for `target` (`host:port`) of `job`. The configuration is
    /// assumed valid (see [`ScrapeConfig::problems`]).
    pub fn new(job: &ScrapeConfig, target: &str, client: reqwest::Client) -> Self {
        let mut target_labels: Labels = job
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        target_labels.insert("job", job.job.clone());
        target_labels.insert("instance", target);
        Self {
            name: format!("scrape/{}/{}", job.job, target),
            job: job.job.clone(),
            instance: target.to_string(),
            url: format!("{}://{}{}", job.scheme, target, job.metrics_path),
            interval: job.interval,
            timeout: job.timeout,
            target_labels,
            client,
            previous: HashSet::new(),
        }
    }

    /// The URL scraped.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn fetch(&self) -> Result<String, (FailureReason, String)> {
        let classify = |e: reqwest::Error, otherwise: FailureReason| {
            let reason = if e.is_timeout() {
                FailureReason::Timeout
            } else {
                otherwise
            };
            (reason, e.to_string())
        };
        let response = self
            .client
            .get(&self.url)
            .header(ACCEPT, ACCEPT_HEADER)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                self.timeout.as_secs_f64().to_string(),
            )
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| classify(e, FailureReason::Connect))?;
        let status = response.status();
        if !status.is_success() {
            return Err((
                FailureReason::HttpStatus,
                format!("server returned HTTP status {status}"),
            ));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| classify(e, FailureReason::Body))?;
        String::from_utf8(body.to_vec())
            .map_err(|e| (FailureReason::Parse, format!("body is not UTF-8: {e}")))
    }

    /// Adds the target labels; exposed labels that clash are renamed
    /// `exported_<name>` (Prometheus with `honor_labels: false`).
    fn relabel(&self, sample: &mut Sample) {
        let labels = &mut sample.series.labels;
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for (name, value) in self.target_labels.iter() {
            if let Some(exposed) = labels.remove(name) {
                conflicts.push((name.to_string(), exposed));
            }
            labels.insert(name, value);
        }
        conflicts.sort_by_key(|(name, _)| name.len());
        for (name, value) in conflicts {
            let mut new_name = name;
            loop {
                new_name = format!("exported_{new_name}");
                if labels.get(&new_name).is_none() {
                    labels.insert(new_name, value);
                    break;
                }
            }
        }
    }

    fn synthetic(&self, name: &str, ts_ms: i64, value: f64) -> Sample {
        Sample::new(name, self.target_labels.clone(), ts_ms, value)
    }
}

#[async_trait]
impl Source for ScrapeTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn collect(&mut self) -> Vec<Sample> {
        SCRAPES.with_label_values(&[self.job.as_str()]).inc();
        let start_ms = now_ms();
        let started = Instant::now();
        let result = match self.fetch().await {
            Ok(body) => exposition::parse(&body, start_ms)
                .map_err(|e| (FailureReason::Parse, format!("invalid exposition: {e}"))),
            Err(e) => Err(e),
        };
        let duration = started.elapsed().as_secs_f64();
        let (mut samples, up, added) = match result {
            Ok(mut samples) => {
                for s in &mut samples {
                    self.relabel(s);
                }
                let ids: HashSet<u64> = samples.iter().map(|s| s.series.id()).collect();
                let added = ids.difference(&self.previous).count();
                self.previous = ids;
                (samples, 1.0, added)
            }
            Err((reason, error)) => {
                SCRAPE_ERRORS
                    .with_label_values(&[self.job.as_str(), reason.as_str()])
                    .inc();
                tracing::warn!(
                    job = %self.job,
                    instance = %self.instance,
                    reason = reason.as_str(),
                    %error,
                    "scrape failed"
                );
                (Vec::new(), 0.0, 0)
            }
        };
        let scraped = samples.len() as f64;
        samples.extend([
            self.synthetic("up", start_ms, up),
            self.synthetic("scrape_duration_seconds", start_ms, duration),
            self.synthetic("scrape_samples_scraped", start_ms, scraped),
            self.synthetic("scrape_samples_post_metric_relabeling", start_ms, scraped),
            self.synthetic("scrape_series_added", start_ms, added as f64),
        ]);
        samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;

    const GOOD: &str = "\
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method=\"get\",job=\"exposed\"} 10
http_requests_total{method=\"post\"} 3 1700000000000
# TYPE temperature gauge
temperature 21.5
";

    const HISTOGRAM: &str = "\
# TYPE rpc_seconds histogram
rpc_seconds_bucket{le=\"0.5\"} 1
rpc_seconds_bucket{le=\"1\"} 2
rpc_seconds_bucket{le=\"+Inf\"} 3
rpc_seconds_sum 1.7
rpc_seconds_count 3
";

    /// Serves a few fixed endpoints on 127.0.0.1:0; returns the address and
    /// the headers of the last request to `/metrics`.
    async fn server() -> (String, Arc<Mutex<Option<HeaderMap>>>) {
        let seen = Arc::new(Mutex::new(None));
        let seen2 = seen.clone();
        let app = Router::new()
            .route(
                "/metrics",
                get(move |headers: HeaderMap| {
                    let seen = seen2.clone();
                    async move {
                        *seen.lock().expect("lock") = Some(headers);
                        GOOD
                    }
                }),
            )
            .route("/histogram", get(|| async { HISTOGRAM }))
            .route("/garbage", get(|| async { "this is { not exposition" }))
            .route(
                "/error",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "up 1\n"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        (addr, seen)
    }

    fn config(job: &str, path: &str) -> ScrapeConfig {
        ScrapeConfig {
            job: job.to_string(),
            targets: Vec::new(),
            interval: Duration::from_secs(10),
            timeout: Duration::from_millis(500),
            metrics_path: path.to_string(),
            scheme: "http".to_string(),
            labels: BTreeMap::from([("env".to_string(), "test".to_string())]),
        }
    }

    fn find<'a>(samples: &'a [Sample], metric: &str) -> Vec<&'a Sample> {
        samples
            .iter()
            .filter(|s| s.series.metric == metric)
            .collect()
    }

    fn value(samples: &[Sample], metric: &str) -> f64 {
        let found = find(samples, metric);
        assert_eq!(found.len(), 1, "{metric} appears once");
        found[0].value
    }

    fn errors(job: &str, reason: &str) -> u64 {
        SCRAPE_ERRORS.with_label_values(&[job, reason]).get()
    }

    #[tokio::test]
    async fn good_exposition_gets_target_labels_and_up_1() {
        let (addr, seen) = server().await;
        let mut t = ScrapeTarget::new(&config("good", "/metrics"), &addr, reqwest::Client::new());
        let before = SCRAPES.with_label_values(&["good"]).get();
        let samples = t.collect().await;

        assert_eq!(value(&samples, "up"), 1.0);
        assert_eq!(value(&samples, "scrape_samples_scraped"), 3.0);
        assert_eq!(
            value(&samples, "scrape_samples_post_metric_relabeling"),
            3.0
        );
        assert_eq!(value(&samples, "scrape_series_added"), 3.0);
        assert!(value(&samples, "scrape_duration_seconds") >= 0.0);
        assert_eq!(samples.len(), 3 + 5);
        for s in &samples {
            assert_eq!(s.series.labels.get("job"), Some("good"), "{}", s.series);
            assert_eq!(s.series.labels.get("instance"), Some(addr.as_str()));
            assert_eq!(s.series.labels.get("env"), Some("test"));
        }
        let get = find(&samples, "http_requests_total")
            .into_iter()
            .find(|s| s.series.labels.get("method") == Some("get"))
            .expect("get series");
        assert_eq!(get.value, 10.0);
        assert_eq!(get.series.labels.get("exported_job"), Some("exposed"));
        let post = find(&samples, "http_requests_total")
            .into_iter()
            .find(|s| s.series.labels.get("method") == Some("post"))
            .expect("post series");
        assert_eq!(post.ts_ms, 1_700_000_000_000);
        let up_ts = find(&samples, "up")[0].ts_ms;
        assert_eq!(find(&samples, "temperature")[0].ts_ms, up_ts);
        assert_eq!(SCRAPES.with_label_values(&["good"]).get(), before + 1);

        let headers = seen.lock().expect("lock").clone().expect("request seen");
        assert_eq!(headers.get("accept").expect("accept"), ACCEPT_HEADER);
        assert_eq!(
            headers
                .get("x-prometheus-scrape-timeout-seconds")
                .expect("timeout header"),
            "0.5"
        );

        // Same series again: nothing added.
        let again = t.collect().await;
        assert_eq!(value(&again, "scrape_series_added"), 0.0);
    }

    async fn assert_fails(job: &str, addr: &str, path: &str, reason: &str) {
        let before = errors(job, reason);
        let mut t = ScrapeTarget::new(&config(job, path), addr, reqwest::Client::new());
        let samples = t.collect().await;
        assert_eq!(value(&samples, "up"), 0.0);
        assert_eq!(value(&samples, "scrape_samples_scraped"), 0.0);
        assert_eq!(samples.len(), 5, "only synthetic samples: {samples:?}");
        assert_eq!(errors(job, reason), before + 1, "reason {reason} counted");
    }

    #[tokio::test]
    async fn garbage_body_is_a_parse_failure() {
        let (addr, _) = server().await;
        assert_fails("garbage", &addr, "/garbage", "parse").await;
    }

    #[tokio::test]
    async fn error_status_is_an_http_status_failure() {
        let (addr, _) = server().await;
        assert_fails("status", &addr, "/error", "http_status").await;
    }

    #[tokio::test]
    async fn slow_target_is_a_timeout() {
        let (addr, _) = server().await;
        assert_fails("slow", &addr, "/slow", "timeout").await;
    }

    #[tokio::test]
    async fn unreachable_port_is_a_connect_failure() {
        // Bind then drop a listener to get a port nobody listens on.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        assert_fails("unreachable", &addr, "/metrics", "connect").await;
    }

    #[tokio::test]
    async fn truncated_body_is_a_body_failure() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nup 1\n")
                .await;
            // Closing before 100 bytes were sent.
        });
        assert_fails("truncated", &addr, "/metrics", "body").await;
    }

    #[tokio::test]
    async fn histogram_becomes_bucket_sum_and_count() {
        let (addr, _) = server().await;
        let mut t = ScrapeTarget::new(
            &config("histo", "/histogram"),
            &addr,
            reqwest::Client::new(),
        );
        let samples = t.collect().await;
        assert_eq!(value(&samples, "up"), 1.0);
        let les: Vec<&str> = find(&samples, "rpc_seconds_bucket")
            .iter()
            .map(|s| s.series.labels.get("le").expect("le"))
            .collect();
        assert_eq!(les, vec!["0.5", "1.0", "+Inf"]);
        assert_eq!(value(&samples, "rpc_seconds_sum"), 1.7);
        assert_eq!(value(&samples, "rpc_seconds_count"), 3.0);
    }

    #[test]
    fn relabel_renames_repeatedly() {
        let t = ScrapeTarget::new(&config("j", "/m"), "h:1", reqwest::Client::new());
        let mut s = Sample::new(
            "m",
            Labels::new()
                .with("instance", "a")
                .with("exported_instance", "b"),
            0,
            1.0,
        );
        t.relabel(&mut s);
        assert_eq!(s.series.labels.get("instance"), Some("h:1"));
        assert_eq!(s.series.labels.get("exported_instance"), Some("b"));
        assert_eq!(s.series.labels.get("exported_exported_instance"), Some("a"));
        assert_eq!(t.url(), "http://h:1/m");
    }
}
