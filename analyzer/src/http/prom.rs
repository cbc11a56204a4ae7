//! Prometheus' HTTP query API over stored samples: `/api/v1/query`,
//! `/query_range`, `/series`, `/labels`, `/label/{name}/values`, plus the
//! stubs Grafana probes (`/metadata`, `/status/buildinfo`,
//! `/query_exemplars`). GET with URL parameters or POST with a form body.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use promql_parser::label::Matchers;
use promql_parser::parser::Expr;
use serde_json::{Value as Json, json};

use super::ApiState;
use crate::AnalyzerError;
use crate::metrics::ERRORS;
use crate::promql::value::valid_label_name;
use crate::promql::{Engine, LabelSet, Value, parse, selector_matchers};

/// Request parameters: URL query string plus a form body.
struct Params(Vec<(String, String)>);

impl Params {
    fn read(raw: Option<String>, headers: &HeaderMap, body: &[u8]) -> Self {
        let mut all: Vec<(String, String)> = raw
            .as_deref()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default();
        let is_form = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if is_form || (!body.is_empty() && headers.get(CONTENT_TYPE).is_none()) {
            all.extend(
                serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default(),
            );
        }
        Self(all)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn bad_data(message: impl Into<String>) -> Response {
    ERRORS.with_label_values(&["http", "bad_request"]).inc();
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"status": "error", "errorType": "bad_data", "error": message.into()})),
    )
        .into_response()
}

