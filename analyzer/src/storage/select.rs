//! Series selection for PromQL: a DataFusion query over the snapshot, label
//! matchers applied in Rust, points grouped by series.

use std::collections::HashMap;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, Float64Array, MapArray, StringArray, TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use promql_parser::label::Matchers;
use vigie_model::schema::{col, column, labels_at};

use super::{Storage, query};
use crate::AnalyzerError;
use crate::promql::{LabelSet, Queryable, Selected, matches, name_equal};

fn ts_literal(ms: i64) -> String {
    let ms = ms.clamp(-8_000_000_000_000_000, 8_000_000_000_000_000);
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    format!(
        "'{}'",
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

fn schema_err(what: &str) -> AnalyzerError {
    vigie_model::ModelError::Schema(format!("select: column `{what}` missing or mistyped")).into()
}

impl Storage {
    /// Series matching `matchers` with their points in `[start_ms, end_ms]`
    /// (both optional), labels including `__name__`, points in time order.
    ///
    /// Files whose time range (from their name) misses the span are
    /// skipped before DataFusion sees them; an equality matcher on the
    /// metric name is pushed down to DataFusion (`metric = '...'`), as is
    /// the time span (which prunes row groups and pages by their
    /// statistics); the other matchers are applied once per series.
    pub async fn select_series(
        &self,
        matchers: &Matchers,
        start_ms: Option<i64>,
        end_ms: Option<i64>,
    ) -> Result<Selected, AnalyzerError> {
        let mut sql = format!(
            "SELECT {}, {}, {}, {}, {} FROM samples WHERE true",
            col::METRIC,
            col::LABELS,
            col::SERIES_ID,
            col::TS,
            col::VALUE
        );
        if let Some(s) = start_ms {
            sql.push_str(&format!(" AND {} >= {}", col::TS, ts_literal(s)));
        }
        if let Some(e) = end_ms {
            sql.push_str(&format!(" AND {} <= {}", col::TS, ts_literal(e)));
        }
        if let Some(name) = name_equal(matchers) {
            sql.push_str(&format!(
                " AND {} = '{}'",
                col::METRIC,
                name.replace('\'', "''")
            ));
        }
        let (files, head) = self.snapshot();
        // Files whose name says they hold nothing in the span are not even
        // handed to DataFusion.
        let files = super::files_overlapping(files, start_ms, end_ms);
        let batches = query::run(&self.store.store, &sql, files, head).await?;
        // series id -> index in `out`, or None when the matchers reject it.
        let mut index: HashMap<u64, Option<usize>> = HashMap::new();
        let mut out: Selected = Vec::new();
        for batch in &batches {
            let metric = cast(batch.column(0), &DataType::Utf8)?;
            let metric = metric
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| schema_err(col::METRIC))?;
            let labels = column::<MapArray>(batch, col::LABELS)?;
            let ids = column::<UInt64Array>(batch, col::SERIES_ID)?;
            let ts = column::<TimestampMillisecondArray>(batch, col::TS)?;
            let values = column::<Float64Array>(batch, col::VALUE)?;
            for row in 0..batch.num_rows() {
                let id = ids.value(row);
                let slot = match index.get(&id) {
                    Some(slot) => *slot,
                    None => {
                        let mut set: LabelSet = labels_at(labels, row)?
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect();
                        if !metric.is_null(row) {
                            set.insert(
                                crate::promql::value::NAME.into(),
                                metric.value(row).to_string(),
                            );
                        }
                        let slot = matches(matchers, &set).then(|| {
                            out.push((set, Vec::new()));
                            out.len() - 1
                        });
                        index.insert(id, slot);
                        slot
                    }
                };
                if let Some(i) = slot {
                    out[i].1.push((ts.value(row), values.value(row)));
                }
            }
        }
        for (_, points) in &mut out {
            points.sort_by_key(|p| p.0);
            points.dedup_by_key(|p| p.0);
        }
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
    use std::sync::Arc;

    use vigie_model::schema::samples_to_batch;
    use vigie_model::{Labels, Sample};

    use crate::promql::{Engine, Value};
    use crate::storage::Storage;

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
