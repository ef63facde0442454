//! Tables the user declared with `CREATE EXTERNAL TABLE`: their files, their
//! format and their schema (declared, or inferred from the first file).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion_expr::CreateExternalTable;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Result, SqlError};
use crate::nexmark::NexmarkTable;

mod dir;
mod kafka;

pub use dir::DirStream;
pub use kafka::{KafkaTable, Metadata};

/// Rows read to infer the schema of a CSV or JSON table.
const INFER_ROWS: usize = 1000;
/// How long a quiet input holds event time back by default, in
/// milliseconds (as `weir stream yahoo`'s `--idle-timeout`).
const IDLE_TIMEOUT_MS: u64 = 5_000;

/// How a table's files are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// Delimited text.
    Csv {
        /// Whether each file's first line names the columns.
        has_header: bool,
        /// The field delimiter.
        delimiter: u8,
    },
    /// Newline-delimited JSON objects.
    Json,
    /// Apache Parquet.
    Parquet,
    /// Lines of text, one row each, in one text column (Spark's `text`
    /// format): `line` unless the table declares another name.
    Text,
    /// Nexmark's events, generated (no files).
    Nexmark(NexmarkTable),
    /// A Kafka topic's records, their values JSON objects (no files).
    Kafka(Arc<KafkaTable>),
}

impl Format {
    /// The extension of the files a directory location holds (text tables
    /// read every file).
    fn extension(&self) -> Option<&'static str> {
        match self {
            Format::Csv { .. } => Some("csv"),
            Format::Json => Some("json"),
            Format::Parquet => Some("parquet"),
            Format::Text | Format::Nexmark(_) | Format::Kafka(_) => None,
        }
    }
}

/// A declared table.
#[derive(Clone, Debug)]
pub struct Table {
    /// Its name in queries.
    pub name: String,
    /// How its files are written.
    pub format: Format,
    /// Its files, in order.
    pub files: Vec<PathBuf>,
    /// Its columns.
    pub schema: SchemaRef,
    /// Whether it is a stream without end (`CREATE UNBOUNDED EXTERNAL
    /// TABLE`): a query that reads it runs as a streaming job.
    pub unbounded: bool,
    /// For an unbounded table of files, the directory they arrive in.
    pub stream: Option<Arc<DirStream>>,
}

fn input(location: &Path, message: impl std::fmt::Display) -> SqlError {
    SqlError::Input {
        location: location.display().to_string(),
        message: message.to_string(),
    }
}

impl Table {
    /// The table a `CREATE EXTERNAL TABLE` statement declares.
    pub fn declare(cmd: &CreateExternalTable) -> Result<Table> {
        let name = cmd.name.table().to_string();
        let format = match cmd.file_type.to_ascii_uppercase().as_str() {
            "CSV" => Format::Csv {
                has_header: option(cmd, "has_header")
                    .map(|v| v.eq_ignore_ascii_case("true"))
                    .unwrap_or(false),
                delimiter: match option(cmd, "delimiter") {
                    None => b',',
                    Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
                    Some(d) if d == "\\t" || d == "tab" => b'\t',
                    Some(d) => {
                        return Err(SqlError::Plan(format!(
                            "table {name}: the delimiter must be one ASCII character, not '{d}'"
                        )));
                    }
                },
            },
            "JSON" | "NDJSON" => Format::Json,
            "PARQUET" => Format::Parquet,
            "TEXT" => Format::Text,
            "NEXMARK" => return Table::nexmark(&name, cmd),
            "KAFKA" => return kafka::table(&name, cmd),
            other => {
                return Err(SqlError::Unsupported(format!(
                    "table {name}: STORED AS {other} (CSV, JSON, PARQUET, TEXT, NEXMARK \
                     and KAFKA are)"
                )));
            }
        };
        if cmd.unbounded {
            return dir::table(&name, format, cmd);
        }
        let declared =
            (!cmd.schema.fields().is_empty()).then(|| Arc::new(cmd.schema.as_arrow().clone()));
        Table::open(&name, format, &cmd.locations, declared)
    }

