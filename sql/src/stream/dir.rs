//! An unbounded table of files: `weir-streaming`'s directory source (each
//! file read by the worker that owns its name, byte positions in every
//! checkpoint, committed epochs replayed with the same cut, each file's
//! watermark), its lines decoded into the table's columns: JSON objects by
//! Arrow's JSON decoder, a whole read at once, or text lines as they are.
//! Each read is decoded by a worker its file and byte choose, so that the
//! decoding of one file is shared by all workers. The event-time column
//! comes from the line's event time as the source reads it for its
//! watermark, so that rows and watermarks agree. A line that does not
//! decode fails the query, naming its file and byte and quoting it.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{Schema, SchemaRef};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Scope;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use weir_streaming::dir_source::{DirSource, LineTime, Lines, WatchDir};
use weir_streaming::run::StreamCtx;

use super::Epochs;
use super::kafka::json_objects;
use super::source::Source;
use crate::batch::Batch;
use crate::catalog::{DirStream, Format, Table};
use crate::error::{Result, SqlError};
use crate::exec::fail;

/// Characters of a line that does not decode quoted in the error.
const QUOTED: usize = 120;

/// Reads this worker's files of the directory of `table`, its columns
/// `projection`, in `epochs` (with their `stop_when_idle`, the stream ends
/// once no file has come for that long and every file is read).
pub(crate) fn dir<'s>(
    scope: Scope<'s, u64>,
    name: &str,
    (table, stream): (&Table, &DirStream),
    projection: Vec<usize>,
    epochs: Epochs,
    job: &StreamCtx,
) -> Source<'s> {
    let interval_ms = epochs.interval.as_millis().max(1) as u64;
    let source = DirSource {
        dir: stream.dir.clone(),
        interval: epochs.interval,
        stop_when_idle: epochs.stop_when_idle,
        event_time: stream.event_time.as_ref().map(|field| LineTime {
            field: field.clone(),
            out_of_orderness_ms: stream.watermark_delay_ms,
            idle_epochs: (stream.idle_timeout_ms / interval_ms).max(1),
        }),
    };
    if let Err(e) = source.validate() {
        job.source.failure.set(e);
    }
    let watched = scope.watch_dir(name, &source, &job.recovery, &job.checkpoints, &job.source);
    let decoding = Decoding::new(table, stream, projection);
    let failure = job.source.failure.clone();
    let rows = watched
        .lines
        .unary::<CapacityContainerBuilder<Vec<Batch>>, _, _, _>(
            Exchange::new(Lines::route),
            "DirLines",
            move |_, _| {
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let mut session = output.session(&cap);
                        for read in data.flat_map(|reads| reads.drain(..)) {
                            if failure.is_set() {
                                return;
                            }
                            match decoding.decode(&read) {
                                Ok(rows) => session.give(Batch(rows)),
                                Err(e) => fail(&failure, e),
                            }
                        }
                    })
                }
            },
        );
    Source {
        rows,
        acks: watched.acks,
        watermarks: watched.watermarks,
        commit: None,
    }
}

/// How lines become rows of the table.
struct Decoding {
    dir: String,
    table: String,
    text: bool,
    /// The columns decoded from JSON (all but the event-time one).
    json: SchemaRef,
    schema: SchemaRef,
    /// The index of the event-time column, and its field.
    event_time: Option<(usize, String)>,
    projection: Vec<usize>,
}

impl Decoding {
    fn new(table: &Table, stream: &DirStream, projection: Vec<usize>) -> Decoding {
        let event_time = stream
            .event_time
            .as_ref()
            .and_then(|c| Some((table.schema.index_of(c).ok()?, c.clone())));
        let json = table
            .schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, _)| event_time.as_ref().is_none_or(|(t, _)| t != i))
            .map(|(_, f)| Arc::clone(f))
            .collect::<Vec<_>>();
        Decoding {
            dir: stream.dir.display().to_string(),
            table: table.name.clone(),
            text: table.format == Format::Text,
            json: Arc::new(Schema::new(json)),
            schema: Arc::clone(&table.schema),
            event_time,
            projection,
        }
    }

    /// The rows of `read`, projected.
    fn decode(&self, read: &Lines) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = if self.text {
            vec![Arc::new(read.lines().map(Some).collect::<StringArray>())]
        } else {
            let decoded = match json_rows(&self.json, read) {
                Ok(decoded) => decoded,
                Err(e) => return Err(self.bad(read, e)),
            };
            let mut columns = decoded.columns().to_vec();
            if let Some((index, _)) = &self.event_time {
                let times: TimestampMillisecondArray =
                    read.times.iter().map(|&t| i64::try_from(t).ok()).collect();
                columns.insert(*index, Arc::new(times));
            }
            columns
        };
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        Ok(batch.project(&self.projection)?)
    }

    /// The error of `read`, whose lines do not decode (`e`): it names the
    /// first line at fault.
    fn bad(&self, read: &Lines, e: SqlError) -> SqlError {
        let (at, line, e) = read
            .lines_at()
            .find_map(|(at, line)| {
                json_objects(&self.json, [line.as_bytes()], 1)
                    .err()
                    .map(|e| (at, line, e))
            })
            .unwrap_or((read.start, "", e));
        let quoted: String = line.chars().take(QUOTED).collect();
        SqlError::Input {
            location: format!("{}/{}:byte {at}", self.dir, read.file),
            message: format!(
                "a line of table {} is not a JSON object of its columns: {e} (the line: {quoted})",
                self.table
            ),
        }
    }
}

/// The rows of the JSON objects of `read`, one a line (blank lines left
/// out), with `schema`'s columns: all its lines decoded at once.
fn json_rows(schema: &SchemaRef, read: &Lines) -> Result<RecordBatch> {
    let lines = if read.times.is_empty() {
        read.lines_at().count()
    } else {
        read.times.len()
    };
    json_objects(schema, [read.text.as_bytes()], lines)
}
