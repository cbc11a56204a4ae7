//! Series selection for PromQL: files through their series index
//! (module `index`), the in-memory head scanned in Rust, points grouped by
//! series.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, Float64Array, MapArray, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use object_store::ObjectStore;
use promql_parser::label::Matchers;
use vigie_model::schema::{col, column, labels_at};

use super::decoded::Points;
use super::index::IndexCache;
use super::{DataFile, Storage};
use crate::AnalyzerError;
use crate::promql::{LabelSet, Queryable, Selected, matches, name_equal};

fn schema_err(what: &str) -> AnalyzerError {
    vigie_model::ModelError::Schema(format!("select: column `{what}` missing or mistyped")).into()
}

/// Points of one series from one file or the head.
enum Pts {
    /// Read for this query.
    Owned(Vec<(i64, f64)>),
    /// A range of cached decoded points (module `decoded`).
    Shared(Points, Range<usize>),
}

impl Pts {
    fn as_slice(&self) -> &[(i64, f64)] {
        match self {
            Pts::Owned(v) => v,
            Pts::Shared(p, r) => &p[r.clone()],
        }
    }
}

/// Series of one file or of the head: id, labels, points in `[start, end]`.
type Found = Vec<(u64, Arc<LabelSet>, Pts)>;

/// The matching series of each of `files` (with the tag it comes with),
/// through their indexes and the decoded points cache.
async fn select_files(
    store: &Arc<dyn ObjectStore>,
    cache: &IndexCache,
    files: &[(usize, DataFile)],
    matchers: &Matchers,
    start: i64,
    end: i64,
) -> Result<Vec<(usize, Found)>, AnalyzerError> {
    let name = name_equal(matchers);
    let mut all = Vec::with_capacity(files.len());
    for (tag, file) in files {
        let mut found = Found::new();
        let index = cache.get(store, file).await?;
        // With a metric name, only that name's series are matched.
        let wanted: Vec<usize> = match name {
            Some(n) => index
                .named(n)
                .iter()
                .copied()
                .filter(|&i| matches(matchers, &index.series[i].labels))
                .collect(),
            None => (0..index.series.len())
                .filter(|&i| matches(matchers, &index.series[i].labels))
                .collect(),
        };
        if !cache.decoded.enabled() {
            let pairs: Vec<(usize, usize)> = wanted.iter().map(|&i| (i, i)).collect();
            for (i, points) in index.read(store, file, &pairs, start, end).await? {
                let s = &index.series[i];
                found.push((s.id, s.labels.clone(), Pts::Owned(points)));
            }
            all.push((*tag, found));
            continue;
        }
        let mut points: Vec<Option<Points>> = wanted
            .iter()
            .map(|&i| cache.decoded.get((index.id, i)))
            .collect();
        // The whole series of the misses, decoded once and kept.
        let misses: Vec<(usize, usize)> = wanted
            .iter()
            .enumerate()
            .filter(|(k, _)| points[*k].is_none())
            .map(|(k, &i)| (i, k))
            .collect();
        if !misses.is_empty() {
            for (k, read) in index.read(store, file, &misses, i64::MIN, i64::MAX).await? {
                let read: Points = read.into();
                cache.decoded.insert((index.id, wanted[k]), read.clone());
                points[k] = Some(read);
            }
        }
        for (&i, p) in wanted.iter().zip(points) {
            let Some(p) = p else { continue };
            let lo = p.partition_point(|x| x.0 < start);
            let hi = p.partition_point(|x| x.0 <= end);
            let s = &index.series[i];
            found.push((s.id, s.labels.clone(), Pts::Shared(p, lo..hi.max(lo))));
        }
        all.push((*tag, found));
    }
    Ok(all)
}

