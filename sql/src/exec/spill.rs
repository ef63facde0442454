//! Rows spilled to disk: batches split by the hash of their keys into a
//! fixed number of partitions, each an Arrow IPC stream file in the worker's
//! [`SpillDir`]. The hash is seeded apart from the one that routes rows to
//! workers, so that one worker's rows still spread over all partitions.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use weir_runtime::spill::SpillDir;

use super::split;
use crate::error::{Result, SqlError};

/// How many partitions spilled rows are split into.
pub(crate) const PARTITIONS: usize = 32;

/// The seed of the partitioning hash (any but the routing one).
const SEED: u64 = 0x5eed_0f5e_ed0f;

/// Spilled rows, one IPC file per partition, written as they come.
pub(crate) struct Partitioned {
    schema: SchemaRef,
    writers: Vec<Option<SpillWriter>>,
}

fn io_error(path: &std::path::Path, what: &str, e: impl std::fmt::Display) -> SqlError {
    SqlError::Input {
        location: path.display().to_string(),
        message: format!("{what} spill file: {e}"),
    }
}

impl Partitioned {
    /// No rows yet, of batches of `schema`.
    pub(crate) fn new(schema: SchemaRef) -> Partitioned {
        Partitioned {
            schema,
            writers: (0..PARTITIONS).map(|_| None).collect(),
        }
    }

    /// Writes `batch`'s rows to the partitions of the hashes of their `keys`
    /// columns.
    pub(crate) fn write(
        &mut self,
        dir: &mut SpillDir,
        batch: &RecordBatch,
        keys: &[usize],
    ) -> Result<()> {
        for (part, rows) in split(batch, keys, PARTITIONS, SEED)? {
            let writer = match &mut self.writers[part as usize] {
                Some(writer) => writer,
                slot => slot.insert(SpillWriter::new(dir, &self.schema)?),
            };
            writer.write(&rows)?;
        }
        Ok(())
    }

    /// Closes the files: each partition's, `None` where no row went.
    pub(crate) fn finish(self, dir: &SpillDir) -> Result<Vec<Option<Spilled>>> {
        self.writers
            .into_iter()
            .map(|writer| writer.map(|w| w.finish(dir)).transpose())
            .collect()
    }
}

/// Batches written to one IPC file, in order.
pub(crate) struct SpillWriter {
    path: PathBuf,
    schema: SchemaRef,
    stream: StreamWriter<BufWriter<File>>,
    rows: usize,
}

impl SpillWriter {
    /// A new file in `dir`, for batches of `schema`.
    pub(crate) fn new(dir: &mut SpillDir, schema: &SchemaRef) -> Result<SpillWriter> {
        let (path, file) = dir.create()?;
        let stream = StreamWriter::try_new(BufWriter::new(file), schema)
            .map_err(|e| io_error(&path, "creating", e))?;
        Ok(SpillWriter {
            path,
            schema: schema.clone(),
            stream,
            rows: 0,
        })
    }

    /// Appends `batch`.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows();
        self.stream
            .write(batch)
            .map_err(|e| io_error(&self.path, "writing", e))
    }

    /// Closes the file, counting its bytes as `dir`'s.
    pub(crate) fn finish(mut self, dir: &SpillDir) -> Result<Spilled> {
        self.stream
            .finish()
            .map_err(|e| io_error(&self.path, "closing", e))?;
        let bytes = std::fs::metadata(&self.path)
            .map_err(|e| io_error(&self.path, "measuring", e))?
            .len();
        dir.wrote(bytes);
        Ok(Spilled {
            path: self.path,
            rows: self.rows,
            schema: self.schema,
        })
    }
}

/// One closed spill file.
pub(crate) struct Spilled {
    path: PathBuf,
    rows: usize,
    schema: SchemaRef,
}

impl Spilled {
    /// The schema of its batches.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Its batches, read back in the order they were written.
    pub(crate) fn read(&self) -> Result<Vec<RecordBatch>> {
        let batches = self.reader()?.collect::<Result<Vec<_>>>()?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows != self.rows {
            return Err(io_error(
                &self.path,
                "reading",
                format!("{rows} rows back of {} written", self.rows),
            ));
        }
        Ok(batches)
    }

    /// Its batches one at a time, in the order they were written.
    pub(crate) fn reader(&self) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
        let path = self.path.clone();
        let file = File::open(&path).map_err(|e| io_error(&path, "opening", e))?;
        let reader = StreamReader::try_new(BufReader::new(file), None)
            .map_err(|e| io_error(&path, "reading", e))?;
        let schema = self.schema.clone();
        Ok(reader.map(move |b| {
            let b = b.map_err(|e| io_error(&path, "reading", e))?;
            if b.schema() != schema {
                return Err(io_error(&path, "reading", "a batch of another schema"));
            }
            Ok(b)
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    #[test]
    fn every_row_comes_back_once_and_a_key_stays_in_one_partition() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Utf8, false),
        ]));
        let parent = tempfile::tempdir().unwrap();
        let written = Rc::new(Cell::new(0));
        let mut dir = SpillDir::new(Some(parent.path().to_path_buf()), written.clone());
        let mut parts = Partitioned::new(schema.clone());
        for round in 0..3i64 {
            let keys: Vec<i64> = (0..1000).map(|i| i % 250).collect();
            let values: Vec<String> = (0..1000).map(|i| format!("{round}-{i}")).collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(keys)),
                    Arc::new(StringArray::from(values)),
                ],
            )
            .unwrap();
            parts.write(&mut dir, &batch, &[0]).unwrap();
        }
        let files = parts.finish(&dir).unwrap();
        assert!(files.iter().filter(|f| f.is_some()).count() > PARTITIONS / 2);
        let total: u64 = files
            .iter()
            .flatten()
            .map(|f| std::fs::metadata(&f.path).unwrap().len())
            .sum();
        assert!(total > 0);
        assert_eq!(written.get(), total);
        let mut owner = std::collections::HashMap::new();
        let mut rows = 0;
        for (p, file) in files.iter().enumerate() {
            let Some(file) = file else { continue };
            for batch in file.read().unwrap() {
                rows += batch.num_rows();
                for k in batch.column(0).as_primitive::<Int64Type>().values() {
                    assert_eq!(*owner.entry(*k).or_insert(p), p, "key {k}");
                }
            }
        }
        assert_eq!(rows, 3000);
        assert_eq!(owner.len(), 250);
    }
}
