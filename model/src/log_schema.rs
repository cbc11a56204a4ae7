//! Arrow schema of a logs batch (`vigie.logs`, table `logs`).
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `ts` | Timestamp(ms, UTC) | when the line was read |
//! | `labels` | Map<Utf8, Utf8> | source labels; SQL: `labels['source']` |
//! | `severity` | Utf8, nullable | `error`, `warn`, `info`, `debug` if guessed |
//! | `body` | Utf8 | the line |
//! | `template_id` | UInt64, nullable | template of the body (set by the analyzer) |
//! | `template` | Utf8, nullable | template text (set by the analyzer) |

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, MapArray, MapBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMillisecondArray, TimestampMillisecondBuilder, UInt64Array, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::schema::{check_schema, column, labels_at, labels_type, ts_type};
use crate::{LogRecord, ModelError};

/// Column names of the logs schema.
pub mod log_col {
    /// Timestamp.
    pub const TS: &str = "ts";
    /// Label map.
    pub const LABELS: &str = "labels";
    /// Severity.
    pub const SEVERITY: &str = "severity";
    /// Line text.
    pub const BODY: &str = "body";
    /// Template id.
    pub const TEMPLATE_ID: &str = "template_id";
    /// Template text.
    pub const TEMPLATE: &str = "template";
}

static LOGS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(log_col::TS, ts_type(), false),
        Field::new(log_col::LABELS, labels_type(), false),
        Field::new(log_col::SEVERITY, DataType::Utf8, true),
        Field::new(log_col::BODY, DataType::Utf8, false),
        Field::new(log_col::TEMPLATE_ID, DataType::UInt64, true),
        Field::new(log_col::TEMPLATE, DataType::Utf8, true),
    ]))
});

/// The schema of a logs batch.
pub fn logs_schema() -> SchemaRef {
    LOGS_SCHEMA.clone()
}

/// A log record with the template the analyzer found for it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatedLog {
    /// The record.
    pub record: LogRecord,
    /// Template id and text.
    pub template: Option<(u64, String)>,
}

/// Builds a logs batch from records, template columns null.
pub fn logs_to_batch(records: &[LogRecord]) -> Result<RecordBatch, ModelError> {
    build(records.iter().map(|r| (r, None)), records.len())
}

/// Builds a logs batch from records with their templates.
pub fn templated_logs_to_batch(logs: &[TemplatedLog]) -> Result<RecordBatch, ModelError> {
    build(
        logs.iter().map(|l| {
            (
                &l.record,
                l.template.as_ref().map(|(id, t)| (*id, t.as_str())),
            )
        }),
        logs.len(),
    )
}

fn build<'a>(
    rows: impl Iterator<Item = (&'a LogRecord, Option<(u64, &'a str)>)>,
    n: usize,
) -> Result<RecordBatch, ModelError> {
    let mut ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    let mut severity = StringBuilder::new();
    let mut body = StringBuilder::new();
    let mut template_id = UInt64Builder::with_capacity(n);
    let mut template = StringBuilder::new();
    for (r, t) in rows {
        ts.append_value(r.ts_ms);
        for (k, v) in r.labels.iter() {
            labels.keys().append_value(k);
            labels.values().append_value(v);
        }
        labels.append(true)?;
        severity.append_option(r.severity.as_deref());
        body.append_value(&r.body);
        template_id.append_option(t.map(|(id, _)| id));
        template.append_option(t.map(|(_, text)| text));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ts.finish()),
        Arc::new(labels.finish()),
        Arc::new(severity.finish()),
        Arc::new(body.finish()),
        Arc::new(template_id.finish()),
        Arc::new(template.finish()),
    ];
    Ok(RecordBatch::try_new(logs_schema(), columns)?)
}

/// Checks that a batch has the logs schema (names and types).
pub fn check_logs_batch(batch: &RecordBatch) -> Result<(), ModelError> {
    check_schema(batch, &logs_schema())?;
    if column::<StringArray>(batch, log_col::BODY)?.null_count() > 0 {
        return Err(ModelError::Schema("null log body".into()));
    }
    Ok(())
}

/// Converts a logs batch back into records with their templates.
pub fn batch_to_logs(batch: &RecordBatch) -> Result<Vec<TemplatedLog>, ModelError> {
    check_logs_batch(batch)?;
    let ts = column::<TimestampMillisecondArray>(batch, log_col::TS)?;
    let labels = column::<MapArray>(batch, log_col::LABELS)?;
    let severity = column::<StringArray>(batch, log_col::SEVERITY)?;
    let body = column::<StringArray>(batch, log_col::BODY)?;
    let template_id = column::<UInt64Array>(batch, log_col::TEMPLATE_ID)?;
    let template = column::<StringArray>(batch, log_col::TEMPLATE)?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let t = (template_id.is_valid(row) && template.is_valid(row))
            .then(|| (template_id.value(row), template.value(row).to_string()));
        out.push(TemplatedLog {
            record: LogRecord {
                ts_ms: ts.value(row),
                labels: labels_at(labels, row)?,
                severity: severity
                    .is_valid(row)
                    .then(|| severity.value(row).to_string()),
                body: body.value(row).to_string(),
            },
            template: t,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Labels;

    fn rec(ts: i64, sev: Option<&str>, body: &str) -> LogRecord {
        LogRecord {
            ts_ms: ts,
            labels: Labels::new().with("source", "/var/log/app.log"),
            severity: sev.map(str::to_string),
            body: body.into(),
        }
    }

    #[test]
    fn round_trips_logs() {
        let records = vec![rec(1, Some("error"), "disk full"), rec(2, None, "hello")];
        let batch = logs_to_batch(&records).expect("batch");
        assert_eq!(batch.schema(), logs_schema());
        let back = batch_to_logs(&batch).expect("logs");
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].record, records[0]);
        assert_eq!(back[1].record, records[1]);
        assert!(back.iter().all(|l| l.template.is_none()));

        let templated = vec![
            TemplatedLog {
                record: records[0].clone(),
                template: Some((7, "disk <*>".into())),
            },
            TemplatedLog {
                record: records[1].clone(),
                template: None,
            },
        ];
        let batch = templated_logs_to_batch(&templated).expect("batch");
        let bytes = crate::codec::encode_batch(&batch).expect("encode");
        let back =
            batch_to_logs(&crate::codec::decode_batch(&bytes).expect("decode")).expect("logs");
        assert_eq!(back, templated);
    }

    #[test]
    fn rejects_metrics_batch() {
        let batch =
            crate::schema::samples_to_batch(&[crate::Sample::new("up", Labels::new(), 1, 1.0)])
                .expect("batch");
        assert!(batch_to_logs(&batch).is_err());
    }
}