/// The matching series of in-memory batches (metrics schema).
fn select_head(
    batches: &[RecordBatch],
    matchers: &Matchers,
    start: i64,
    end: i64,
) -> Result<Found, AnalyzerError> {
    let name = name_equal(matchers);
    // series id -> index in `out`, or None when the matchers reject it.
    let mut index: HashMap<u64, Option<usize>> = HashMap::new();
    let mut out = Found::new();
    for batch in batches {
        let metric = cast(
            batch
                .column_by_name(col::METRIC)
                .ok_or_else(|| schema_err(col::METRIC))?,
            &DataType::Utf8,
        )?;
        let metric = metric
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| schema_err(col::METRIC))?;
        let labels = column::<MapArray>(batch, col::LABELS)?;
        let ids = column::<UInt64Array>(batch, col::SERIES_ID)?;
        let ts = column::<TimestampMillisecondArray>(batch, col::TS)?;
        let values = column::<Float64Array>(batch, col::VALUE)?;
        for row in 0..batch.num_rows() {
            let t = ts.value(row);
            if t < start || t > end {
                continue;
            }
            let id = ids.value(row);
            let slot = match index.get(&id) {
                Some(slot) => *slot,
                None => {
                    let named = !metric.is_null(row);
                    let slot = if name.is_some_and(|n| !named || metric.value(row) != n) {
                        None
                    } else {
                        let mut set: LabelSet = labels_at(labels, row)?
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect();
                        if named {
                            set.insert(
                                crate::promql::value::NAME.into(),
                                metric.value(row).to_string(),
                            );
                        }
                        matches(matchers, &set).then(|| {
                            out.push((id, Arc::new(set), Pts::Owned(Vec::new())));
                            out.len() - 1
                        })
                    };
                    index.insert(id, slot);
                    slot
                }
            };
            if let Some(i) = slot
                && let Pts::Owned(points) = &mut out[i].2
            {
                points.push((t, values.value(row)));
            }
        }
    }
    Ok(out)
}

impl Storage {
    /// Series matching `matchers` with their points in `[start_ms, end_ms]`
    /// (both optional), labels including `__name__`, points in time order.
    ///
    /// Files whose time range (from their name) misses the span are
    /// skipped unopened; the others are read through their series index
    /// (module `index`): the matchers are applied to each file's series
    /// once, and only the matching series' `ts` and value columns are
    /// read. Files are read concurrently, a task per core.
    pub async fn select_series(
        &self,
        matchers: &Matchers,
        start_ms: Option<i64>,
        end_ms: Option<i64>,
    ) -> Result<Selected, AnalyzerError> {
        let (files, head) = self.snapshot();
        self.series_index.retain(&files);
        let files = super::files_overlapping(files, start_ms, end_ms);
        let (start, end) = (start_ms.unwrap_or(i64::MIN), end_ms.unwrap_or(i64::MAX));
        let groups = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(files.len());
        let mut tasks = Vec::with_capacity(groups);
        for g in 0..groups {
            // Interleaved, so each group gets files from the whole span.
            let mine: Vec<(usize, DataFile)> = files
                .iter()
                .cloned()
                .enumerate()
                .skip(g)
                .step_by(groups)
                .collect();
            let cache = self.series_index.clone();
            let store = self.store.store.object();
            let matchers = matchers.clone();
            tasks.push(tokio::spawn(async move {
                select_files(&store, &cache, &mine, &matchers, start, end).await
            }));
        }
        let mut parts: Vec<(usize, Found)> = Vec::with_capacity(files.len() + 1);
        for task in tasks {
            parts.extend(task.await.map_err(|e| AnalyzerError::Eval {
                what: "series selection".into(),
                message: e.to_string(),
            })??);
        }
        // Files in time order, then the head.
        parts.sort_by_key(|p| p.0);
        parts.push((files.len(), select_head(&head, matchers, start, end)?));
        // Each series' points from every part, in one allocation.
        let mut index: HashMap<u64, usize> = HashMap::new();
        let mut sizes: Vec<usize> = Vec::new();
        for (id, _, points) in parts.iter().flat_map(|p| &p.1) {
            let i = *index.entry(*id).or_insert_with(|| {
                sizes.push(0);
                sizes.len() - 1
            });
            sizes[i] += points.as_slice().len();
        }
        index.clear();
        let mut out: Selected = Vec::with_capacity(sizes.len());
        for (id, labels, points) in parts.iter().flat_map(|p| &p.1) {
            let i = *index.entry(*id).or_insert_with(|| {
                out.push((
                    labels.as_ref().clone(),
                    Vec::with_capacity(sizes[out.len()]),
                ));
                out.len() - 1
            });
            out[i].1.extend_from_slice(points.as_slice());
        }
        for (_, points) in &mut out {
            if !points.windows(2).all(|w| w[0].0 < w[1].0) {
                points.sort_by_key(|p| p.0);
                points.dedup_by_key(|p| p.0);
            }
        }
        out.retain(|(_, points)| !points.is_empty());
        Ok(out)
    }
}

