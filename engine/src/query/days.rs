//! The days a filter on time reads. A window's `date=` folder is the UTC day of its
//! `window_start`, an event's the UTC day of its `start`, so a filter on that instant
//! implies a range of folders: `window_start >= now() - INTERVAL '1 hour'` needs only
//! today's. `DayPrunedTable` adds the range as a filter on `date`, which the listing
//! evaluates on folder names before it opens a file. Without it, a filter on time alone
//! prunes by each file's statistics, which means reading every file's footer.
//!
//! The added filter is implied by the filters the query gave, so it changes which files
//! are read, never which rows are returned.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{ScanArgs, ScanResult, Session};
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::{
    col, lit, Between, BinaryExpr, Cast, Expr, Operator, TableProviderFilterPushDown, TryCast,
};
use datafusion::physical_plan::ExecutionPlan;
use stationflow_schemas::window::format_date32;

use crate::access::scope::scan_with_args_of;

/// A listing whose `date` partition is the UTC day of the column `instant`; filters on
/// `instant` also prune by `date`.
#[derive(Debug)]
pub struct DayPrunedTable {
    inner: Arc<dyn TableProvider>,
    instant: &'static str,
}

impl DayPrunedTable {
    /// `inner` must have the partition column `date` (`YYYY-MM-DD`), the UTC day of
    /// every row's `instant`.
    pub fn new(inner: Arc<dyn TableProvider>, instant: &'static str) -> Self {
        DayPrunedTable { inner, instant }
    }
}

#[async_trait]
impl TableProvider for DayPrunedTable {
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
        let given = args.filters().unwrap_or_default();
        let days = given
            .iter()
            .filter_map(|f| implied_days(f, self.instant))
            .fold(Days::ALL, Days::and);
        let mut filters = given.to_vec();
        filters.extend(days.as_filters());
        let pruned = ScanArgs::default()
            .with_projection(args.projection())
            .with_filters(Some(&filters))
            .with_limit(args.limit());
        self.inner.scan_with_args(state, pruned).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
}

/// A range of UTC days (days since 1970-01-01), each end inclusive where there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Days {
    first: Option<i32>,
    last: Option<i32>,
}

impl Days {
    const ALL: Days = Days {
        first: None,
        last: None,
    };

    fn from(first: i64) -> Days {
        Days {
            first: to_day(first),
            last: None,
        }
    }

    fn until(last: i64) -> Days {
        Days {
            first: None,
            last: to_day(last),
        }
    }

    fn on(day: i64) -> Days {
        Days::from(day).and(Days::until(day))
    }

    /// Days in both.
    fn and(self, other: Days) -> Days {
        Days {
            first: self.first.max(other.first),
            last: match (self.last, other.last) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    /// The least range holding both.
    fn or(self, other: Days) -> Days {
        Days {
            first: self.first.zip(other.first).map(|(a, b)| a.min(b)),
            last: self.last.zip(other.last).map(|(a, b)| a.max(b)),
        }
    }

    fn as_filters(self) -> Vec<Expr> {
        let date = |day: i32| lit(format_date32(day));
        let first = self.first.map(|d| col("date").gt_eq(date(d)));
        let last = self.last.map(|d| col("date").lt_eq(date(d)));
        first.into_iter().chain(last).collect()
    }
}

/// Days whose `YYYY-MM-DD` names sort as the days do: years 1 to 9999. A bound outside
/// is dropped, which only reads more.
fn to_day(day: i64) -> Option<i32> {
    const FIRST: i64 = -719_162; // 0001-01-01
    const LAST: i64 = 2_932_896; // 9999-12-31
    (FIRST..=LAST).contains(&day).then_some(day as i32)
}

/// The days that rows passing `filter` can be in, if `filter` says.
fn implied_days(filter: &Expr, instant: &str) -> Option<Days> {
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => match (implied_days(left, instant), implied_days(right, instant)) {
                (Some(a), Some(b)) => Some(a.and(b)),
                (a, b) => a.or(b),
            },
            Operator::Or => Some(implied_days(left, instant)?.or(implied_days(right, instant)?)),
            _ => compared(left, *op, right, instant)
                .or_else(|| compared(right, op.swap()?, left, instant)),
        },
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => Some(compared(expr, Operator::GtEq, low, instant)?.and(compared(
            expr,
            Operator::LtEq,
            high,
            instant,
        )?)),
        _ => None,
    }
}

/// The days implied by `side op value`, where `side` is the instant (or a cast of it)
/// and `value` a literal.
fn compared(side: &Expr, op: Operator, value: &Expr, instant: &str) -> Option<Days> {
    let Expr::Literal(value, _) = value else {
        return None;
    };
    let (point, units_per_day) = match (scale_of(side, instant)?, value) {
        (Scale::Day, ScalarValue::Date32(Some(day))) => (*day as i64, 1),
        (Scale::Instant, value) => instant_value(value)?,
        _ => return None,
    };
    let day = |t: i64| t.div_euclid(units_per_day);
    match op {
        Operator::Eq => Some(Days::on(day(point))),
        Operator::Gt => Some(Days::from(day(point.saturating_add(1)))),
        Operator::GtEq => Some(Days::from(day(point))),
        Operator::Lt => Some(Days::until(day(point.checked_sub(1)?))),
        Operator::LtEq => Some(Days::until(day(point))),
        _ => None,
    }
}

/// What a side of a comparison measures.
enum Scale {
    /// The instant, in the literal's unit: its UTC day is the row's `date`.
    Instant,
    /// `CAST(instant AS DATE)`: the row's `date` itself.
    Day,
}

