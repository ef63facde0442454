//! Event-time windows as table functions, with the semantics of Flink's
//! window table-valued functions: `tumble`, `hop` and `session` take a
//! table and give its rows with two columns more, `window_start` and
//! `window_end`, the bounds of the window each row falls in (`hop`: a row
//! per window that holds it). A query groups by them:
//!
//! ```sql
//! SELECT window_start, window_end, auction, count(*)
//! FROM hop(bid, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
//! GROUP BY window_start, window_end, auction
//! ```
//!
//! The call syntax is Timeplus's (DataFusion's SQL parser does not parse
//! Flink's `TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), ...))`):
//! - `tumble(table, time, size [, offset])`: windows of `size` one after
//!   another, from `offset` past the epoch.
//! - `hop(table, time, slide, size [, offset])`: windows of `size` that
//!   start every `slide`.
//! - `session(table, time, gap [, key, ...])`: a window per run of rows of
//!   the same keys no more than `gap` apart; it ends `gap` after its last row
//!   (Flink's `PARTITION BY` keys are the trailing arguments).
//!
//! `table` is a declared table, a `WITH` query or a parenthesized query;
//! `time` a timestamp column of it; sizes are day-time intervals. A window
//! holds its start and not its end. Rows whose time is null fall in no
//! window. `relation` plans the calls into a [`Windowed`] node of
//! DataFusion's logical plan.

mod relation;

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion_common::{Column, DFSchema, DFSchemaRef, Result, plan_err};
use datafusion_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

pub use relation::WindowRelations;

/// The column of a window's start.
pub const WINDOW_START: &str = "window_start";
/// The column of a window's end.
pub const WINDOW_END: &str = "window_end";

/// Which windows a row falls in, in units of its time column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub enum Windows {
    /// Windows of `size`, one after another, starting `offset` past the
    /// epoch (and every `size` before and after).
    Tumble {
        /// Each window's length.
        size: i64,
        /// Where windows start, modulo `size`.
        offset: i64,
    },
    /// Windows of `size` starting every `slide`.
    Hop {
        /// Between two windows' starts.
        slide: i64,
        /// Each window's length.
        size: i64,
        /// Where windows start, modulo `slide`.
        offset: i64,
    },
    /// A window per run of rows of one key, each within `gap` of the last.
    Session {
        /// The longest time between two rows of one window.
        gap: i64,
    },
}

impl Windows {
    /// Calls `f` with the start of each window that holds time `t`, the
    /// latest first (a session window is not known from one row: none).
    /// `None` if a bound is out of the range of 64-bit times.
    pub fn starts(&self, t: i64, mut f: impl FnMut(i64)) -> Option<()> {
        let (slide, size, offset) = match *self {
            Windows::Tumble { size, offset } => (size, size, offset),
            Windows::Hop {
                slide,
                size,
                offset,
            } => (slide, size, offset),
            Windows::Session { .. } => return Some(()),
        };
        let (t, slide, size, offset) = (t as i128, slide as i128, size as i128, offset as i128);
        let mut start = t - (t - offset).rem_euclid(slide);
        while start > t - size {
            i64::try_from(start + size).ok()?;
            f(i64::try_from(start).ok()?);
            start -= slide;
        }
        Some(())
    }

    /// The length of a window that starts where its first row is, if fixed.
    pub fn size(&self) -> Option<i64> {
        match *self {
            Windows::Tumble { size, .. } | Windows::Hop { size, .. } => Some(size),
            Windows::Session { .. } => None,
        }
    }

    /// The function's name in SQL.
    pub fn name(&self) -> &'static str {
        match self {
            Windows::Tumble { .. } => "tumble",
            Windows::Hop { .. } => "hop",
            Windows::Session { .. } => "session",
        }
    }
}

/// Ticks of `unit` in `nanos` nanoseconds, if whole.
pub(crate) fn ticks(nanos: i128, unit: TimeUnit) -> Option<i64> {
    let per = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    match nanos % per {
        0 => i64::try_from(nanos / per).ok(),
        _ => None,
    }
}

/// The unit of the timestamp column `time` of `schema` (`function`'s
/// argument).
pub(crate) fn time_unit(schema: &DFSchema, time: &Column, function: &str) -> Result<TimeUnit> {
    let (_, field) = schema.qualified_field_from_column(time)?;
    match field.data_type() {
        DataType::Timestamp(unit, _) => Ok(*unit),
        other => plan_err!("{function}: the time column {time} is {other}, not a timestamp"),
    }
}

/// A table's rows with the windows they fall in: DataFusion's logical plan
/// node of a window function call.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Windowed {
    /// The table.
    pub input: Arc<LogicalPlan>,
    /// Its event-time column.
    pub time: Column,
    /// The windows.
    pub windows: Windows,
    /// A session window's keys (none for other windows).
    pub keys: Vec<Expr>,
    schema: DFSchemaRef,
}

