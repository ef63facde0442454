//! Reading a table: every worker of every process reads its share. Parquet
//! files are shared by row groups, CSV and JSON files by byte ranges (the
//! lines that start in a worker's range are its own, as for `weir wordcount`).
//!
//! A scan starts once its gate's frontier is empty: a scan on the probe side
//! of a hash join waits until the join's table is built (see `gate`).

use std::fs::File;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use weir_runtime::JobError;
use weir_runtime::exec::WorkerCtx;
use weir_runtime::input::{LineInput, LinePos, LineReader};
use weir_runtime::time::BatchTime;

use super::Gate;
use crate::batch::Batch;
use crate::catalog::{Format, Table};
use crate::nexmark::Share;

/// Rows per batch read.
const BATCH_ROWS: usize = 8192;
/// Bytes of text decoded at a time.
const TEXT_BYTES: usize = 1 << 20;

/// What produces a worker's batches, one per call.
trait Reader {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, JobError>;
}

/// Reads this worker's share of `table`, its columns `projection`, once
/// `gate`'s frontier is empty.
pub fn scan<'s>(
    gate: Gate<'s>,
    ctx: &WorkerCtx,
    table: &Table,
    projection: &[usize],
) -> StreamVec<'s, BatchTime, Batch> {
    let mut reader: Option<Box<dyn Reader>> = match open(table, projection, ctx.index, ctx.peers) {
        Ok(reader) => Some(reader),
        Err(e) => {
            ctx.failure.set(e);
            None
        }
    };
    let failure = ctx.failure.clone();
    let records_in = ctx.records_in.clone();
    let scope = gate.scope();
    gate.unary_frontier::<CapacityContainerBuilder<Vec<Batch>>, _, _, _>(
        Pipeline,
        "Scan",
        move |cap, info| {
            let activator = scope.activator_for(info.address);
            let mut cap = Some(cap);
            move |(gate, gate_frontier), output| {
                gate.for_each(|_, _| {});
                if !gate_frontier.is_empty() {
                    return;
                }
                let (Some(time), Some(read)) = (cap.as_ref(), reader.as_mut()) else {
                    cap = None;
                    return;
                };
                if failure.is_set() {
                    cap = None;
                    return;
                }
                match read.next_batch() {
                    Ok(Some(batch)) => {
                        records_in.add(batch.num_rows() as u64);
                        output.session(time).give(Batch(batch));
                        activator.activate();
                    }
                    Ok(None) => cap = None,
                    Err(e) => {
                        failure.set(e);
                        cap = None;
                    }
                }
            }
        },
    )
}

/// Every row of `table`, its columns `projection`, read by one thread.
pub(crate) fn read_all(table: &Table, projection: &[usize]) -> Result<Vec<RecordBatch>, JobError> {
    let mut reader = open(table, projection, 0, 1)?;
    let mut batches = Vec::new();
    while let Some(batch) = reader.next_batch()? {
        batches.push(batch);
    }
    Ok(batches)
}

/// The reader of share `index` of `peers` of `table`.
fn open(
    table: &Table,
    projection: &[usize],
    index: usize,
    peers: usize,
) -> Result<Box<dyn Reader>, JobError> {
    let projected = Arc::new(table.schema.project(projection).map_err(|e| JobError::Io {
        path: table.name.clone(),
        message: e.to_string(),
    })?);
    Ok(match &table.format {
        Format::Kafka(kafka) => {
            return Err(JobError::Io {
                path: table.name.clone(),
                message: format!(
                    "Kafka topic {} is read by streaming queries only",
                    kafka.topic
                ),
            });
        }
        Format::Parquet => Box::new(ParquetShare::open(
            table, projection, projected, index, peers,
        )?),
        Format::Nexmark(source) => Box::new(NexmarkShare {
            share: Share::new(source, index, peers, 0),
            table: table.name.clone(),
            projection: projection.to_vec(),
        }),
        Format::Csv { .. } | Format::Json | Format::Text => Box::new(TextShare {
            lines: LineInput::Files(table.files.clone()).reader(index, peers)?,
            table: table.clone(),
            projection: projection.to_vec(),
            projected,
            text: Vec::new(),
            positions: Vec::new(),
            line: String::new(),
            done: false,
        }),
    })
}