/// The instant column, or a cast of it to a timestamp (flooring to a coarser unit keeps
/// the day, since days are whole units) or to a date. Its values are UTC.
fn scale_of(side: &Expr, instant: &str) -> Option<Scale> {
    let (inner, to) = match side {
        Expr::Column(c) => return (c.name == instant).then_some(Scale::Instant),
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            (expr, field.data_type())
        }
        _ => return None,
    };
    let Expr::Column(c) = inner.as_ref() else {
        return None;
    };
    match to {
        _ if c.name != instant => None,
        DataType::Timestamp(..) => Some(Scale::Instant),
        DataType::Date32 => Some(Scale::Day),
        _ => None,
    }
}

/// A timestamp literal's value and how many of its units make a day.
fn instant_value(value: &ScalarValue) -> Option<(i64, i64)> {
    let (value, unit) = match value {
        ScalarValue::TimestampSecond(Some(v), _) => (*v, TimeUnit::Second),
        ScalarValue::TimestampMillisecond(Some(v), _) => (*v, TimeUnit::Millisecond),
        ScalarValue::TimestampMicrosecond(Some(v), _) => (*v, TimeUnit::Microsecond),
        ScalarValue::TimestampNanosecond(Some(v), _) => (*v, TimeUnit::Nanosecond),
        _ => return None,
    };
    let per_day = match unit {
        TimeUnit::Second => 86_400,
        TimeUnit::Millisecond => 86_400_000,
        TimeUnit::Microsecond => 86_400_000_000,
        TimeUnit::Nanosecond => 86_400_000_000_000,
    };
    Some((value, per_day))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::cast;

    const MS_PER_DAY: i64 = 86_400_000;
    /// 2027-03-02T00:00:00Z in days and milliseconds.
    const DAY: i64 = 20_879;
    const MIDNIGHT: i64 = DAY * MS_PER_DAY;

    fn ms(v: i64) -> Expr {
        lit(ScalarValue::TimestampMillisecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    fn days(filter: Expr) -> Option<(Option<String>, Option<String>)> {
        let d = implied_days(&filter, "window_start")?;
        Some((d.first.map(format_date32), d.last.map(format_date32)))
    }

    fn range(first: Option<&str>, last: Option<&str>) -> Option<(Option<String>, Option<String>)> {
        Some((first.map(String::from), last.map(String::from)))
    }

    #[test]
    fn comparisons_with_the_instant_bound_its_days() {
        assert_eq!(DAY as i32, 20_879);
        assert_eq!(format_date32(DAY as i32), "2027-03-02");
        let ws = || col("window_start");
        let this = Some("2027-03-02");
        let before = Some("2027-03-01");
        assert_eq!(days(ws().gt_eq(ms(MIDNIGHT + 5))), range(this, None));
        assert_eq!(days(ws().gt(ms(MIDNIGHT))), range(this, None));
        assert_eq!(days(ws().lt(ms(MIDNIGHT))), range(None, before));
        assert_eq!(days(ws().lt_eq(ms(MIDNIGHT))), range(None, this));
        assert_eq!(days(ws().eq(ms(MIDNIGHT - 1))), range(before, before));
        assert_eq!(days(ms(MIDNIGHT).lt_eq(ws())), range(this, None));
        let between = ws().between(ms(MIDNIGHT - MS_PER_DAY), ms(MIDNIGHT + 60_000));
        assert_eq!(days(between), range(before, this));
    }

    #[test]
    fn and_narrows_or_widens_and_other_columns_say_nothing() {
        let ws = || col("window_start");
        let week = ws()
            .gt_eq(ms(MIDNIGHT))
            .and(ws().lt(ms(MIDNIGHT + 7 * MS_PER_DAY)));
        assert_eq!(days(week), range(Some("2027-03-02"), Some("2027-03-08")));
        let either = ws()
            .eq(ms(MIDNIGHT))
            .or(ws().eq(ms(MIDNIGHT + 3 * MS_PER_DAY)));
        assert_eq!(days(either), range(Some("2027-03-02"), Some("2027-03-05")));
        let one_side = ws().eq(ms(MIDNIGHT)).or(col("station").eq(lit("S 1")));
        assert_eq!(days(one_side), None);
        assert_eq!(days(col("window_end").gt(ms(MIDNIGHT))), None);
        assert_eq!(days(ws().not_eq(ms(MIDNIGHT))), None);
        let negated = ws().not_between(ms(MIDNIGHT), ms(MIDNIGHT + 1));
        assert_eq!(days(negated), None);
    }

    #[test]
    fn casts_to_a_date_or_a_timestamp_keep_the_day() {
        let on_date = cast(col("window_start"), DataType::Date32)
            .eq(lit(ScalarValue::Date32(Some(DAY as i32))));
        assert_eq!(days(on_date), range(Some("2027-03-02"), Some("2027-03-02")));
        let after_date = cast(col("window_start"), DataType::Date32)
            .gt(lit(ScalarValue::Date32(Some(DAY as i32))));
        assert_eq!(days(after_date), range(Some("2027-03-03"), None));
        let seconds = cast(
            col("window_start"),
            DataType::Timestamp(TimeUnit::Second, None),
        )
        .lt(lit(ScalarValue::TimestampSecond(Some(DAY * 86_400), None)));
        assert_eq!(days(seconds), range(None, Some("2027-03-01")));
        let to_text = cast(col("window_start"), DataType::Utf8).eq(lit("2027-03-02"));
        assert_eq!(days(to_text), None);
    }

    #[test]
    fn bounds_past_the_years_that_sort_are_dropped() {
        let far = ms(i64::MAX);
        assert_eq!(days(col("window_start").lt_eq(far)), range(None, None));
        let at_min = col("window_start").lt(ms(i64::MIN));
        assert_eq!(days(at_min), None);
    }
}