    /// Its event-time column, if it has one.
    pub fn event_time(&self) -> Option<&str> {
        match &self.format {
            Format::Nexmark(_) => Some(crate::nexmark::EVENT_TIME),
            Format::Kafka(kafka) => kafka.event_time.as_deref(),
            _ => self.stream.as_ref()?.event_time.as_deref(),
        }
    }

    /// A table of Nexmark's events: `LOCATION 'bid'` (or `person`,
    /// `auction`) names which, `OPTIONS ('events' 'N', 'rate' 'R')` how many
    /// (all, unending, if not given: only for an `UNBOUNDED` table) and how
    /// fast they are generated when it streams (events a second).
    fn nexmark(name: &str, cmd: &CreateExternalTable) -> Result<Table> {
        let location = match cmd.locations.as_slice() {
            [one] => one.as_str(),
            _ => "",
        };
        let Some(table) = crate::nexmark::TABLES.iter().position(|t| *t == location) else {
            return Err(SqlError::Plan(format!(
                "table {name}: LOCATION '{location}' is not a Nexmark table \
                 (person, auction or bid)"
            )));
        };
        if !cmd.schema.fields().is_empty() {
            return Err(SqlError::Plan(format!(
                "table {name}: a Nexmark table's columns are Nexmark's (declare none)"
            )));
        }
        let number = |key: &str| -> Result<Option<u64>> {
            option(cmd, key)
                .map(|v| {
                    v.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
                        SqlError::Plan(format!(
                            "table {name}: option '{key}' is '{v}', not a positive whole number"
                        ))
                    })
                })
                .transpose()
        };
        let source = NexmarkTable {
            table,
            events: number("events")?,
            rate: number("rate")?,
        };
        if source.events.is_none() && !cmd.unbounded {
            return Err(SqlError::Plan(format!(
                "table {name}: a bounded Nexmark table needs OPTIONS ('events' 'N') \
                 (or declare it UNBOUNDED)"
            )));
        }
        Ok(Table {
            name: name.to_string(),
            format: Format::Nexmark(source),
            files: Vec::new(),
            schema: crate::nexmark::schema(location).ok_or_else(|| {
                SqlError::Plan(format!("table {name}: no Nexmark table {location}"))
            })?,
            unbounded: cmd.unbounded,
            stream: None,
        })
    }

    /// The table `name` of the files at `locations` (files, or directories
    /// of files with the format's extension); its schema `declared` or
    /// inferred from the first file.
    pub fn open(
        name: &str,
        format: Format,
        locations: &[impl AsRef<Path>],
        declared: Option<SchemaRef>,
    ) -> Result<Table> {
        let mut files = Vec::new();
        for location in locations {
            files.extend(list(location.as_ref(), &format)?);
        }
        let Some(first) = files.first() else {
            let named: Vec<String> = locations
                .iter()
                .map(|l| l.as_ref().display().to_string())
                .collect();
            return Err(SqlError::Input {
                location: named.join(", "),
                message: match format.extension() {
                    Some(extension) => format!("no .{extension} files"),
                    None => "no files".into(),
                },
            });
        };
        let schema = match declared {
            Some(schema) if format == Format::Text => one_text_column(name, schema)?,
            Some(schema) => schema,
            None => infer(first, &format)?,
        };
        Ok(Table {
            name: name.to_string(),
            format,
            files,
            schema,
            unbounded: false,
            stream: None,
        })
    }
}

