//! How sample values are laid out on disk: as exact decimals when they
//! are, so that Parquet can delta-encode them.
//!
//! Most metric values are decimals with few digits: counters of bytes or
//! packets (integers), CPU seconds in 1/100 s ticks, load averages with two
//! decimals. Stored as `f64` their low mantissa bits look random and no
//! general compressor finds the pattern; stored as the integer `m` of
//! `m / 10^e`, sorted by series then time, `DELTA_BINARY_PACKED` keeps only
//! the few bits a counter grows by or a gauge moves by (the idea behind
//! VictoriaMetrics' decimal encoding). A value goes to `value_m` +
//! `value_e` only when `m / 10^e` gives back the very same bits (so it is
//! lossless, `-0.0`, NaN and infinities included, which go to `value_f`).
//!
//! A series' mantissas in one file are also divided by their greatest
//! common divisor, kept in `value_g` (null for 1): memory and filesystem
//! bytes move by 4 KiB pages, disk bytes by sectors, so their deltas lose
//! 9 to 12 always-zero bits. And each series' `value_m` is shifted by a
//! base, kept in `value_b` (null for 0), so that it starts where the
//! previous series in the file ended: sorted by series, the jump from
//! one series' values to the next (and back down) would otherwise be a
//! delta like any other, and `DELTA_BINARY_PACKED` subtracts a 128-value
//! block's smallest delta from all of them, so one such jump widened
//! every value of its block (a fifth of `value_m`'s bytes on node
//! metrics). Every column stays a plain per-row value
//! (`value = (value_m + value_b) × value_g / 10^value_e`), so Parquet's
//! own encodings, SQL and row selection work on the files as they are.
//!
//! Files written before this layout have a plain `value` column; the SQL
//! view and compaction read both.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Float64Builder, Int64Array, Int64Builder, RecordBatch,
    UInt8Array, UInt8Builder, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use vigie_model::schema::{col, metrics_schema};

use crate::AnalyzerError;

/// Integer part `m` of `value = m / 10^e`.
pub(crate) const M: &str = "value_m";
/// Decimal exponent `e` of `value = m / 10^e`.
pub(crate) const E: &str = "value_e";
/// The value itself when it is not such a decimal.
pub(crate) const F: &str = "value_f";
/// The common factor of a series' `value_m` in a file (null: 1).
pub(crate) const G: &str = "value_g";
/// The base of a series' `value_m` in a file (null: 0).
pub(crate) const B: &str = "value_b";

const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];
/// Past this, the chain of `value_m` across series restarts at 0, so
/// that `value_m` and `value_b` stay far from `i64` overflow.
const CHAIN_LIMIT: i64 = 1 << 61;

/// 2^53: integers below it are exact in an `f64`.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// `v` as `(m, e)` with `m / 10^e` bit-identical to `v`, fewest decimals
/// first.
pub(crate) fn to_decimal(v: f64) -> Option<(i64, u8)> {
    if !v.is_finite() {
        return None;
    }
    for (e, p) in POW10.iter().enumerate() {
        let scaled = v * p;
        if scaled.abs() >= EXACT {
            return None;
        }
        // Checked as decoded: through the integer, so `-0.0` does not pass.
        let m = scaled.round() as i64;
        if (m as f64 / p).to_bits() == v.to_bits() {
            return Some((m, e as u8));
        }
    }
    None
}

/// Schema of the samples files as written now.
static WRITE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let m = metrics_schema();
    let mut fields: Vec<Field> = m
        .fields()
        .iter()
        // Labels live in the series table (module `series`).
        .filter(|f| f.name() != col::VALUE && f.name() != col::LABELS)
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(M, DataType::Int64, true));
    fields.push(Field::new(E, DataType::UInt8, true));
    fields.push(Field::new(F, DataType::Float64, true));
    fields.push(Field::new(G, DataType::Int64, true));
    fields.push(Field::new(B, DataType::Int64, true));
    Arc::new(Schema::new(fields))
});

/// Schema of the samples files as written now.
pub(crate) fn write_schema() -> SchemaRef {
    WRITE_SCHEMA.clone()
}

/// Schema DataFusion reads the samples files with: every column of every
/// layout (a column a file lacks reads as NULL).
pub(crate) fn table_schema() -> SchemaRef {
    let mut fields: Vec<Field> = write_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(col::VALUE, DataType::Float64, true));
    // Files written before the series table hold their labels.
    fields.push(Field::new(
        col::LABELS,
        vigie_model::schema::labels_type(),
        true,
    ));
    Arc::new(Schema::new(fields))
}

