//! Prometheus-style scraping of one target.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::ACCEPT;
use vigie_model::{Labels, Sample, SeriesKey};

use crate::config::ScrapeConfig;
use crate::exposition;
use crate::metrics::{SCRAPE_ERRORS, SCRAPES};
use crate::relabel::{LabelSet, Relabeler, process};
use crate::sd::ResolvedTarget;
use crate::source::{Source, now_ms};
use crate::targets::{Health, HealthState, SharedHealth};

/// The staleness marker: the NaN Prometheus writes when a series ends.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True when `v` is the staleness marker (not any NaN).
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The series every scrape reports about itself.
const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

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
    /// More samples than `sample_limit` after metric relabelling.
    SampleLimit,
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
            FailureReason::SampleLimit => "sample_limit",
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
    honor_labels: bool,
    sample_limit: usize,
    metric_relabel: Arc<Vec<Relabeler>>,
    client: reqwest::Client,
    /// Series of the previous successful scrape, by id.
    previous: HashMap<u64, SeriesKey>,
    /// Whether the report series (`up`, ...) were written at least once.
    reported: bool,
    health: SharedHealth,
}

impl ScrapeTarget {
    /// A scraper for the static `target` (`host:port`) of `job`, without
    /// target relabelling (`metric_relabel_configs`, `honor_labels` and
    /// `sample_limit` apply). The configuration is assumed valid (see
    /// [`ScrapeConfig::problems`]).
    pub fn new(job: &ScrapeConfig, target: &str, client: reqwest::Client) -> Self {
        let mut labels: LabelSet = job.labels.clone();
        labels.insert("job".to_string(), job.job.clone());
        labels.insert("instance".to_string(), target.to_string());
        let resolved = ResolvedTarget {
            discovered: LabelSet::new(),
            labels,
            url: format!("{}://{}{}", job.scheme, target, job.metrics_path),
        };
        let metric_relabel = job
            .metric_relabel_configs
            .iter()
            .filter_map(|c| Relabeler::new(c).ok())
            .collect();
        Self::from_resolved(
            job,
            &resolved,
            Arc::new(metric_relabel),
            client,
            Arc::new(Mutex::new(Health::default())),
        )
    }

    /// A scraper for a discovered, relabelled target of `job`; `health` is
    /// updated after every scrape.
    pub fn from_resolved(
        job: &ScrapeConfig,
        target: &ResolvedTarget,
        metric_relabel: Arc<Vec<Relabeler>>,
        client: reqwest::Client,
        health: SharedHealth,
    ) -> Self {
        let instance = target
            .labels
            .get("instance")
            .cloned()
            .unwrap_or_else(|| target.url.clone());
        Self {
            name: format!("scrape/{}/{}", job.job, instance),
            job: job.job.clone(),
            instance,
            url: target.url.clone(),
            interval: job.interval,
            timeout: job.timeout,
            target_labels: target
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            honor_labels: job.honor_labels,
            sample_limit: job.sample_limit,
            metric_relabel,
            client,
            previous: HashMap::new(),
            reported: false,
            health,
        }
    }

    /// The outcome of the last scrape, shared with the targets view.
    pub fn health(&self) -> SharedHealth {
        self.health.clone()
    }