#[async_trait]
impl Queryable for Storage {
    async fn select(
        &self,
        matchers: &Matchers,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Selected, AnalyzerError> {
        self.select_series(matchers, Some(start_ms), Some(end_ms))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use promql_parser::label::{MatchOp, Matcher, Matchers};

    use vigie_model::schema::samples_to_batch;
    use vigie_model::{Labels, Sample};

    use crate::promql::{Engine, LabelSet, Value, matches};
    use crate::storage::Storage;

    /// What `select_series` should return, from the appended points.
    fn expected(
        all: &BTreeMap<(String, String), Vec<(i64, f64)>>,
        matchers: &Matchers,
        start: i64,
        end: i64,
    ) -> Vec<(LabelSet, Vec<(i64, f64)>)> {
        let mut out: Vec<_> = all
            .iter()
            .map(|((name, job), points)| {
                let labels: LabelSet = [
                    ("__name__".to_string(), name.clone()),
                    ("job".to_string(), job.clone()),
                ]
                .into();
                let points: Vec<_> = points
                    .iter()
                    .copied()
                    .filter(|p| p.0 >= start && p.0 <= end)
                    .collect();
                (labels, points)
            })
            .filter(|(labels, points)| !points.is_empty() && matches(matchers, labels))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    const H: i64 = 3_600_000;

    /// Compares `select_series` with [`expected`] for every selector over
    /// spans across windows, inside one, and past the data.
    async fn check(
        storage: &Storage,
        all: &BTreeMap<(String, String), Vec<(i64, f64)>>,
        selectors: &[Matchers],
    ) {
        for m in selectors {
            for (start, end) in [
                (0, 5 * H),
                (H + 7_000, 3 * H + 15_000),
                (4 * H, 4 * H + 300_000),
                (6 * H, 7 * H),
            ] {
                let mut got = storage
                    .select_series(m, Some(start), Some(end))
                    .await
                    .expect("select");
                got.sort_by(|a, b| a.0.cmp(&b.0));
                assert_eq!(got, expected(all, m, start, end), "{m} in [{start}, {end}]");
            }
        }
    }

    #[tokio::test]
    async fn select_series_reads_flushed_compacted_and_head_points_through_the_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 1).expect("open"));
        storage.set_auto_compact(false);
        let mut rng = fastrand::Rng::with_seed(4);
        let mut all: BTreeMap<(String, String), Vec<(i64, f64)>> = BTreeMap::new();
        // 5 h at 15 s: three 2 h windows, flushed every 20 scrapes, with
        // decimal, integer and non-decimal values.
        for (step, t) in (0..5 * H).step_by(15_000).enumerate() {
            let mut samples = Vec::new();
            for name in ["up", "cpu_seconds_total", "temp"] {
                for job in ["a", "b", "c", "d"] {
                    let v = match name {
                        "up" => 1.0,
                        "cpu_seconds_total" => (step as f64) * 0.25 + rng.f64().round(),
                        _ => rng.f64() * 100.0,
                    };
                    samples.push(Sample::new(name, Labels::new().with("job", job), t, v));
                    all.entry((name.into(), job.into()))
                        .or_default()
                        .push((t, v));
                }
            }
            storage.append(samples_to_batch(&samples).expect("batch"));
            if step % 20 == 19 {
                storage.flush().expect("flush");
            }
        }
        let eq = |name: &str, value: &str| Matcher::new(MatchOp::Equal, name, value);
        let re = |name: &str, value: &str| {
            Matcher::new(
                MatchOp::Re(regex::Regex::new(&format!("^(?:{value})$")).expect("regex")),
                name,
                value,
            )
        };
        let selectors = [
            Matchers::new(vec![eq("__name__", "temp")]),
            Matchers::new(vec![
                re("__name__", "cpu.*|up"),
                Matcher::new(MatchOp::NotEqual, "job", "b"),
            ]),
            Matchers::new(vec![eq("job", "c")]),
            Matchers::new(vec![eq("__name__", "nothing")]),
        ];
        // Flushed files (twice: the second time from the cached indexes
        // and decoded points; then without the decoded points cache).
        check(&storage, &all, &selectors).await;
        check(&storage, &all, &selectors).await;
        storage.set_decoded_cache_bytes(0);
        check(&storage, &all, &selectors).await;
        storage.set_decoded_cache_bytes(1 << 20);
        // Compacted files replace them; the head holds the last scrapes.
        assert!(storage.compact().expect("compact") > 0);
        let t = 5 * H;
        let late: Vec<Sample> = ["a", "b"]
            .iter()
            .map(|job| Sample::new("temp", Labels::new().with("job", *job), t, 7.5))
            .collect();
        for s in &late {
            let job = s.series.labels.get("job").unwrap_or_default().to_string();
            all.get_mut(&("temp".to_string(), job))
                .expect("series")
                .push((t, 7.5));
        }
        storage.append(samples_to_batch(&late).expect("batch"));
        check(&storage, &all, &selectors).await;
    }

