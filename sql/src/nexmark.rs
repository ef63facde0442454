//! Nexmark: the person, auction and bid events of the `nexmark` crate's
//! generator as three tables (the columns RisingWave and Arroyo name), and
//! the files `weir gen nexmark` writes of them. The events are those of the
//! generator's fixed sequence: event `n` is the same whoever generates it,
//! so that `parts` generators, each taking every `parts`-th event, together
//! give the one sequence. Event times start at [`BASE_TIME`] and follow the
//! generator's rate (10,000 events a second by default).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::Event;

use crate::error::{Result, SqlError};
use crate::tpch::{io, write_parquet};

/// The tables, in the order of their events' kinds.
pub const TABLES: [&str; 3] = ["person", "auction", "bid"];

/// Nexmark's queries that stream, in Flink's SQL forms over weir's window
/// functions (`sql/nexmark/qN.sql`): q0-q8 (Flink leaves out q6), and
/// q11's session windows.
pub const QUERIES: [(&str, &str); 9] = [
    ("q0", include_str!("../nexmark/q0.sql")),
    ("q1", include_str!("../nexmark/q1.sql")),
    ("q2", include_str!("../nexmark/q2.sql")),
    ("q3", include_str!("../nexmark/q3.sql")),
    ("q4", include_str!("../nexmark/q4.sql")),
    ("q5", include_str!("../nexmark/q5.sql")),
    ("q7", include_str!("../nexmark/q7.sql")),
    ("q8", include_str!("../nexmark/q8.sql")),
    ("q11", include_str!("../nexmark/q11.sql")),
];

/// The event-time column of every Nexmark table (its watermarks' time).
pub(crate) const EVENT_TIME: &str = "date_time";

/// The time of the first event: 2015-07-15 00:00:00 UTC, in milliseconds
/// since the epoch (fixed, where the crate's default is the present).
pub const BASE_TIME: u64 = 1_436_918_400_000;

/// Rows per generated batch.
const BATCH: usize = 8192;

fn time() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// The columns of `table` (one of [`TABLES`]).
pub fn schema(table: &str) -> Option<SchemaRef> {
    let long = |name: &str| Field::new(name, DataType::Int64, false);
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let at = |name: &str| Field::new(name, time(), false);
    let fields = match table {
        "person" => vec![
            long("id"),
            text("name"),
            text("email_address"),
            text("credit_card"),
            text("city"),
            text("state"),
            at("date_time"),
            text("extra"),
        ],
        "auction" => vec![
            long("id"),
            text("item_name"),
            text("description"),
            long("initial_bid"),
            long("reserve"),
            at("date_time"),
            at("expires"),
            long("seller"),
            long("category"),
            text("extra"),
        ],
        "bid" => vec![
            long("auction"),
            long("bidder"),
            long("price"),
            text("channel"),
            text("url"),
            at("date_time"),
            text("extra"),
        ],
        _ => return None,
    };
    Some(Arc::new(Schema::new(fields)))
}

/// The generator of events `offset`, `offset + step`, ... of the sequence.
pub fn generator(offset: u64, step: u64) -> EventGenerator {
    let config = NexmarkConfig {
        base_time: BASE_TIME,
        ..NexmarkConfig::default()
    };
    EventGenerator::new(config)
        .with_offset(offset)
        .with_step(step.max(1))
}

fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn millis(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// Rows of the three tables being gathered.
#[derive(Default)]
pub struct Rows {
    person: Vec<nexmark::event::Person>,
    auction: Vec<nexmark::event::Auction>,
    bid: Vec<nexmark::event::Bid>,
}

impl Rows {
    /// Adds an event to its table.
    pub fn push(&mut self, event: Event) {
        match event {
            Event::Person(p) => self.person.push(p),
            Event::Auction(a) => self.auction.push(a),
            Event::Bid(b) => self.bid.push(b),
        }
    }

    /// Rows gathered, in all tables.
    pub fn len(&self) -> usize {
        self.person.len() + self.auction.len() + self.bid.len()
    }

    /// Whether no rows are gathered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The gathered rows of each table as a batch (`None`: no rows), in
    /// the order of [`TABLES`]; nothing is left gathered.
    pub fn take(&mut self) -> Result<[Option<RecordBatch>; 3]> {
        Ok([self.people()?, self.auctions()?, self.bids()?])
    }

    fn people(&mut self) -> Result<Option<RecordBatch>> {
        if self.person.is_empty() {
            return Ok(None);
        }
        let mut c = Columns::default();
        for p in self.person.drain(..) {
            c.long(0, p.id);
            c.text(1, p.name);
            c.text(2, p.email_address);
            c.text(3, p.credit_card);
            c.text(4, p.city);
            c.text(5, p.state);
            c.time(6, p.date_time);
            c.text(7, p.extra);
        }
        c.batch("person")
    }

    fn auctions(&mut self) -> Result<Option<RecordBatch>> {
        if self.auction.is_empty() {
            return Ok(None);
        }
        let mut c = Columns::default();
        for a in self.auction.drain(..) {
            c.long(0, a.id);
            c.text(1, a.item_name);
            c.text(2, a.description);
            c.long(3, a.initial_bid);
            c.long(4, a.reserve);
            c.time(5, a.date_time);
            c.time(6, a.expires);
            c.long(7, a.seller);
            c.long(8, a.category);
            c.text(9, a.extra);
        }
        c.batch("auction")
    }

    fn bids(&mut self) -> Result<Option<RecordBatch>> {
        if self.bid.is_empty() {
            return Ok(None);
        }
        let mut c = Columns::default();
        for b in self.bid.drain(..) {
            c.long(0, b.auction);
            c.long(1, b.bidder);
            c.long(2, b.price);
            c.text(3, b.channel);
            c.text(4, b.url);
            c.time(5, b.date_time);
            c.text(6, b.extra);
        }
        c.batch("bid")
    }
}

/// A table's columns being built, by position.
#[derive(Default)]
struct Columns {
    builders: Vec<Option<Box<dyn ArrayBuilder>>>,
}

impl Columns {
    fn at<B: ArrayBuilder + Default>(&mut self, i: usize) -> Option<&mut B> {
        if self.builders.len() <= i {
            self.builders.resize_with(i + 1, || None);
        }
        self.builders[i]
            .get_or_insert_with(|| Box::new(B::default()))
            .as_any_mut()
            .downcast_mut::<B>()
    }

    fn long(&mut self, i: usize, v: usize) {
        if let Some(b) = self.at::<Int64Builder>(i) {
            b.append_value(int(v));
        }
    }

    fn text(&mut self, i: usize, v: String) {
        if let Some(b) = self.at::<StringBuilder>(i) {
            b.append_value(v);
        }
    }

    fn time(&mut self, i: usize, v: u64) {
        if let Some(b) = self.at::<TimestampMillisecondBuilder>(i) {
            b.append_value(millis(v));
        }
    }

    fn batch(self, table: &str) -> Result<Option<RecordBatch>> {
        let columns = self
            .builders
            .into_iter()
            .map(|b| b.map(|mut b| b.finish()))
            .collect::<Option<Vec<ArrayRef>>>()
            .ok_or_else(|| SqlError::Execution(format!("a Nexmark {table} column left unset")))?;
        batch(table, columns)
    }
}

fn batch(table: &str, columns: Vec<ArrayRef>) -> Result<Option<RecordBatch>> {
    let schema =
        schema(table).ok_or_else(|| SqlError::Plan(format!("no Nexmark table {table}")))?;
    Ok(Some(RecordBatch::try_new(schema, columns)?))
}

/// What a `STORED AS NEXMARK` table reads: one of the tables, of the
/// first `events` events (all of them if none), generated at `rate` events
/// a second (as fast as it can if none) when it streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NexmarkTable {
    /// Its index in [`TABLES`].
    pub table: usize,
    /// Events of the sequence (of all three tables) it holds.
    pub events: Option<u64>,
    /// Events a second, over all workers, when it streams.
    pub rate: Option<u64>,
}

