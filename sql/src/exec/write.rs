//! Writing a result as files: every worker writes its share of the rows as
//! one part file (an ordered result is one file, from worker 0). A part file
//! appears under its name only once every worker has succeeded.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use weir_runtime::JobError;
use weir_runtime::exec::part_name;

/// The file format of written results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// CSV with a header line.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Newline-delimited JSON objects.
    Json,
}

impl FileFormat {
    fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
            FileFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for FileFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "csv" => Ok(FileFormat::Csv),
            "parquet" => Ok(FileFormat::Parquet),
            "json" => Ok(FileFormat::Json),
            _ => Err("expected csv, parquet or json".into()),
        }
    }
}

/// Where results go.
#[derive(Clone, Debug)]
pub struct Destination {
    /// The directory (see `weir_runtime::exec::prepare_output`).
    pub dir: PathBuf,
    /// The files' format.
    pub format: FileFormat,
}

impl Destination {
    /// The final name of worker `index`'s file.
    pub fn part(&self, index: usize) -> PathBuf {
        self.dir
            .join(format!("{}.{}", part_name(index), self.format.extension()))
    }

    fn pending(&self, index: usize) -> PathBuf {
        self.dir.join(format!(
            ".{}.{}.tmp",
            part_name(index),
            self.format.extension()
        ))
    }

    /// Writes worker `index`'s batches under a pending name.
    pub fn write(
        &self,
        index: usize,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(), JobError> {
        let path = self.pending(index);
        let io = |e: &dyn std::fmt::Display| JobError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let file = File::create(&path).map_err(|e| io(&e))?;
        match self.format {
            FileFormat::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(file);
                for batch in batches {
                    writer.write(batch).map_err(|e| io(&e))?;
                }
            }
            FileFormat::Json => {
                let mut writer = arrow::json::LineDelimitedWriter::new(file);
                for batch in batches {
                    writer.write(batch).map_err(|e| io(&e))?;
                }
                writer.finish().map_err(|e| io(&e))?;
            }
            FileFormat::Parquet => {
                let mut writer =
                    ArrowWriter::try_new(file, schema.clone(), None).map_err(|e| io(&e))?;
                for batch in batches {
                    writer.write(batch).map_err(|e| io(&e))?;
                }
                writer.close().map_err(|e| io(&e))?;
            }
        }
        Ok(())
    }

    /// Gives worker `index`'s file its name (`keep`), or removes it.
    pub fn settle(&self, index: usize, keep: bool) -> Result<(), JobError> {
        let pending = self.pending(index);
        if !pending.exists() {
            return Ok(());
        }
        if keep {
            std::fs::rename(&pending, self.part(index)).map_err(|e| JobError::io(&pending, &e))
        } else {
            std::fs::remove_file(&pending).map_err(|e| JobError::io(&pending, &e))
        }
    }

    /// Whether `dir` can take results (no earlier results in it).
    pub fn prepare(dir: &Path) -> Result<(), JobError> {
        weir_runtime::exec::prepare_output(dir)
    }
}