    #[tokio::test]
    async fn promql_over_storage_head_and_parquet() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 1).expect("open"));
        let mk = |job: &str, t: i64, v: f64| {
            Sample::new("req_total", Labels::new().with("job", job), t, v)
        };
        storage.append(
            samples_to_batch(&[mk("a", 0, 0.0), mk("b", 0, 5.0), mk("a", 60_000, 60.0)])
                .expect("batch"),
        );
        storage.flush().expect("flush");
        storage.append(
            samples_to_batch(&[
                mk("a", 120_000, 120.0),
                mk("b", 120_000, 5.0),
                Sample::new("other", Labels::new(), 120_000, 1.0),
            ])
            .expect("batch"),
        );
        let engine = Engine::default();
        let r = engine
            .instant(
                storage.as_ref(),
                r#"rate(req_total{job=~"a|b"}[2m])"#,
                120_000,
            )
            .await
            .expect("query");
        let Value::Vector(v) = r.value else {
            panic!("vector expected");
        };
        // Job b has one point in the left-open window (0, 2m]: no rate.
        assert_eq!(v.len(), 1);
        let a = v
            .iter()
            .find(|s| s.metric.get("job").map(String::as_str) == Some("a"))
            .expect("job a");
        assert!((a.v - 1.0).abs() < 1e-9, "{}", a.v);
        assert!(!a.metric.contains_key("__name__"));
        let r = engine
            .instant(
                storage.as_ref(),
                r#"{__name__=~"req.*", job!="a"}"#,
                120_000,
            )
            .await
            .expect("query");
        let Value::Vector(v) = r.value else {
            panic!("vector expected");
        };
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].metric.get("__name__").map(String::as_str),
            Some("req_total")
        );
        assert_eq!(v[0].v, 5.0);
    }
}