/// A worker's share of a Nexmark table's events.
struct NexmarkShare {
    share: Share,
    table: String,
    projection: Vec<usize>,
}

impl Reader for NexmarkShare {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, JobError> {
        let error = |e: &dyn std::fmt::Display| JobError::Io {
            path: self.table.clone(),
            message: e.to_string(),
        };
        while self.share.left() != Some(0) {
            if let Some(batch) = self
                .share
                .next_batch(BATCH_ROWS as u64)
                .map_err(|e| error(&e))?
            {
                return batch
                    .project(&self.projection)
                    .map(Some)
                    .map_err(|e| error(&e));
            }
        }
        Ok(None)
    }
}

/// The row groups of a table's Parquet files that one worker reads.
struct ParquetShare {
    /// (file, row group), in order, this worker's.
    groups: Vec<(usize, usize)>,
    files: Vec<std::path::PathBuf>,
    projection: Vec<usize>,
    /// The columns as the table declares them (views read as plain).
    schema: SchemaRef,
    current: Option<ParquetRecordBatchReader>,
}

impl ParquetShare {
    fn open(
        table: &Table,
        projection: &[usize],
        schema: SchemaRef,
        index: usize,
        peers: usize,
    ) -> Result<Self, JobError> {
        let mut groups = Vec::new();
        let mut k = 0usize;
        for (f, path) in table.files.iter().enumerate() {
            let file = File::open(path).map_err(|e| JobError::io(path, &e))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| parquet_error(path, e))?;
            for g in 0..builder.metadata().num_row_groups() {
                if k % peers == index {
                    groups.push((f, g));
                }
                k += 1;
            }
        }
        groups.reverse();
        Ok(ParquetShare {
            groups,
            files: table.files.clone(),
            projection: projection.to_vec(),
            schema,
            current: None,
        })
    }
}

fn parquet_error(path: &std::path::Path, e: impl std::fmt::Display) -> JobError {
    JobError::Malformed {
        position: path.display().to_string(),
        message: format!("not a readable Parquet file: {e}"),
        remedy: None,
    }
}

impl Reader for ParquetShare {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, JobError> {
        loop {
            if let Some(reader) = self.current.as_mut() {
                match reader.next() {
                    Some(batch) => {
                        let batch = batch.map_err(|e| JobError::Malformed {
                            position: "parquet".into(),
                            message: e.to_string(),
                            remedy: None,
                        })?;
                        return Ok(Some(conform(batch, &self.schema)?));
                    }
                    None => self.current = None,
                }
            }
            let Some((f, g)) = self.groups.pop() else {
                return Ok(None);
            };
            let path = &self.files[f];
            let file = File::open(path).map_err(|e| JobError::io(path, &e))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| parquet_error(path, e))?;
            let mask =
                ProjectionMask::roots(builder.parquet_schema(), self.projection.iter().copied());
            let reader = builder
                .with_row_groups(vec![g])
                .with_projection(mask)
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| parquet_error(path, e))?;
            self.current = Some(reader);
        }
    }
}

/// `batch` with its columns cast to `schema`'s types where they differ.
fn conform(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, JobError> {
    if batch
        .schema()
        .fields()
        .iter()
        .zip(schema.fields())
        .all(|(a, b)| a.data_type() == b.data_type())
    {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| JobError::Internal(e.to_string()))?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| JobError::Internal(e.to_string()))
}

/// One worker's lines of a table's CSV, JSON or text files, decoded a megabyte at
/// a time.
struct TextShare {
    lines: LineReader,
    table: Table,
    projection: Vec<usize>,
    projected: SchemaRef,
    text: Vec<u8>,
    /// Where each line of `text` came from (for errors).
    positions: Vec<LinePos>,
    line: String,
    done: bool,
}

