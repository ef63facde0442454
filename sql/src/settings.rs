//! `SET name = value`: the settings a script gives its queries, under
//! Flink's names.
//!
//! - `table.exec.state.ttl`: how long a streaming join without a time bound
//!   (a regular join) holds a row, as an interval (`'1 h'`, `'30 min'`; a
//!   bare number is milliseconds, as in Flink). Time here is processing
//!   time counted in the query's epochs, so that a replayed epoch expires
//!   exactly what it expired before. Without it such a join is refused:
//!   its state would grow without bound.
//! - `weir.late-rows.table`: the table that the late rows of a streaming
//!   query's windows go to (a Kafka table or an unbounded JSON table of a
//!   directory), each a JSON object of its columns and `late_in`, the
//!   operator that found it late. Without it late rows are counted and
//!   dropped, as Flink drops them.

use std::time::Duration;

use arrow::compute::kernels::cast_utils::{
    IntervalParseConfig, IntervalUnit, parse_interval_month_day_nano_config,
};

use crate::error::{Result, SqlError};

/// The settings of a session.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// `table.exec.state.ttl`, if set.
    pub state_ttl: Option<Duration>,
    /// `weir.late-rows.table`, if set.
    pub late_rows: Option<String>,
}

/// The name of the state TTL setting.
pub const STATE_TTL: &str = "table.exec.state.ttl";
/// The name of the setting of the table of late rows.
pub const LATE_ROWS: &str = "weir.late-rows.table";

impl Settings {
    /// Applies `SET variable = value`.
    pub fn set(&mut self, variable: &str, value: &str) -> Result<()> {
        let name = variable.trim_matches(|c| c == '\'' || c == '"');
        match name.to_lowercase().as_str() {
            STATE_TTL => {
                self.state_ttl = Some(interval(value).map_err(|why| {
                    SqlError::Plan(format!("SET {STATE_TTL} = '{value}': {why}"))
                })?);
                Ok(())
            }
            LATE_ROWS => {
                let table = value.trim().trim_matches(|c| c == '\'' || c == '"');
                if table.is_empty() {
                    return Err(SqlError::Plan(format!("SET {LATE_ROWS}: no table named")));
                }
                self.late_rows = Some(table.to_string());
                Ok(())
            }
            _ => Err(SqlError::Unsupported(format!(
                "SET {name} (weir knows {STATE_TTL} and {LATE_ROWS})"
            ))),
        }
    }
}

/// A positive interval of days, hours, minutes, seconds or milliseconds.
fn interval(value: &str) -> std::result::Result<Duration, String> {
    let config = IntervalParseConfig::new(IntervalUnit::Millisecond);
    let parsed =
        parse_interval_month_day_nano_config(value.trim(), config).map_err(|e| e.to_string())?;
    if parsed.months != 0 {
        return Err("months have no fixed length; give days".into());
    }
    let nanos = i128::from(parsed.days) * 86_400_000_000_000 + i128::from(parsed.nanoseconds);
    match u64::try_from(nanos) {
        Ok(n) if n > 0 => Ok(Duration::from_nanos(n)),
        _ => Err("not a positive interval".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_ttl_takes_intervals_and_milliseconds() {
        let mut settings = Settings::default();
        for (value, expected) in [
            ("1 h", 3_600_000),
            ("30 min", 1_800_000),
            ("1 day 2 seconds", 86_402_000),
            ("2500", 2_500),
        ] {
            settings.set("table.exec.state.ttl", value).unwrap();
            assert_eq!(
                settings.state_ttl,
                Some(Duration::from_millis(expected)),
                "{value}"
            );
        }
        settings.set("'TABLE.EXEC.STATE.TTL'", "10 s").unwrap();
        assert_eq!(settings.state_ttl, Some(Duration::from_secs(10)));
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let mut settings = Settings::default();
        for (variable, value, reason) in [
            (STATE_TTL, "0", "not a positive interval"),
            (STATE_TTL, "-5 s", "not a positive interval"),
            (STATE_TTL, "1 month", "months have no fixed length"),
            (STATE_TTL, "soon", "soon"),
            (
                "parallelism.default",
                "2",
                "weir knows table.exec.state.ttl and weir.late-rows.table",
            ),
        ] {
            let error = settings.set(variable, value).unwrap_err().to_string();
            assert!(error.contains(reason), "{variable} = {value}: {error}");
        }
        assert_eq!(settings.state_ttl, None);
    }
}