/// The schema of a text table that declares its columns: one text column.
fn one_text_column(table: &str, schema: SchemaRef) -> Result<SchemaRef> {
    match schema.fields().as_ref() {
        [field] if matches!(field.data_type(), DataType::Utf8 | DataType::Utf8View) => {
            Ok(Arc::new(plain(&schema)))
        }
        fields => Err(SqlError::Plan(format!(
            "table {table}: a TEXT table has one column of type VARCHAR (its lines), not {}",
            fields
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The event-time column that `OPTIONS ('event_time' 'column')` names,
/// which must be one of `schema`'s, a timestamp in milliseconds.
fn event_time(
    cmd: &CreateExternalTable,
    schema: &Schema,
) -> std::result::Result<Option<String>, String> {
    let Some(column) = option(cmd, "event_time") else {
        return Ok(None);
    };
    let field = schema
        .field_with_name(column)
        .map_err(|_| format!("event_time '{column}' is not one of its columns"))?;
    if field.data_type() != &DataType::Timestamp(TimeUnit::Millisecond, None) {
        return Err(format!(
            "event_time '{column}' is {}, not TIMESTAMP(3) (milliseconds)",
            field.data_type()
        ));
    }
    Ok(Some(column.clone()))
}

/// The whole number of option `key`, `default` without one.
fn millis(cmd: &CreateExternalTable, key: &str, default: u64) -> std::result::Result<u64, String> {
    match option(cmd, key) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| format!("option '{key}' is '{v}', not a whole number")),
    }
}

/// A table option, with or without DataFusion's `format.` prefix.
pub(crate) fn option<'a>(cmd: &'a CreateExternalTable, key: &str) -> Option<&'a String> {
    cmd.options
        .get(&format!("format.{key}"))
        .or_else(|| cmd.options.get(key))
}

/// The files of a location: the file itself, or a directory's files with
/// the format's extension, in name order (hidden files left out).
fn list(location: &Path, format: &Format) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(location).map_err(|e| input(location, e))?;
    if meta.is_file() {
        return Ok(vec![location.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(location).map_err(|e| input(location, e))? {
        let path = entry.map_err(|e| input(location, e))?.path();
        let visible = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'));
        let fits = format.extension().is_none_or(|wanted| {
            path.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case(wanted))
        });
        if visible && fits && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The schema of `file`.
fn infer(file: &Path, format: &Format) -> Result<SchemaRef> {
    let open = || File::open(file).map_err(|e| input(file, e));
    let schema: Schema = match format {
        &Format::Csv {
            has_header,
            delimiter,
        } => {
            arrow::csv::reader::Format::default()
                .with_header(has_header)
                .with_delimiter(delimiter)
                .infer_schema(open()?, Some(INFER_ROWS))
                .map_err(|e| input(file, e))?
                .0
        }
        Format::Json => {
            arrow::json::reader::infer_json_schema(BufReader::new(open()?), Some(INFER_ROWS))
                .map_err(|e| input(file, e))?
                .0
        }
        Format::Parquet => {
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(open()?).map_err(|e| input(file, e))?;
            plain(builder.schema())
        }
        Format::Text => {
            open()?;
            Schema::new(vec![Field::new("line", DataType::Utf8, false)])
        }
        Format::Nexmark(_) | Format::Kafka(_) => {
            return Err(input(file, "a generated or Kafka table has no files"));
        }
    };
    Ok(Arc::new(schema))
}

/// `schema` with string and binary views as plain strings and binaries: a
/// slice of a view array keeps its whole buffers alive, which rows routed
/// between workers would multiply (the scan casts what it reads).
fn plain(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                DataType::Utf8View => DataType::Utf8,
                DataType::BinaryView => DataType::Binary,
                other => other.clone(),
            };
            f.as_ref().clone().with_data_type(t)
        })
        .collect();
    Schema::new(fields)
}

/// The declared tables, by name.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    tables: BTreeMap<String, Table>,
}

impl Catalog {
    /// Adds `table`; a table of the same name is an error unless `replace`.
    pub fn add(&mut self, table: Table, replace: bool) -> Result<()> {
        if !replace && self.tables.contains_key(&table.name) {
            return Err(SqlError::Plan(format!(
                "table {} is already declared",
                table.name
            )));
        }
        self.tables.insert(table.name.clone(), table);
        Ok(())
    }

    /// The table called `name`.
    pub fn get(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// Every table.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }
}
