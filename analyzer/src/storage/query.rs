//! DataFusion over a storage snapshot.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use vigie_model::schema::{col, metrics_schema};

use super::DataFile;
use super::store::Store;
use crate::AnalyzerError;

/// A table's Parquet files and in-memory batches.
pub(super) type Snapshot = (Vec<DataFile>, Vec<RecordBatch>);

/// Runs `query` with table `samples` = the files (in `store`) plus the
/// in-memory batches, table `logs` from its schema, files and batches,
/// and in-memory `extra` tables (name, schema, rows). With an extra table
/// `series` (module `series`), the labels of the samples files come from
/// it.
pub(super) async fn run_with_logs(
    store: &Store,
    query: &str,
    files: Vec<DataFile>,
    head: Vec<RecordBatch>,
    logs: Option<(SchemaRef, Snapshot)>,
    extra: Vec<(String, SchemaRef, Vec<RecordBatch>)>,
) -> Result<Vec<RecordBatch>, AnalyzerError> {
    let mut config = datafusion::prelude::SessionConfig::new();
    // DataFusion 55's pushdown of field access (`labels['job']`) through
    // the UNION of files and head pairs the union's columns wrongly: a
    // label lookup with a filter fails to plan ("UNION field 0 have
    // different type"). Labels are not in the samples files anyway (series
    // table), so the pushdown buys nothing here.
    config
        .options_mut()
        .optimizer
        .enable_leaf_expression_pushdown = false;
    let ctx = SessionContext::new_with_config(config);
    ctx.register_object_store(Store::url().as_ref(), store.object());
    for (name, schema, batches) in extra {
        ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![batches])?))?;
    }
    register(&ctx, "samples", metrics_schema(), files, head).await?;
    if let Some((schema, (files, head))) = logs {
        register(&ctx, "logs", schema, files, head).await?;
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(query, options).await?;
    Ok(df.collect().await?)
}

/// Registers table `name` = the files plus the in-memory batches.
async fn register(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    files: Vec<DataFile>,
    head: Vec<RecordBatch>,
) -> Result<(), AnalyzerError> {
    // The samples files store values as decimals (storage::values).
    let samples = schema.field_with_name(col::VALUE).is_ok();
    let mem = MemTable::try_new(schema.clone(), vec![head])?;
    if files.is_empty() {
        ctx.register_table(name, Arc::new(mem))?;
    } else {
        ctx.register_table(format!("{name}_head"), Arc::new(mem))?;
        let urls = files
            .iter()
            .map(|f| Store::table_url(&f.key))
            .collect::<Result<Vec<_>, _>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let disk_schema = if samples {
            super::values::table_schema()
        } else {
            schema.clone()
        };
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(disk_schema);
        ctx.register_table(
            format!("{name}_disk"),
            Arc::new(ListingTable::try_new(config)?),
        )?;
        let view = if samples {
            // Values are stored as decimals (storage::values), labels in
            // the series table (storage::series) except in older files.
            let (labels, from) = if ctx.table_exist("series")? {
                (
                    format!(
                        "CASE WHEN d.{l} IS NULL THEN s.{l} ELSE d.{l} END",
                        l = col::LABELS
                    ),
                    format!(
                        "{name}_disk d LEFT JOIN series s ON d.{id} = s.{id}",
                        id = col::SERIES_ID
                    ),
                )
            } else {
                (format!("d.{}", col::LABELS), format!("{name}_disk d"))
            };
            let cols: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| match f.name().as_str() {
                    col::VALUE => format!("{} AS {}", super::values::value_sql(), col::VALUE),
                    col::LABELS => format!("{labels} AS {}", col::LABELS),
                    other => format!("d.{other}"),
                })
                .collect();
            format!("SELECT {} FROM {from}", cols.join(", "))
        } else {
            format!("SELECT * FROM {name}_disk")
        };
        ctx.sql(&format!(
            "CREATE VIEW {name} AS {view} UNION ALL SELECT * FROM {name}_head"
        ))
        .await?;
    }
    Ok(())
}
