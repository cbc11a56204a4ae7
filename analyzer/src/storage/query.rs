//! DataFusion over a storage snapshot.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use vigie_model::schema::metrics_schema;

use crate::AnalyzerError;

/// Runs `query` with `samples` = the files plus the in-memory batches.
pub(super) async fn run(
    query: &str,
    files: Vec<PathBuf>,
    head: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, AnalyzerError> {
    let ctx = SessionContext::new();
    let schema = metrics_schema();
    let mem = MemTable::try_new(schema.clone(), vec![head])?;
    if files.is_empty() {
        ctx.register_table("samples", Arc::new(mem))?;
    } else {
        ctx.register_table("samples_head", Arc::new(mem))?;
        let urls = files
            .iter()
            .map(|p| ListingTableUrl::parse(p.to_string_lossy()))
            .collect::<Result<Vec<_>, _>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema);
        ctx.register_table("samples_disk", Arc::new(ListingTable::try_new(config)?))?;
        ctx.sql("CREATE VIEW samples AS SELECT * FROM samples_disk UNION ALL SELECT * FROM samples_head")
            .await?;
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(query, options).await?;
    Ok(df.collect().await?)
}