    /// Staleness markers for every series of the last scrape and for the
    /// report series, at `ts_ms`; for when the target goes away. Forgets
    /// them, so a second call returns nothing.
    pub fn end_of_run_markers(&mut self, ts_ms: i64) -> Vec<Sample> {
        let mut out: Vec<Sample> = self
            .previous
            .drain()
            .map(|(_, key)| Sample {
                series: key,
                ts_ms,
                value: stale_nan(),
            })
            .collect();
        if std::mem::take(&mut self.reported) {
            out.extend(
                REPORT_SERIES
                    .iter()
                    .map(|name| self.synthetic(name, ts_ms, stale_nan())),
            );
        }
        out
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

    /// Adds the target labels. With `honor_labels`, exposed labels win;
    /// otherwise exposed labels that clash are renamed `exported_<name>`.
    fn relabel(&self, sample: &mut Sample) {
        let labels = &mut sample.series.labels;
        if self.honor_labels {
            for (name, value) in self.target_labels.iter() {
                if labels.get(name).is_none() {
                    labels.insert(name, value);
                }
            }
            return;
        }
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

    /// Applies `metric_relabel_configs`; `None` when the sample is dropped.
    fn metric_relabel(&self, sample: Sample) -> Option<Sample> {
        if self.metric_relabel.is_empty() {
            return Some(sample);
        }
        let mut set: LabelSet = sample
            .series
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        set.insert("__name__".to_string(), sample.series.metric);
        if !process(&self.metric_relabel, &mut set) {
            return None;
        }
        let name = set.remove("__name__").filter(|n| !n.is_empty())?;
        Some(Sample::new(
            name,
            set.into_iter().collect(),
            sample.ts_ms,
            sample.value,
        ))
    }

    /// Staleness markers for the previous scrape's series not in `current`.
    fn stale_since(&self, current: &HashMap<u64, SeriesKey>, ts_ms: i64) -> Vec<Sample> {
        self.previous
            .iter()
            .filter(|(id, _)| !current.contains_key(id))
            .map(|(_, key)| Sample {
                series: key.clone(),
                ts_ms,
                value: stale_nan(),
            })
            .collect()
    }

    fn synthetic(&self, name: &str, ts_ms: i64, value: f64) -> Sample {
        Sample::new(name, self.target_labels.clone(), ts_ms, value)
    }

    fn set_health(&self, start_ms: i64, duration: f64, error: Option<String>) {
        let mut h = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        h.last_scrape = chrono::DateTime::from_timestamp_millis(start_ms);
        h.last_duration = duration;
        h.state = if error.is_some() {
            HealthState::Down
        } else {
            HealthState::Up
        };
        h.last_error = error.unwrap_or_default();
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
        let mut scraped = 0usize;
        let result = result.and_then(|mut samples| {
            scraped = samples.len();
            for s in &mut samples {
                self.relabel(s);
            }
            let samples: Vec<Sample> = samples
                .into_iter()
                .filter_map(|s| self.metric_relabel(s))
                .collect();
            if self.sample_limit > 0 && samples.len() > self.sample_limit {
                return Err((
                    FailureReason::SampleLimit,
                    format!(
                        "sample limit exceeded: {} samples, limit {}",
                        samples.len(),
                        self.sample_limit
                    ),
                ));
            }
            Ok(samples)
        });
        let duration = started.elapsed().as_secs_f64();
        let (mut samples, up, added, post_relabel) = match result {
            Ok(mut samples) => {
                let current: HashMap<u64, SeriesKey> = samples
                    .iter()
                    .map(|s| (s.series.id(), s.series.clone()))
                    .collect();
                let added = current
                    .keys()
                    .filter(|id| !self.previous.contains_key(id))
                    .count();
                let post_relabel = samples.len();
                samples.extend(self.stale_since(&current, start_ms));
                self.previous = current;
                self.set_health(start_ms, duration, None);
                (samples, 1.0, added, post_relabel)
            }
            Err((reason, error)) => {
                self.set_health(start_ms, duration, Some(error.clone()));
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
                // A failed scrape is an empty one: every series goes stale.
                let stale = self.stale_since(&HashMap::new(), start_ms);
                self.previous.clear();
                if reason != FailureReason::SampleLimit {
                    scraped = 0;
                }
                (stale, 0.0, 0, 0)
            }
        };
        samples.extend([
            self.synthetic("up", start_ms, up),
            self.synthetic("scrape_duration_seconds", start_ms, duration),
            self.synthetic("scrape_samples_scraped", start_ms, scraped as f64),
            self.synthetic(
                "scrape_samples_post_metric_relabeling",
                start_ms,
                post_relabel as f64,
            ),
            self.synthetic("scrape_series_added", start_ms, added as f64),
        ]);
        self.reported = true;
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
            ..ScrapeConfig::default()
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

    /// Serves `/metrics` with whatever `body` holds at the time.
    async fn dynamic_server(body: &str) -> (String, Arc<Mutex<String>>) {
        let body = Arc::new(Mutex::new(body.to_string()));
        let b = body.clone();
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let b = b.clone();
                async move { b.lock().expect("lock").clone() }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        (addr, body)
    }

    fn stale(samples: &[Sample]) -> Vec<String> {
        let mut v: Vec<String> = samples
            .iter()
            .filter(|s| is_stale_marker(s.value))
            .map(|s| s.series.to_string())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn disappearing_series_and_failed_scrapes_get_staleness_markers() {
        let (addr, body) = dynamic_server("a 1\nb 2\n").await;
        let mut t = ScrapeTarget::new(&config("stale", "/metrics"), &addr, reqwest::Client::new());
        assert!(stale(&t.collect().await).is_empty());
        *body.lock().expect("lock") = "a 1\n".to_string();
        let samples = t.collect().await;
        let markers: Vec<&Sample> = samples.iter().filter(|s| s.value.is_nan()).collect();
        assert_eq!(markers.len(), 1, "{samples:?}");
        assert_eq!(markers[0].series.metric, "b");
        assert_eq!(markers[0].value.to_bits(), 0x7ff0_0000_0000_0002);
        assert_eq!(
            markers[0].series.labels.get("instance"),
            Some(addr.as_str())
        );
        assert_eq!(value(&samples, "up"), 1.0);
        // Not stale twice.
        assert!(stale(&t.collect().await).is_empty());
        // A failed scrape makes every series stale, but not `up`.
        *body.lock().expect("lock") = "garbage {".to_string();
        let samples = t.collect().await;
        assert_eq!(value(&samples, "up"), 0.0);
        assert_eq!(stale(&samples).len(), 1);
        assert!(
            stale(&samples)[0].starts_with("a{"),
            "{:?}",
            stale(&samples)
        );
        // The target going away: its last series and the report series.
        *body.lock().expect("lock") = "c 1\n".to_string();
        t.collect().await;
        let end = t.end_of_run_markers(42);
        let names: Vec<&str> = end.iter().map(|s| s.series.metric.as_str()).collect();
        assert_eq!(names.len(), 6, "{names:?}");
        assert!(names.contains(&"c") && names.contains(&"up"));
        assert!(
            end.iter()
                .all(|s| is_stale_marker(s.value) && s.ts_ms == 42)
        );
        assert!(t.end_of_run_markers(43).is_empty());
    }

    #[tokio::test]
    async fn over_sample_limit_the_whole_scrape_fails() {
        let (addr, _) = dynamic_server("a 1\nb 2\nc 3\n").await;
        let mut job = config("limit", "/metrics");
        job.sample_limit = 2;
        let before = errors("limit", "sample_limit");
        let mut t = ScrapeTarget::new(&job, &addr, reqwest::Client::new());
        let samples = t.collect().await;
        assert_eq!(value(&samples, "up"), 0.0);
        assert_eq!(samples.len(), 5, "only report series: {samples:?}");
        assert_eq!(value(&samples, "scrape_samples_scraped"), 3.0);
        assert_eq!(errors("limit", "sample_limit"), before + 1);
        let h = t.health().lock().expect("lock").clone();
        assert_eq!(h.state, HealthState::Down);
        assert!(h.last_error.contains("sample limit"), "{}", h.last_error);
        // Metric relabelling that drops one brings it under the limit.
        job.metric_relabel_configs = vec![crate::relabel::RelabelConfig {
            source_labels: vec!["__name__".into()],
            regex: "c".into(),
            action: crate::relabel::Action::Drop,
            ..Default::default()
        }];
        let mut t = ScrapeTarget::new(&job, &addr, reqwest::Client::new());
        let samples = t.collect().await;
        assert_eq!(value(&samples, "up"), 1.0);
        assert!(
            find(&samples, "c").is_empty(),
            "metric_relabel drop removes c"
        );
        assert_eq!(value(&samples, "scrape_samples_scraped"), 3.0);
        assert_eq!(
            value(&samples, "scrape_samples_post_metric_relabeling"),
            2.0
        );
        assert_eq!(t.health().lock().expect("lock").state, HealthState::Up);
    }

    #[tokio::test]
    async fn metric_relabel_rewrites_names_and_labels() {
        let (addr, _) = dynamic_server("req{code=\"200\",tmp=\"x\"} 1\n").await;
        let mut job = config("mrl", "/metrics");
        job.metric_relabel_configs = serde_yaml::from_str(
            "- source_labels: [__name__]\n  target_label: __name__\n  replacement: app_$1\n- regex: tmp\n  action: labeldrop\n",
        )
        .expect("rules");
        let mut t = ScrapeTarget::new(&job, &addr, reqwest::Client::new());
        let samples = t.collect().await;
        let s = find(&samples, "app_req");
        assert_eq!(s.len(), 1, "{samples:?}");
        assert_eq!(s[0].series.labels.get("tmp"), None);
        assert_eq!(s[0].series.labels.get("code"), Some("200"));
        assert_eq!(s[0].series.labels.get("job"), Some("mrl"));
    }

    #[tokio::test]
    async fn honor_labels_keeps_exposed_labels() {
        let (addr, _) = dynamic_server("m{job=\"exposed\",env=\"\"} 1\nn 2\n").await;
        let mut job = config("honor", "/metrics");
        job.honor_labels = true;
        let mut t = ScrapeTarget::new(&job, &addr, reqwest::Client::new());
        let samples = t.collect().await;
        let m = find(&samples, "m")[0];
        assert_eq!(m.series.labels.get("job"), Some("exposed"));
        assert_eq!(m.series.labels.get("exported_job"), None);
        assert_eq!(m.series.labels.get("env"), Some("test"), "empty is absent");
        assert_eq!(m.series.labels.get("instance"), Some(addr.as_str()));
        assert_eq!(
            find(&samples, "n")[0].series.labels.get("job"),
            Some("honor")
        );
        job.honor_labels = false;
        let mut t = ScrapeTarget::new(&job, &addr, reqwest::Client::new());
        let samples = t.collect().await;
        let m = find(&samples, "m")[0];
        assert_eq!(m.series.labels.get("job"), Some("honor"));
        assert_eq!(m.series.labels.get("exported_job"), Some("exposed"));
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