impl TextShare {
    /// Reads up to [`TEXT_BYTES`] of lines into `text`; header lines of CSV
    /// files with headers are left out.
    fn fill(&mut self) -> Result<(), JobError> {
        self.text.clear();
        self.positions.clear();
        let header = matches!(
            self.table.format,
            Format::Csv {
                has_header: true,
                ..
            }
        );
        while self.text.len() < TEXT_BYTES {
            let Some(pos) = self.lines.next_line(&mut self.line)? else {
                self.done = true;
                break;
            };
            let blank = self.line.trim().is_empty() && self.table.format != Format::Text;
            if (header && pos.offset == 0) || blank {
                continue;
            }
            self.text.extend_from_slice(self.line.as_bytes());
            self.text.push(b'\n');
            self.positions.push(pos);
        }
        Ok(())
    }

    /// Decodes `text` (lines `positions`) into one batch of the table's schema.
    fn decode(&self, text: &[u8]) -> Result<Option<RecordBatch>, arrow::error::ArrowError> {
        let schema = Arc::clone(&self.table.schema);
        // every line in one batch
        let rows = text.iter().filter(|&&b| b == b'\n').count().max(1);
        match &self.table.format {
            &Format::Csv { delimiter, .. } => {
                let mut decoder = arrow::csv::ReaderBuilder::new(schema)
                    .with_header(false)
                    .with_delimiter(delimiter)
                    .with_batch_size(rows)
                    .build_decoder();
                feed(text, |bytes| decoder.decode(bytes))?;
                decoder.decode(&[])?;
                decoder.flush()
            }
            Format::Text => {
                let text = std::str::from_utf8(text)
                    .map_err(|e| arrow::error::ArrowError::ParseError(e.to_string()))?;
                let lines: arrow::array::StringArray = text.lines().map(Some).collect();
                RecordBatch::try_new(schema, vec![Arc::new(lines)]).map(Some)
            }
            Format::Parquet | Format::Nexmark(_) | Format::Kafka(_) => Err(
                arrow::error::ArrowError::ParseError("not a text format".into()),
            ),
            Format::Json => {
                let mut decoder = arrow::json::ReaderBuilder::new(schema)
                    .with_batch_size(rows)
                    .build_decoder()?;
                feed(text, |bytes| decoder.decode(bytes))?;
                decoder.flush()
            }
        }
    }

    /// The first line of `text` that does not decode, with the reason.
    fn culprit(&self) -> JobError {
        let mut start = 0;
        for (i, end) in self
            .text
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1)
            .enumerate()
        {
            if let Err(e) = self.decode(&self.text[start..end]) {
                let position = self.lines.locate(self.positions[i]);
                return JobError::Malformed {
                    position,
                    message: without_relative_line(&e.to_string()),
                    remedy: None,
                };
            }
            start = end;
        }
        JobError::Malformed {
            position: self.table.name.clone(),
            message: "rows that do not decode together".into(),
            remedy: None,
        }
    }
}

/// Gives `text` to a decoder until it takes no more.
fn feed(
    text: &[u8],
    mut decode: impl FnMut(&[u8]) -> Result<usize, arrow::error::ArrowError>,
) -> Result<(), arrow::error::ArrowError> {
    let mut rest = text;
    while !rest.is_empty() {
        let used = decode(rest)?;
        if used == 0 {
            break;
        }
        rest = &rest[used..];
    }
    Ok(())
}

/// Arrow's message without its line number within the decoded text (the
/// position names the line in the file).
fn without_relative_line(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => {
            let rest = &message[at + " at line ".len()..];
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            format!("{}{}", &message[..at], &rest[digits..])
        }
        None => message.to_string(),
    }
}

impl Reader for TextShare {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, JobError> {
        loop {
            if self.done && self.text.is_empty() {
                return Ok(None);
            }
            self.fill()?;
            if self.text.is_empty() {
                continue;
            }
            let batch = match self.decode(&self.text) {
                Ok(Some(batch)) => batch,
                Ok(None) => continue,
                Err(_) => return Err(self.culprit()),
            };
            self.text.clear();
            let batch = batch
                .project(&self.projection)
                .map_err(|e| JobError::Internal(e.to_string()))?;
            debug_assert_eq!(batch.schema().fields().len(), self.projected.fields().len());
            return Ok(Some(batch));
        }
    }
}
