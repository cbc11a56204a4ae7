//! Arrow schemas of the batches that travel on the bus and sit in storage.
//!
//! Metrics batch (`vigie.metrics`, table `samples`):
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `metric` | Utf8 | metric name (`__name__`) |
//! | `labels` | Map<Utf8, Utf8> | other labels, sorted by name; SQL: `labels['job']` |
//! | `series_id` | UInt64 | [`crate::SeriesKey::id`] |
//! | `ts` | Timestamp(ms, UTC) | sample time |
//! | `value` | Float64 | sample value |

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, Float64Array, Float64Builder, MapArray, MapBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMillisecondArray, TimestampMillisecondBuilder, UInt64Array,
    UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::{Labels, ModelError, Sample, SeriesKey};

/// Column names of the metrics schema.
pub mod col {
    /// Metric name.
    pub const METRIC: &str = "metric";
    /// Label map.
    pub const LABELS: &str = "labels";
    /// Series id.
    pub const SERIES_ID: &str = "series_id";
    /// Timestamp.
    pub const TS: &str = "ts";
    /// Value.
    pub const VALUE: &str = "value";
}

/// The Arrow type of the `labels` column.
pub fn labels_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", DataType::Utf8, true),
            ])),
            false,
        )),
        false,
    )
}

/// The Arrow type of the `ts` column.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

static METRICS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(col::METRIC, DataType::Utf8, false),
        Field::new(col::LABELS, labels_type(), false),
        Field::new(col::SERIES_ID, DataType::UInt64, false),
        Field::new(col::TS, ts_type(), false),
        Field::new(col::VALUE, DataType::Float64, false),
    ]))
});

/// The schema of a metrics batch.
pub fn metrics_schema() -> SchemaRef {
    METRICS_SCHEMA.clone()
}

/// Builds a metrics record batch from samples, in the given order.
pub fn samples_to_batch(samples: &[Sample]) -> Result<RecordBatch, ModelError> {
    // Sized up front: growing the builders is memcpy the batch can spare.
    let (mut pairs, mut key_bytes, mut value_bytes, mut metric_bytes) = (0, 0, 0, 0);
    for s in samples {
        metric_bytes += s.series.metric.len();
        pairs += s.series.labels.len();
        for (k, v) in s.series.labels.iter() {
            key_bytes += k.len();
            value_bytes += v.len();
        }
    }
    let mut metric = StringBuilder::with_capacity(samples.len(), metric_bytes);
    let mut labels = MapBuilder::with_capacity(
        None,
        StringBuilder::with_capacity(pairs, key_bytes),
        StringBuilder::with_capacity(pairs, value_bytes),
        samples.len(),
    );
    let mut ids = UInt64Builder::with_capacity(samples.len());
    let mut ts = TimestampMillisecondBuilder::with_capacity(samples.len()).with_timezone("UTC");
    let mut value = Float64Builder::with_capacity(samples.len());
    for s in samples {
        metric.append_value(&s.series.metric);
        for (k, v) in s.series.labels.iter() {
            labels.keys().append_value(k);
            labels.values().append_value(v);
        }
        labels.append(true)?;
        ids.append_value(s.series.id());
        ts.append_value(s.ts_ms);
        value.append_value(s.value);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(metric.finish()),
        Arc::new(labels.finish()),
        Arc::new(ids.finish()),
        Arc::new(ts.finish()),
        Arc::new(value.finish()),
    ];
    Ok(RecordBatch::try_new(metrics_schema(), columns)?)
}

/// The column `name` of `batch` as array type `T`, or a schema error.
pub fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, ModelError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ModelError::Schema(format!("missing column `{name}`")))?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| ModelError::Schema(format!("column `{name}` has the wrong type")))
}

/// Reads the labels of row `row` of a `labels` map column.
pub fn labels_at(map: &MapArray, row: usize) -> Result<Labels, ModelError> {
    let entries = map.value(row);
    let keys = entries
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| ModelError::Schema("label keys are not strings".into()))?;
    let values = entries
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| ModelError::Schema("label values are not strings".into()))?;
    let mut labels = Labels::new();
    for i in 0..keys.len() {
        if values.is_valid(i) {
            labels.insert(keys.value(i), values.value(i));
        }
    }
    Ok(labels)
}

/// Checks that `batch` has exactly the columns of `want` (names and types).
pub(crate) fn check_schema(batch: &RecordBatch, want: &SchemaRef) -> Result<(), ModelError> {
    let got = batch.schema();
    if got.fields().len() != want.fields().len() {
        return Err(ModelError::Schema(format!(
            "expected {} columns, got {}",
            want.fields().len(),
            got.fields().len()
        )));
    }
    for (w, g) in want.fields().iter().zip(got.fields().iter()) {
        if w.name() != g.name() || !w.data_type().equals_datatype(g.data_type()) {
            return Err(ModelError::Schema(format!(
                "column `{}` ({}) where `{}` ({}) was expected",
                g.name(),
                g.data_type(),
                w.name(),
                w.data_type()
            )));
        }
    }
    Ok(())
}

/// Checks that a batch has the metrics schema (names and types).
pub fn check_metrics_batch(batch: &RecordBatch) -> Result<(), ModelError> {
    check_schema(batch, &metrics_schema())?;
    let metric = column::<StringArray>(batch, col::METRIC)?;
    if metric.null_count() > 0 {
        return Err(ModelError::Schema("null metric name".into()));
    }
    Ok(())
}

/// Converts a metrics batch back into samples.
pub fn batch_to_samples(batch: &RecordBatch) -> Result<Vec<Sample>, ModelError> {
    check_metrics_batch(batch)?;
    let metric = column::<StringArray>(batch, col::METRIC)?;
    let labels = column::<MapArray>(batch, col::LABELS)?;
    let ts = column::<TimestampMillisecondArray>(batch, col::TS)?;
    let value = column::<Float64Array>(batch, col::VALUE)?;
    let _ids = column::<UInt64Array>(batch, col::SERIES_ID)?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        out.push(Sample {
            series: SeriesKey::new(metric.value(row), labels_at(labels, row)?),
            ts_ms: ts.value(row),
            value: value.value(row),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, job: &str, ts: i64, v: f64) -> Sample {
        Sample::new(name, Labels::new().with("job", job), ts, v)
    }

    #[test]
    fn round_trips_samples() {
        let samples = vec![
            sample("up", "a", 1000, 1.0),
            Sample::new("m", Labels::new(), 2000, f64::NAN),
            sample("up", "b", 3000, 0.0),
        ];
        let batch = samples_to_batch(&samples).expect("batch");
        assert_eq!(batch.schema(), metrics_schema());
        let back = batch_to_samples(&batch).expect("samples");
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], samples[0]);
        assert!(back[1].value.is_nan());
        assert_eq!(back[2].series.labels.get("job"), Some("b"));
    }

    #[test]
    fn rejects_foreign_schema() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(arrow::array::Int32Array::from(vec![1]))],
        )
        .expect("batch");
        assert!(batch_to_samples(&batch).is_err());
    }
}
