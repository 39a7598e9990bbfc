//! A member's plants, where SQL cannot reach: every table of a member's session is a
//! `ScopedTable` whose scan always carries `plant IN (their plants)`. The filter is on the
//! hive partition column, so the listing prunes other plants' folders before a file is
//! opened, whatever SQL asked (subqueries, joins, CTEs, `UNION`, window functions) and
//! whatever the session's optimizer settings. Views are defined over the scoped tables, so
//! inlining a view exposes nothing beneath it. Statistics are not passed through.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{ScanArgs, ScanResult, Session};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::{col, lit, Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;

/// A table whose rows are those of `inner` in `plants` only.
#[derive(Debug)]
pub struct ScopedTable {
    inner: Arc<dyn TableProvider>,
    plants: Arc<[String]>,
}

impl ScopedTable {
    /// `inner` must have the hive partition column `plant`.
    pub fn new(inner: Arc<dyn TableProvider>, plants: Arc<[String]>) -> Self {
        ScopedTable { inner, plants }
    }

    /// `plant IN (…)`; `None` when no plant is allowed.
    fn plant_filter(&self) -> Option<Expr> {
        let plants: Vec<Expr> = self.plants.iter().map(|p| lit(p.as_str())).collect();
        (!plants.is_empty()).then(|| col("plant").in_list(plants, false))
    }
}

#[async_trait]
impl TableProvider for ScopedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let args = ScanArgs::default()
            .with_projection(projection.map(Vec::as_slice))
            .with_filters(Some(filters))
            .with_limit(limit);
        Ok(self.scan_with_args(state, args).await?.into_inner())
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        let Some(scope) = self.plant_filter() else {
            let schema = match args.projection() {
                Some(p) => Arc::new(self.schema().project(p)?),
                None => self.schema(),
            };
            return Ok(ScanResult::new(Arc::new(EmptyExec::new(schema))));
        };
        let mut filters = args.filters().map(<[Expr]>::to_vec).unwrap_or_default();
        filters.push(scope);
        let scoped = ScanArgs::default()
            .with_projection(args.projection())
            .with_filters(Some(&filters))
            .with_limit(args.limit());
        self.inner.scan_with_args(state, scoped).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
}