impl Windowed {
    /// The node over `input`; `time` must be a timestamp column of it.
    pub fn try_new(
        input: LogicalPlan,
        time: Column,
        windows: Windows,
        keys: Vec<Expr>,
    ) -> Result<Windowed> {
        time_unit(input.schema(), &time, windows.name())?;
        let (_, field) = input.schema().qualified_field_from_column(&time)?;
        let window = DataType::clone(field.data_type());
        let mut fields: Vec<_> = input
            .schema()
            .iter()
            .map(|(q, f)| (q.cloned(), Arc::clone(f)))
            .collect();
        for name in [WINDOW_START, WINDOW_END] {
            if input.schema().has_column_with_unqualified_name(name) {
                return plan_err!(
                    "{}: the table has a column {name} already (rename it)",
                    windows.name()
                );
            }
            fields.push((None, Arc::new(Field::new(name, window.clone(), false))));
        }
        let schema = DFSchema::new_with_metadata(fields, input.schema().metadata().clone())?;
        Ok(Windowed {
            input: Arc::new(input),
            time,
            windows,
            keys,
            schema: Arc::new(schema),
        })
    }
}

impl PartialOrd for Windowed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (&self.input, &self.time, &self.windows, &self.keys).partial_cmp(&(
            &other.input,
            &other.time,
            &other.windows,
            &other.keys,
        ))
    }
}

impl UserDefinedLogicalNodeCore for Windowed {
    fn name(&self) -> &str {
        "Windowed"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        std::iter::once(Expr::Column(self.time.clone()))
            .chain(self.keys.iter().cloned())
            .collect()
    }

    /// A filter of the input's columns may run before tumbling and hopping
    /// windows are assigned (each row's windows are its own), not before
    /// session windows (a row joins its neighbours' window).
    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        match self.windows {
            Windows::Session { .. } => self
                .schema
                .columns()
                .into_iter()
                .map(|c| c.flat_name())
                .collect(),
            _ => [WINDOW_START, WINDOW_END]
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Windowed: {:?} on {}", self.windows, self.time)?;
        if !self.keys.is_empty() {
            let keys: Vec<String> = self.keys.iter().map(ToString::to_string).collect();
            write!(f, " by {}", keys.join(", "))?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let (Some(Expr::Column(time)), Some(input)) =
            (exprs.first().cloned(), inputs.into_iter().next())
        else {
            return plan_err!("{}: a time column and one input", self.windows.name());
        };
        Windowed::try_new(input, time, self.windows, exprs[1..].to_vec())
    }

    /// The input columns that the output's need (the input's own, in the
    /// same places), besides those of the time and keys.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let inputs = self.input.schema().fields().len();
        Some(vec![
            output_columns
                .iter()
                .copied()
                .filter(|&c| c < inputs)
                .collect(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(windows: Windows, t: i64) -> Vec<i64> {
        let mut out = Vec::new();
        windows.starts(t, |s| out.push(s));
        out
    }

    #[test]
    fn a_time_falls_in_one_tumbling_window_and_size_over_slide_hopping_ones() {
        let tumble = Windows::Tumble {
            size: 10,
            offset: 0,
        };
        assert_eq!(starts(tumble, 0), [0]);
        assert_eq!(starts(tumble, 9), [0]);
        assert_eq!(starts(tumble, 10), [10]);
        assert_eq!(starts(tumble, -1), [-10]);
        let offset = Windows::Tumble {
            size: 10,
            offset: 3,
        };
        assert_eq!(starts(offset, 2), [-7]);
        assert_eq!(starts(offset, 3), [3]);
        let hop = Windows::Hop {
            slide: 5,
            size: 15,
            offset: 0,
        };
        assert_eq!(starts(hop, 14), [10, 5, 0]);
        assert_eq!(starts(hop, 15), [15, 10, 5]);
        let uneven = Windows::Hop {
            slide: 4,
            size: 10,
            offset: 0,
        };
        assert_eq!(starts(uneven, 9), [8, 4, 0]);
        assert_eq!(starts(uneven, 10), [8, 4]);
        let gaps = Windows::Hop {
            slide: 10,
            size: 5,
            offset: 0,
        };
        assert_eq!(starts(gaps, 7), Vec::<i64>::new());
        assert_eq!(starts(gaps, 4), [0]);
    }

    #[test]
    fn a_window_out_of_the_range_of_times_is_none() {
        let tumble = Windows::Tumble {
            size: 10,
            offset: 0,
        };
        assert!(tumble.starts(i64::MAX, |_| {}).is_none());
        assert!(tumble.starts(i64::MIN, |_| {}).is_none());
        assert_eq!(starts(tumble, i64::MIN + 10), [i64::MIN + 8]);
    }

    #[test]
    fn sizes_are_whole_ticks_of_the_time_unit() {
        assert_eq!(ticks(10_000_000_000, TimeUnit::Millisecond), Some(10_000));
        assert_eq!(ticks(1_500_000, TimeUnit::Millisecond), None);
        assert_eq!(ticks(3, TimeUnit::Nanosecond), Some(3));
    }
}