impl NexmarkTable {
    /// The events of the sequence worker `index` of `peers` generates: every
    /// `peers`-th, from event `index`.
    pub fn share(&self, index: usize, peers: usize) -> Option<u64> {
        self.events
            .map(|events| share_of(events, index as u64, peers.max(1) as u64))
    }
}

/// Of the first `events` events, those part `index` of `parts` holds.
fn share_of(events: u64, index: u64, parts: u64) -> u64 {
    events / parts + u64::from(index < events % parts)
}

/// One worker's share of a Nexmark table's events, generated a batch at a
/// time: events `index`, `index + peers`, ... of the sequence.
pub struct Share {
    generator: EventGenerator,
    table: usize,
    /// Events of this share generated so far.
    pub generated: u64,
    /// Events of this share (none: no end).
    pub events: Option<u64>,
    /// The time of the last event generated (ms since the epoch).
    pub last_time: Option<u64>,
}

impl Share {
    /// The share of worker `index` of `peers`, its first `skip` events
    /// already generated.
    pub fn new(table: &NexmarkTable, index: usize, peers: usize, skip: u64) -> Share {
        let step = peers.max(1) as u64;
        Share {
            generator: generator(index as u64 + skip * step, step),
            table: table.table,
            generated: skip,
            events: table.share(index, peers),
            last_time: None,
        }
    }

    /// Events of this share not generated yet (none: no end).
    pub fn left(&self) -> Option<u64> {
        self.events.map(|e| e.saturating_sub(self.generated))
    }

    /// The table's rows among the next `events` events of the share (fewer
    /// at its end); `None` when none of them is of the table.
    pub fn next_batch(&mut self, events: u64) -> Result<Option<RecordBatch>> {
        let events = self.left().map_or(events, |left| left.min(events));
        let mut rows = Rows::default();
        for event in self.generator.by_ref().take(events as usize) {
            self.generated += 1;
            let (kind, time) = match &event {
                Event::Person(p) => (0, p.date_time),
                Event::Auction(a) => (1, a.date_time),
                Event::Bid(b) => (2, b.date_time),
            };
            self.last_time = Some(time);
            if kind == self.table {
                rows.push(event);
            }
        }
        let mut tables = rows.take()?;
        Ok(tables.get_mut(self.table).and_then(Option::take))
    }
}

/// Writes the first `events` events into `dir/<table>/`, each table in
/// `parts` Parquet files (`part-N.parquet`, part N holding events N,
/// N + parts, ...); returns each table's rows.
pub fn generate(dir: &Path, events: u64, parts: usize) -> Result<Vec<(&'static str, u64)>> {
    let parts = parts.max(1) as u64;
    let mut counts = [0u64; 3];
    for part in 0..parts {
        let mine = share_of(events, part, parts);
        let mut batches: [Vec<RecordBatch>; 3] = Default::default();
        let mut rows = Rows::default();
        for event in generator(part, parts).take(mine as usize) {
            rows.push(event);
            if rows.len() >= BATCH {
                for (t, b) in rows.take()?.into_iter().enumerate() {
                    batches[t].extend(b);
                }
            }
        }
        for (t, b) in rows.take()?.into_iter().enumerate() {
            batches[t].extend(b);
        }
        for (t, table) in TABLES.iter().enumerate() {
            let table_dir = dir.join(table);
            std::fs::create_dir_all(&table_dir).map_err(|e| io(&table_dir, e))?;
            let path = table_dir.join(format!("part-{part}.parquet"));
            let taken = std::mem::take(&mut batches[t]);
            counts[t] += match taken.is_empty() {
                // an empty part still declares the table's columns
                true => write_parquet(&path, std::iter::once(Ok(empty(table)?)))?,
                false => write_parquet(&path, taken.into_iter().map(Ok))?,
            };
        }
    }
    Ok(TABLES.into_iter().zip(counts).collect())
}

fn empty(table: &str) -> Result<RecordBatch> {
    let schema =
        schema(table).ok_or_else(|| SqlError::Plan(format!("no Nexmark table {table}")))?;
    Ok(RecordBatch::new_empty(schema))
}