/// SQL for the `value` of a row of [`table_schema`].
pub(crate) fn value_sql() -> String {
    let mut case = format!("CASE {E}");
    for (e, p) in POW10.iter().enumerate() {
        case.push_str(&format!(
            " WHEN {e} THEN CAST(({M} + COALESCE({B}, 0)) * COALESCE({G}, 1) AS DOUBLE) / {p:.1}"
        ));
    }
    case.push_str(" END");
    format!("COALESCE({}, {F}, {case})", col::VALUE)
}

/// `v` as `m / 10^e` for this `e`, if exact.
fn at_exponent(v: f64, e: u8) -> Option<(i64, u8)> {
    let p = POW10.get(usize::from(e))?;
    let scaled = v * p;
    if !scaled.is_finite() || scaled.abs() >= EXACT {
        return None;
    }
    let m = scaled.round() as i64;
    ((m as f64 / p).to_bits() == v.to_bits()).then_some((m, e))
}

/// A metrics batch sorted by series in the on-disk layout
/// ([`write_schema`]). Each series run shares one exponent (its values'
/// largest), so consecutive `value_m` differ by what the series moved.
pub(crate) fn encode(batch: &RecordBatch) -> Result<RecordBatch, AnalyzerError> {
    let values = vigie_model::schema::column::<Float64Array>(batch, col::VALUE)?;
    let ids = vigie_model::schema::column::<UInt64Array>(batch, col::SERIES_ID)?;
    let n = values.len();
    let mut decimals: Vec<Option<(i64, u8)>> =
        values.iter().map(|v| v.and_then(to_decimal)).collect();
    // (end of a series run, the gcd of its mantissas, its base).
    let mut factors: Vec<(usize, i64, i64)> = Vec::new();
    // The last stored `value_m` so far.
    let mut chain: i64 = 0;
    let mut start = 0;
    while start < n {
        let id = ids.value(start);
        let end = (start..n).find(|&i| ids.value(i) != id).unwrap_or(n);
        let top = decimals[start..end].iter().flatten().map(|d| d.1).max();
        if let Some(top) = top {
            for (i, slot) in decimals.iter_mut().enumerate().take(end).skip(start) {
                if let Some(d) = slot.filter(|d| d.1 != top) {
                    *slot = at_exponent(values.value(i), top).or(Some(d));
                }
            }
        }
        let g = decimals[start..end]
            .iter()
            .flatten()
            .fold(0, |g, d| gcd(g, d.0.unsigned_abs()));
        let g = i64::try_from(g).unwrap_or(1).max(1);
        let mut run = decimals[start..end].iter().flatten().map(|d| d.0 / g);
        let base = match (run.next(), run.next_back()) {
            (Some(first), last) => {
                // Continue from where the previous series ended.
                if chain.abs() > CHAIN_LIMIT {
                    chain = 0;
                }
                let base = first - chain;
                chain = last.unwrap_or(first) - base;
                base
            }
            (None, _) => 0,
        };
        factors.push((end, g, base));
        start = end;
    }
    let (mut m, mut e, mut f, mut g) = (
        Int64Builder::with_capacity(n),
        UInt8Builder::with_capacity(n),
        Float64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
    );
    let mut b = Int64Builder::with_capacity(n);
    let mut run = factors.iter().peekable();
    for (i, (v, d)) in values.iter().zip(decimals).enumerate() {
        while run.peek().is_some_and(|(end, ..)| *end <= i) {
            run.next();
        }
        let (factor, base) = run.peek().map_or((1, 0), |(_, g, b)| (*g, *b));
        match d {
            Some((mv, ev)) => {
                // `mv / factor` is below 2^53 in magnitude and `base`
                // below 2^62 (see `CHAIN_LIMIT`): no overflow.
                m.append_value(mv / factor - base);
                e.append_value(ev);
                f.append_null();
                g.append_option((factor > 1).then_some(factor));
                b.append_option((base != 0).then_some(base));
            }
            None => {
                m.append_null();
                e.append_null();
                f.append_option(v);
                g.append_null();
                b.append_null();
            }
        }
    }
    let schema = batch.schema();
    let mut columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(field, _)| field.name() != col::VALUE && field.name() != col::LABELS)
        .map(|(_, c)| c.clone())
        .collect();
    columns.push(Arc::new(m.finish()));
    columns.push(Arc::new(e.finish()));
    columns.push(Arc::new(f.finish()));
    columns.push(Arc::new(g.finish()));
    columns.push(Arc::new(b.finish()));
    Ok(RecordBatch::try_new(write_schema(), columns)?)
}