fn failure(e: AnalyzerError) -> Response {
    let (status, kind) = match &e {
        AnalyzerError::PromQl {
            execution: false, ..
        } => (StatusCode::BAD_REQUEST, "bad_data"),
        AnalyzerError::PromQl {
            execution: true, ..
        } => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
        _ if e.is_user_error() => (StatusCode::BAD_REQUEST, "bad_data"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    ERRORS.with_label_values(&["http", "promql"]).inc();
    (
        status,
        axum::Json(json!({"status": "error", "errorType": kind, "error": e.to_string()})),
    )
        .into_response()
}

fn success(data: Json) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// Parses a time: RFC 3339 or Unix seconds (float).
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.trim().parse::<f64>()
        && f.is_finite()
    {
        return Ok((f * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("cannot parse {s:?} to a valid timestamp"))
}

/// Parses a step or duration: float seconds or a Prometheus duration (`15s`, `1m30s`).
pub(crate) fn parse_step(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let ms = if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(format!("cannot parse {s:?} to a valid duration"));
        }
        (f * 1000.0).round() as i64
    } else {
        promql_parser::util::parse_duration(s)
            .map_err(|_| format!("cannot parse {s:?} to a valid duration"))?
            .as_millis() as i64
    };
    if ms <= 0 {
        return Err(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        );
    }
    Ok(ms)
}

/// Unix seconds as Prometheus writes them (integer when whole).
#[cfg(test)]
fn secs(ms: i64) -> Json {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// Writes `ms` as Unix seconds as Prometheus does (integer when whole).
fn write_secs(out: &mut Vec<u8>, ms: i64) {
    use std::io::Write as _;
    if ms % 1000 == 0 {
        let _ = write!(out, "{}", ms / 1000);
    } else {
        let _ = serde_json::to_writer(&mut *out, &(ms as f64 / 1000.0));
    }
}

/// Writes `[<secs>, "<value>"]`, the value as `format_value` formats it.
fn write_point(out: &mut Vec<u8>, ms: i64, v: f64) {
    use std::io::Write as _;
    out.push(b'[');
    write_secs(out, ms);
    let _ = if v.is_nan() {
        write!(out, ",\"NaN\"]")
    } else if v == f64::INFINITY {
        write!(out, ",\"+Inf\"]")
    } else if v == f64::NEG_INFINITY {
        write!(out, ",\"-Inf\"]")
    } else {
        write!(out, ",\"{v}\"]")
    };
}

/// The success answer of a query, written straight to bytes: a range
/// query's matrix holds thousands of points, not worth a JSON tree. The
/// same JSON as `success(result_json(t, value))`.
fn query_answer(t: i64, value: &Value) -> Response {
    let points = match value {
        Value::Matrix(m) => m.iter().map(|s| s.points.len() + 1).sum(),
        Value::Vector(v) => v.len(),
        _ => 1,
    };
    let mut out: Vec<u8> = Vec::with_capacity(64 + points * 32);
    out.extend_from_slice(b"{\"status\":\"success\",\"data\":{\"resultType\":\"");
    out.extend_from_slice(value.type_name().as_bytes());
    out.extend_from_slice(b"\",\"result\":");
    let labels = |out: &mut Vec<u8>, metric: &LabelSet| {
        out.extend_from_slice(b"{\"metric\":");
        let _ = serde_json::to_writer(&mut *out, metric);
    };
    match value {
        Value::Scalar(v) => write_point(&mut out, t, *v),
        Value::String(s) => {
            out.push(b'[');
            write_secs(&mut out, t);
            out.push(b',');
            let _ = serde_json::to_writer(&mut out, s);
            out.push(b']');
        }
        Value::Vector(v) => write_list(&mut out, v, |out, s| {
            labels(out, &s.metric);
            out.extend_from_slice(b",\"value\":");
            write_point(out, t, s.v);
            out.push(b'}');
        }),
        Value::Matrix(m) => write_list(&mut out, m, |out, s| {
            labels(out, &s.metric);
            out.extend_from_slice(b",\"values\":");
            write_list(out, &s.points, |out, &(pt, pv)| write_point(out, pt, pv));
            out.push(b'}');
        }),
    }
    out.extend_from_slice(b"}}");
    ([(CONTENT_TYPE, "application/json")], out).into_response()
}

/// Writes `items` as a JSON array, each written by `each`.
fn write_list<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

#[cfg(test)]
fn result_json(t: i64, value: &Value) -> Json {
    match value {
        Value::Scalar(v) => {
            json!({"resultType": "scalar", "result": [secs(t), crate::promql::value::format_value(*v)]})
        }
        Value::String(s) => json!({"resultType": "string", "result": [secs(t), s]}),
        Value::Vector(v) => json!({
            "resultType": "vector",
            "result": v.iter().map(|s| json!({
                "metric": s.metric,
                "value": [secs(t), crate::promql::value::format_value(s.v)],
            })).collect::<Vec<_>>(),
        }),
        Value::Matrix(m) => json!({
            "resultType": "matrix",
            "result": m.iter().map(|s| json!({
                "metric": s.metric,
                "values": s.points.iter().map(|(t, v)| json!([secs(*t), crate::promql::value::format_value(*v)])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
    }
}

async fn query(
    State(s): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::read(raw, &headers, &body);
    let Some(q) = p.get("query") else {
        return bad_data("invalid parameter \"query\": missing");
    };
    let t = match p.get("time").map(parse_time).transpose() {
        Ok(t) => t.unwrap_or_else(now_ms),
        Err(e) => return bad_data(format!("invalid parameter \"time\": {e}")),
    };
    match Engine::default().instant(s.storage.as_ref(), q, t).await {
        Ok(r) => query_answer(r.t, &r.value),
        Err(e) => failure(e),
    }
}

async fn query_range(
    State(s): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::read(raw, &headers, &body);
    let Some(q) = p.get("query") else {
        return bad_data("invalid parameter \"query\": missing");
    };
    let mut times = [0i64; 2];
    for (i, name) in ["start", "end"].iter().enumerate() {
        match p.get(name).map(parse_time) {
            Some(Ok(t)) => times[i] = t,
            Some(Err(e)) => return bad_data(format!("invalid parameter \"{name}\": {e}")),
            None => return bad_data(format!("invalid parameter \"{name}\": missing")),
        }
    }
    let step = match p.get("step").map(parse_step) {
        Some(Ok(s)) => s,
        Some(Err(e)) => return bad_data(format!("invalid parameter \"step\": {e}")),
        None => return bad_data("invalid parameter \"step\": missing"),
    };
    match Engine::default()
        .range(s.storage.as_ref(), q, times[0], times[1], step)
        .await
    {
        Ok(r) => query_answer(r.t, &r.value),
        Err(e) => failure(e),
    }
}

/// The selectors of `match[]` (none given: match everything).
fn match_params(p: &Params) -> Result<Vec<Matchers>, String> {
    let mut out = Vec::new();
    for m in p.all("match[]") {
        match parse(m) {
            Ok(Expr::VectorSelector(vs)) => out.push(selector_matchers(&vs)),
            Ok(_) => {
                return Err(format!(
                    "invalid parameter \"match[]\": {m} is not a series selector"
                ));
            }
            Err(e) => return Err(format!("invalid parameter \"match[]\": {e}")),
        }
    }
    Ok(out)
}

fn span(p: &Params) -> Result<(Option<i64>, Option<i64>), String> {
    let start = p.get("start").map(parse_time).transpose()?;
    let end = p.get("end").map(parse_time).transpose()?;
    Ok((start, end))
}

/// Label sets of the series matching `match[]` (every series without it).
async fn matching_series(
    s: &ApiState,
    p: &Params,
    required: bool,
) -> Result<BTreeSet<LabelSet>, Response> {
    let selectors = match_params(p).map_err(bad_data)?;
    if required && selectors.is_empty() {
        return Err(bad_data("no match[] parameter provided"));
    }
    let (start, end) = span(p).map_err(bad_data)?;
    let selectors = if selectors.is_empty() {
        vec![Matchers::empty()]
    } else {
        selectors
    };
    let mut out = BTreeSet::new();
    for m in &selectors {
        let series = s
            .storage
            .select_series(m, start, end)
            .await
            .map_err(failure)?;
        out.extend(series.into_iter().map(|(l, _)| l));
    }
    Ok(out)
}

async fn series(
    State(s): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::read(raw, &headers, &body);
    match matching_series(&s, &p, true).await {
        Ok(set) => success(json!(set.into_iter().collect::<Vec<_>>())),
        Err(r) => r,
    }
}

async fn labels(
    State(s): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::read(raw, &headers, &body);
    match matching_series(&s, &p, false).await {
        Ok(set) => {
            let names: BTreeSet<&String> = set.iter().flat_map(|l| l.keys()).collect();
            success(json!(names))
        }
        Err(r) => r,
    }
}

async fn label_values(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !valid_label_name(&name) {
        return bad_data(format!("invalid label name: {name:?}"));
    }
    let p = Params::read(raw, &headers, &body);
    match matching_series(&s, &p, false).await {
        Ok(set) => {
            let values: BTreeSet<&String> = set.iter().filter_map(|l| l.get(&name)).collect();
            success(json!(values))
        }
        Err(r) => r,
    }
}

async fn metadata() -> Response {
    success(json!(BTreeMap::<String, Json>::new()))
}

async fn exemplars() -> Response {
    success(json!([]))
}

async fn buildinfo() -> Response {
    success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "application": "vigie",
    }))
}

/// The Prometheus API routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/query_exemplars", get(exemplars).post(exemplars))
        .route("/api/v1/status/buildinfo", get(buildinfo))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends one HTTP/1.0 request to the analyzer router; returns status and JSON.
    async fn call(router: Router, req: String) -> (u16, Json) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        conn.write_all(req.as_bytes()).await.expect("write");
        let mut resp = Vec::new();
        conn.read_to_end(&mut resp).await.expect("read");
        server.abort();
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let body = text.split("\r\n\r\n").nth(1).expect("body");
        (status, serde_json::from_str(body).expect("json body"))
    }

    #[tokio::test]
    async fn serves_the_query_api() {
        use std::sync::Arc;
        use std::time::Duration;

        use vigie_model::schema::samples_to_batch;
        use vigie_model::{Labels, Sample};

        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(crate::storage::Storage::open(dir.path(), 1).expect("open"));
        let samples: Vec<Sample> = (0..5)
            .flat_map(|i| {
                ["a", "b"]
                    .map(|job| Sample::new("up", Labels::new().with("job", job), i * 15_000, 1.0))
            })
            .collect();
        storage.append(samples_to_batch(&samples).expect("batch"));
        let rules = Arc::new(crate::rules::RuleManager::new(
            Vec::new(),
            storage.clone(),
            Arc::new(vigie_bus::memory::MemoryBus::new(16)),
            Duration::from_secs(300),
            Duration::from_secs(60),
            String::new(),
        ));
        let router = super::super::router(storage, rules);
        let get = |path: &str| format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");

        let (status, v) = call(
            router.clone(),
            get("/api/v1/query?query=sum%28up%29&time=60"),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v,
            json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [60, "2"]}]}})
        );

        let body = "query=up%7Bjob%3D%22a%22%7D&start=0&end=60&step=30s";
        let post = format!(
            "POST /api/v1/query_range HTTP/1.0\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (status, v) = call(router.clone(), post).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"]["resultType"], "matrix");
        assert_eq!(
            v["data"]["result"][0]["metric"],
            json!({"__name__": "up", "job": "a"})
        );
        assert_eq!(
            v["data"]["result"][0]["values"],
            json!([[0, "1"], [30, "1"], [60, "1"]])
        );

        let (status, v) = call(router.clone(), get("/api/v1/label/job/values")).await;
        assert_eq!(status, 200);
        assert_eq!(v["data"], json!(["a", "b"]));
        let (_, v) = call(router.clone(), get("/api/v1/labels")).await;
        assert_eq!(v["data"], json!(["__name__", "job"]));
        let (_, v) = call(
            router.clone(),
            get("/api/v1/series?match[]=up%7Bjob%3D%22b%22%7D"),
        )
        .await;
        assert_eq!(v["data"], json!([{"__name__": "up", "job": "b"}]));

        let (status, v) = call(router.clone(), get("/api/v1/query?query=sum%28")).await;
        assert_eq!(status, 400);
        assert_eq!(v["errorType"], "bad_data");
        let (status, v) = call(router.clone(), get("/api/v1/query?query=info%28up%29")).await;
        assert_eq!(status, 400);
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("info")),
            "{v}"
        );
        let (status, _) = call(router, get("/api/v1/status/buildinfo")).await;
        assert_eq!(status, 200);
    }

    #[test]
    fn parses_times_and_steps() {
        assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_step("15s"), Ok(15_000));
        assert_eq!(parse_step("1m30s"), Ok(90_000));
        assert_eq!(parse_step("0.5"), Ok(500));
        assert!(parse_step("0").is_err());
        assert!(parse_step("-1").is_err());
    }

    #[tokio::test]
    async fn query_answers_are_the_json_of_result_json() {
        let metric: LabelSet = [
            ("__name__".to_string(), "up".to_string()),
            ("job".to_string(), "a \"b\"\n\u{e9}".to_string()),
        ]
        .into();
        let values = [
            Value::Scalar(0.1),
            Value::String("x\"y".into()),
            Value::Vector(vec![crate::promql::Sample {
                metric: metric.clone(),
                t: 0,
                v: -2.5e-7,
                drop_name: false,
            }]),
            Value::Vector(Vec::new()),
            Value::Matrix(vec![
                crate::promql::Series {
                    metric: metric.clone(),
                    points: vec![
                        (1_000, 1.0),
                        (1_500, f64::NAN),
                        (2_000, f64::INFINITY),
                        (2_001, f64::NEG_INFINITY),
                        (3_000, 1e21),
                        (-4_250, 123_456.789),
                    ],
                    drop_name: false,
                },
                crate::promql::Series {
                    metric: LabelSet::new(),
                    points: Vec::new(),
                    drop_name: false,
                },
            ]),
        ];
        for (t, v) in [(1_500, &values[0]), (2_000, &values[1])]
            .into_iter()
            .chain(values[2..].iter().map(|v| (7_000, v)))
        {
            let response = query_answer(t, v);
            assert_eq!(
                response.headers().get(CONTENT_TYPE).map(|h| h.as_bytes()),
                Some(&b"application/json"[..])
            );
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            let got: Json = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(
                got,
                json!({"status": "success", "data": result_json(t, v)}),
                "{v:?}"
            );
        }
    }

    #[test]
    fn formats_results_like_prometheus() {
        let mut metric = LabelSet::new();
        metric.insert("job".into(), "a".into());
        let v = Value::Vector(vec![crate::promql::Sample {
            metric,
            t: 0,
            v: 2.5,
            drop_name: false,
        }]);
        assert_eq!(
            result_json(1_500, &v),
            json!({"resultType": "vector", "result": [{"metric": {"job": "a"}, "value": [1.5, "2.5"]}]})
        );
        assert_eq!(
            result_json(2_000, &Value::Scalar(f64::INFINITY)),
            json!({"resultType": "scalar", "result": [2, "+Inf"]})
        );
    }
}
