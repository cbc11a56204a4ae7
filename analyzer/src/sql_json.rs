//! Record batches as `{"columns": [...], "rows": [[...], ...]}`.
//!
//! Numbers stay JSON numbers (NaN and ±Inf become the strings `"NaN"`,
//! `"+Inf"`, `"-Inf"`, as in Prometheus' API), maps become objects,
//! timestamps become RFC 3339 strings, everything else its display form.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, MapArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Number, Value};

use crate::AnalyzerError;

fn float(v: f64) -> Value {
    if v.is_nan() {
        Value::String("NaN".into())
    } else if v == f64::INFINITY {
        Value::String("+Inf".into())
    } else if v == f64::NEG_INFINITY {
        Value::String("-Inf".into())
    } else {
        Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

fn cell(array: &ArrayRef, row: usize) -> Result<Value, AnalyzerError> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let c = datafusion::arrow::compute::cast(&array.slice(row, 1), &DataType::Int64)?;
            Value::from(
                c.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(0),
            )
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let c = datafusion::arrow::compute::cast(&array.slice(row, 1), &DataType::UInt64)?;
            Value::from(
                c.as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                    .value(0),
            )
        }
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_string()),
        DataType::Map(..) => {
            let map = array
                .as_any()
                .downcast_ref::<MapArray>()
                .ok_or_else(|| vigie_model::ModelError::Schema("map column".into()))?;
            let entries = map.value(row);
            let mut obj = Map::new();
            for i in 0..entries.len() {
                let k = cell(entries.column(0), i)?;
                let v = cell(entries.column(1), i)?;
                let key = match k {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                obj.insert(key, v);
            }
            Value::Object(obj)
        }
        _ => {
            let options = FormatOptions::default().with_null("null");
            let f = ArrayFormatter::try_new(array.as_ref(), &options)?;
            Value::String(f.value(row).to_string())
        }
    })
}

/// Converts query results to column names and rows of JSON values.
pub fn to_json(batches: &[RecordBatch]) -> Result<Value, AnalyzerError> {
    let columns: Vec<Value> = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| Value::String(f.name().clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let mut out = Vec::with_capacity(batch.num_columns());
            for c in batch.columns() {
                out.push(cell(c, row)?);
            }
            rows.push(Value::Array(out));
        }
    }
    Ok(serde_json::json!({ "columns": columns, "rows": rows }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_model::schema::samples_to_batch;
    use vigie_model::{Labels, Sample};

    #[test]
    fn renders_samples() {
        let batch = samples_to_batch(&[
            Sample::new("up", Labels::new().with("job", "x"), 1_700_000_000_000, 1.0),
            Sample::new("up", Labels::new(), 0, f64::NAN),
        ])
        .expect("batch");
        let v = to_json(&[batch]).expect("json");
        assert_eq!(v["columns"][0], "metric");
        assert_eq!(v["rows"][0][0], "up");
        assert_eq!(v["rows"][0][1]["job"], "x");
        assert_eq!(v["rows"][0][3], "2023-11-14T22:13:20Z");
        assert_eq!(v["rows"][0][4], 1.0);
        assert_eq!(v["rows"][1][4], "NaN");
    }
}