/// Greatest common divisor (`gcd(0, x) = x`).
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The values of a batch read from a samples file (any layout): its
/// `value` column, or `(value_m + value_b) × value_g / 10^value_e`, else
/// `value_f`.
pub(crate) fn decode_values(batch: &RecordBatch) -> Result<ArrayRef, AnalyzerError> {
    if let Some(v) = batch.column_by_name(col::VALUE) {
        return Ok(v.clone());
    }
    let m = vigie_model::schema::column::<Int64Array>(batch, M)?;
    let e = vigie_model::schema::column::<UInt8Array>(batch, E)?;
    let f = vigie_model::schema::column::<Float64Array>(batch, F)?;
    // Files written before `value_g` or `value_b` lack them.
    let optional = |name| {
        batch
            .column_by_name(name)
            .map(|_| vigie_model::schema::column::<Int64Array>(batch, name))
            .transpose()
    };
    let (g, b) = (optional(G)?, optional(B)?);
    let out: Float64Array = (0..batch.num_rows())
        .map(|i| {
            if m.is_valid(i) && e.is_valid(i) {
                let p = POW10.get(usize::from(e.value(i))).copied()?;
                let factor = g.filter(|g| g.is_valid(i)).map_or(1, |g| g.value(i));
                let base = b.filter(|b| b.is_valid(i)).map_or(0, |b| b.value(i));
                Some(m.value(i).wrapping_add(base).wrapping_mul(factor) as f64 / p)
            } else {
                f.is_valid(i).then(|| f.value(i))
            }
        })
        .collect();
    Ok(Arc::new(out))
}

