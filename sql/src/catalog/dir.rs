//! Unbounded tables of files: a directory that files arrive in (written
//! under a hidden name and renamed when complete, as `weir stream
//! wordcount` reads them), each line a row; JSON objects of the declared
//! columns, or text lines. With an event-time column, each file's watermark
//! follows the largest event time read from it, as a Kafka partition's
//! does.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion_expr::CreateExternalTable;

use super::{Format, IDLE_TIMEOUT_MS, Table, event_time, millis, one_text_column};
use crate::error::{Result, SqlError};

/// How an unbounded table of files streams: `CREATE UNBOUNDED EXTERNAL
/// TABLE t (...) STORED AS JSON LOCATION 'dir' OPTIONS ('event_time'
/// 'column', 'watermark_delay_ms' 'N', 'idle_timeout_ms' 'N')`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirStream {
    /// The directory files arrive in (files whose names start with `.` are
    /// left out until renamed).
    pub dir: PathBuf,
    /// The timestamp column of event time (JSON tables only): from the
    /// field of its name, milliseconds as a whole number or in a string.
    pub event_time: Option<String>,
    /// How far out of order events may come, in milliseconds.
    pub watermark_delay_ms: u64,
    /// A file read to its end this long ago (milliseconds) stops holding
    /// event time back.
    pub idle_timeout_ms: u64,
}

/// The unbounded table `name` of the files arriving in the directory that
/// `cmd` names, of `format`.
pub(super) fn table(name: &str, format: Format, cmd: &CreateExternalTable) -> Result<Table> {
    let plan = |message: String| SqlError::Plan(format!("table {name}: {message}"));
    let [dir] = cmd.locations.as_slice() else {
        return Err(plan("LOCATION names one directory".into()));
    };
    let dir = PathBuf::from(dir);
    if !dir.is_dir() {
        return Err(SqlError::Input {
            location: dir.display().to_string(),
            message: format!(
                "not a directory (the unbounded table {name} reads the files that arrive in one)"
            ),
        });
    }
    let declared = Arc::new(cmd.schema.as_arrow().clone());
    let schema = match format {
        Format::Json if declared.fields().is_empty() => {
            return Err(plan(
                "an unbounded JSON table declares its columns (its files have not come yet)".into(),
            ));
        }
        Format::Json => declared,
        Format::Text if declared.fields().is_empty() => {
            Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)]))
        }
        Format::Text => one_text_column(name, declared)?,
        _ => {
            return Err(SqlError::Unsupported(format!(
                "table {name}: an unbounded table of files is STORED AS JSON or TEXT \
                 (files of lines that arrive in a directory)"
            )));
        }
    };
    let event_time = event_time(cmd, &schema).map_err(plan)?;
    if event_time.is_some() && format == Format::Text {
        return Err(plan(
            "a TEXT table has no event time (declare a JSON table with a timestamp column)".into(),
        ));
    }
    let stream = DirStream {
        dir,
        event_time,
        watermark_delay_ms: millis(cmd, "watermark_delay_ms", 0).map_err(plan)?,
        idle_timeout_ms: millis(cmd, "idle_timeout_ms", IDLE_TIMEOUT_MS).map_err(plan)?,
    };
    Ok(Table {
        name: name.to_string(),
        format,
        files: Vec::new(),
        schema,
        unbounded: true,
        stream: Some(Arc::new(stream)),
    })
}
