//! A member's plants, where SQL cannot reach: every table of a member's session is a
//! `ScopedTable` whose scan always carries `plant IN (their plants)`. The filter is on the
//! hive partition column, so the listing prunes other plants' folders before a file is
//! opened, whatever SQL asked (subqueries, joins, CTEs, `UNION`, window functions) and
//! whatever the session's optimizer settings. Views are defined over the scoped tables, so
//! inlining a view exposes nothing beneath it. Statistics are not passed through.
//!
//! Only filters that cannot fail reach the listing: it evaluates filters on partition
//! values (every plant's folder) before the scope prunes them, so a filter such as
//! `1 / (CASE WHEN plant = 'AUSTIN' THEN 0 ELSE 1 END) = 1` would fail there and tell a
//! member that AUSTIN exists. Other filters run above the scan, on the plant's rows only.

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
        scan_with_args_of(self, state, projection, filters, limit).await
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
        let mut filters: Vec<Expr> = args
            .filters()
            .unwrap_or_default()
            .iter()
            .filter(|f| cannot_fail(f))
            .cloned()
            .collect();
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
        let inner = self.inner.supports_filters_pushdown(filters)?;
        Ok(filters
            .iter()
            .zip(inner)
            .map(|(filter, pushdown)| {
                if cannot_fail(filter) {
                    pushdown
                } else {
                    // Not passed to the listing (`scan`): applied above the scan.
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }
}

/// `TableProvider::scan` for a table that does its work in `scan_with_args`.
pub async fn scan_with_args_of(
    table: &dyn TableProvider,
    state: &dyn Session,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let args = ScanArgs::default()
        .with_projection(projection.map(Vec::as_slice))
        .with_filters(Some(filters))
        .with_limit(limit);
    Ok(table.scan_with_args(state, args).await?.into_inner())
}

/// Whether `expr` evaluates without error on any row: columns and literals compared,
/// combined with AND, OR and NOT, `IN` lists, `BETWEEN`, `IS NULL` and `LIKE`. No
/// arithmetic, casts or functions, which can fail on a value.
fn cannot_fail(expr: &Expr) -> bool {
    use datafusion::logical_expr::{Between, BinaryExpr, Like, Operator};
    match expr {
        Expr::Column(_) | Expr::Literal(..) => true,
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            matches!(
                op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::And
                    | Operator::Or
                    | Operator::IsDistinctFrom
                    | Operator::IsNotDistinctFrom
            ) && cannot_fail(left)
                && cannot_fail(right)
        }
        Expr::Not(e) | Expr::IsNull(e) | Expr::IsNotNull(e) => cannot_fail(e),
        Expr::InList(list) => cannot_fail(&list.expr) && list.list.iter().all(cannot_fail),
        Expr::Between(Between {
            expr, low, high, ..
        }) => cannot_fail(expr) && cannot_fail(low) && cannot_fail(high),
        Expr::Like(Like { expr, pattern, .. }) => cannot_fail(expr) && cannot_fail(pattern),
        _ => false,
    }
}