/// A batch read from a samples file (either layout) in the metrics schema.
pub(crate) fn decode(batch: &RecordBatch) -> Result<RecordBatch, AnalyzerError> {
    let target = metrics_schema();
    let value = decode_values(batch)?;
    let mut columns = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        if field.name() == col::VALUE {
            columns.push(value.clone());
        } else if field.name() == col::LABELS && batch.column_by_name(col::LABELS).is_none() {
            // In the series table; callers that need them look them up.
            columns.push(super::series::empty_labels(batch.num_rows())?);
        } else {
            columns.push(batch.column_by_name(field.name()).cloned().ok_or_else(|| {
                vigie_model::ModelError::Schema(format!(
                    "stored file lacks column `{}`",
                    field.name()
                ))
            })?);
        }
    }
    Ok(RecordBatch::try_new(target, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vigie_model::schema::samples_to_batch;
    use vigie_model::{Labels, Sample};

    /// `samples` as a batch sorted by series, as `encode` takes them.
    fn by_series(samples: &[Sample]) -> RecordBatch {
        let batch = samples_to_batch(samples).expect("batch");
        let ids = batch.column(2).clone();
        let order = datafusion::arrow::compute::sort_to_indices(&ids, None, None).expect("sort");
        datafusion::arrow::compute::take_record_batch(&batch, &order).expect("take")
    }

    /// The `value` column of a batch in the metrics schema.
    fn value_column(batch: &RecordBatch) -> &Float64Array {
        batch
            .column(4)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("f64")
    }

    #[test]
    fn decimals_are_found_and_exact() {
        assert_eq!(to_decimal(0.0), Some((0, 0)));
        assert_eq!(to_decimal(12.34), Some((1234, 2)));
        let v = 1234.0 * 0.01;
        let (m, e) = to_decimal(v).expect("a decimal");
        assert_eq!((m as f64 / POW10[usize::from(e)]).to_bits(), v.to_bits());
        assert_eq!(to_decimal(17_179_869_184.0), Some((17_179_869_184, 0)));
        assert_eq!(to_decimal(-0.0), None, "the sign of zero is kept");
        assert_eq!(to_decimal(f64::NAN), None);
        assert_eq!(to_decimal(f64::INFINITY), None);
        assert_eq!(to_decimal(1e300), None);
        assert_eq!(
            to_decimal(std::f64::consts::PI),
            Some((3_141_592_653_589_793, 15))
        );
        assert_eq!(to_decimal(0.1 + 0.2), None, "17 significant digits");
    }

    #[test]
    fn a_series_common_factor_and_base_move_to_value_g_and_value_b() {
        // Two series: page-sized memory bytes, and plain counts.
        let mut samples: Vec<Sample> = [4096.0 * 3.0, 4096.0 * 5.0, 4096.0 * 1e9]
            .iter()
            .enumerate()
            .map(|(i, v)| Sample::new("mem", Labels::new(), i as i64, *v))
            .collect();
        samples.extend(
            [7.0, 9.0]
                .iter()
                .map(|v| Sample::new("count", Labels::new(), 0, *v)),
        );
        let batch = by_series(&samples);
        let encoded = encode(&batch).expect("encode");
        let metric = vigie_model::schema::column::<datafusion::arrow::array::StringArray>(
            &encoded,
            col::METRIC,
        )
        .expect("metric");
        let m = vigie_model::schema::column::<Int64Array>(&encoded, M).expect("m");
        let g = vigie_model::schema::column::<Int64Array>(&encoded, G).expect("g");
        let b = vigie_model::schema::column::<Int64Array>(&encoded, B).expect("b");
        let mut got: Vec<(&str, i64, Option<i64>, Option<i64>)> = (0..encoded.num_rows())
            .map(|i| {
                (
                    metric.value(i),
                    m.value(i),
                    g.is_valid(i).then(|| g.value(i)),
                    b.is_valid(i).then(|| b.value(i)),
                )
            })
            .collect();
        got.sort();
        // Mantissas divided by the series' factor and shifted so that each
        // series starts where the one before it ended.
        let (count_base, mem_base) = if metric.value(0) == "count" {
            // count: 7, 9 stored as 0, 2; mem then starts at 2.
            (7, 3 - 2)
        } else {
            // mem: 3, 5, 1e9 stored as 0, 2, 999_999_997; count follows.
            (7 - 999_999_997, 3)
        };
        let row = |name, v: i64, g, base: i64| (name, v - base, g, (base != 0).then_some(base));
        let mut want = vec![
            row("count", 7, None, count_base),
            row("count", 9, None, count_base),
            row("mem", 3, Some(4096), mem_base),
            row("mem", 5, Some(4096), mem_base),
            row("mem", 1_000_000_000, Some(4096), mem_base),
        ];
        want.sort();
        assert_eq!(got, want);
        let back = decode(&encoded).expect("decode");
        let mut values: Vec<f64> = value_column(&back).values().to_vec();
        values.sort_by(f64::total_cmp);
        assert_eq!(values, [7.0, 9.0, 12288.0, 20480.0, 4096.0 * 1e9]);
    }

    #[test]
    fn a_chain_that_would_overflow_restarts() {
        // 300 series each climbing 2^54: the chain passes 2^61 and must
        // restart rather than overflow (debug builds would panic).
        const TOP: f64 = 9_007_199_254_740_991.0;
        let samples: Vec<Sample> = (0..300)
            .flat_map(|s| {
                let labels = Labels::new().with("s", format!("{s:03}"));
                [-TOP, TOP].map(|v| Sample::new("m", labels.clone(), s, v))
            })
            .collect();
        let batch = by_series(&samples);
        let encoded = encode(&batch).expect("encode");
        let m = vigie_model::schema::column::<Int64Array>(&encoded, M).expect("m");
        assert!(
            m.values()
                .iter()
                .all(|v| v.abs() <= CHAIN_LIMIT + (1 << 55))
        );
        assert!(
            m.values().iter().filter(|v| **v == 0).count() > 1,
            "the chain restarted at 0"
        );
        let back = decode(&encoded).expect("decode");
        assert_eq!(value_column(&back).values(), value_column(&batch).values());
    }

    proptest! {
        #[test]
        fn encode_then_decode_gives_back_the_bits(values in proptest::collection::vec(
            prop_oneof![
                any::<f64>(),
                (0i64..1_000_000_000).prop_map(|m| m as f64 / 100.0),
                (-1_000_000i64..1_000_000).prop_map(|m| m as f64),
                (0i64..1_000_000).prop_map(|m| (m * 4096) as f64),
                Just(f64::NAN),
                Just(-0.0),
            ],
            1..50,
        )) {
            let samples: Vec<Sample> = values
                .iter()
                .enumerate()
                .map(|(i, v)| Sample::new("m", Labels::new(), i as i64, *v))
                .collect();
            let batch = samples_to_batch(&samples).expect("batch");
            let back = decode(&encode(&batch).expect("encode")).expect("decode");
            let got = value_column(&back);
            for (i, v) in values.iter().enumerate() {
                prop_assert_eq!(got.value(i).to_bits(), v.to_bits(), "value {}", v);
            }
        }

        #[test]
        fn series_chained_across_a_file_decode_exactly(rows in proptest::collection::vec(
            (
                0u8..12,
                prop_oneof![
                    // The extremes of exact integers: chains near the limit.
                    Just(9_007_199_254_740_991i64),
                    Just(-9_007_199_254_740_991i64),
                    -9_007_199_254_740_991i64..9_007_199_254_740_991,
                    -1_000i64..1_000,
                ],
            ),
            1..200,
        )) {
            let samples: Vec<Sample> = rows
                .iter()
                .enumerate()
                .map(|(i, (s, v))| {
                    Sample::new("m", Labels::new().with("s", s.to_string()), i as i64, *v as f64)
                })
                .collect();
            let batch = by_series(&samples);
            // Debug builds panic on overflow: this also checks there is none.
            let back = decode(&encode(&batch).expect("encode")).expect("decode");
            let (got, want) = (value_column(&back), value_column(&batch));
            for i in 0..want.len() {
                prop_assert_eq!(got.value(i).to_bits(), want.value(i).to_bits());
            }
        }
    }
}
