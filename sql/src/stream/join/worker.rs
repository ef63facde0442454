//! A worker's side of a streaming join: its held rows' encodings and
//! expiry index, the join of one epoch's new rows, and the rows owed when
//! held rows expire.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, RecordBatch, RecordBatchOptions, StringArray, UInt32Array, new_null_array,
};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use datafusion_common::JoinType;
use weir_progress::byte_string::ByteString;
use weir_streaming::window::{Frontier, Watermark};

use super::held::{Held, HeldRow, expiries, mark_met, remove, take_back};
use super::{Expire, Item, Owes, Routed, SIDES, Side, StreamJoin};
use crate::batch::Batch;
use crate::error::Result;
use crate::exec::{meeting, row_converter};
use crate::stream::keyed::{ByTime, Keyed};
use crate::stream::updating::with_op;

/// A worker's encodings and index of its held rows.
pub(super) struct Worker {
    join: Arc<StreamJoin>,
    /// Each side's rows (columns and keys) as bytes.
    rows: [RowConverter; 2],
    /// Keys as bytes (as they route).
    keys: RowConverter,
    /// Each side's held keys by the expiry of their rows.
    expiring: [ByTime; 2],
    /// What each side's rows owe beyond an inner join's pairs.
    owes: [Owes; 2],
    /// The schema of its rows with their `op`, if they are updates.
    updates: Option<SchemaRef>,
    /// Whether what a row that meets none owes goes out at once, and is
    /// taken back when it first meets one (an outer or anti join without a
    /// time bound, as Flink's regular joins: its rows are updates).
    at_once: bool,
    /// Whether each side's input has ended in this run (a restored run
    /// hears it again from its sources): the other side's later rows meet
    /// nothing more, and what they owe goes out at once.
    ended: [bool; 2],
}

impl Worker {
    pub(super) fn new(join: &Arc<StreamJoin>, state: &Keyed<Held>) -> Result<Worker> {
        let converter = |schema: &SchemaRef, from: usize| {
            row_converter(schema.fields()[from..].iter().map(|f| f.data_type()))
        };
        let [left, right] = &join.keyed;
        let k = join.spec.keys.left.len();
        let owes = Owes::of(join.spec.join_type)?;
        let at_once =
            matches!(join.expiry, Expire::After(_)) && owes.iter().any(|o| o.owed_unmet());
        let mut expiring: [ByTime; 2] = Default::default();
        for (key, Held(sides)) in state.iter() {
            for (side, rows) in sides.iter().enumerate() {
                for row in rows {
                    expiring[side]
                        .entry(row.expiry)
                        .or_default()
                        .insert(key.clone());
                }
            }
        }
        Ok(Worker {
            join: Arc::clone(join),
            rows: [converter(left, 0)?, converter(right, 0)?],
            keys: converter(left, left.fields().len() - k)?,
            expiring,
            owes,
            updates: (join.updates.contains(&true) || at_once).then(|| with_op(&join.spec.schema)),
            at_once,
            ended: [false; 2],
        })
    }

    pub(super) fn apply(
        &mut self,
        epoch: u64,
        items: Vec<Routed>,
        state: &mut Keyed<Held>,
        out: &mut Vec<Batch>,
    ) -> Result<()> {
        if let Expire::After(_) = self.join.expiry {
            // rows whose time ran out before this epoch meet nothing more,
            // whether or not this worker ran in between
            for side in SIDES {
                self.expire(state, side, epoch.checked_sub(1), out)?;
            }
        }
        let mut new: [Vec<RecordBatch>; 2] = Default::default();
        let mut gone: [Vec<RecordBatch>; 2] = Default::default();
        let mut marks: [Vec<Watermark>; 2] = Default::default();
        for routed in items {
            let side = routed.side.index();
            match routed.item {
                Item::Rows(Batch(b)) if b.num_rows() > 0 => new[side].push(b),
                Item::Gone(Batch(b)) if b.num_rows() > 0 => gone[side].push(b),
                Item::Rows(_) | Item::Gone(_) => {}
                Item::Watermark(w) => marks[side].push(w),
            }
        }
        let [left, right] = new;
        let new = [
            self.concat(Side::Left, left)?,
            self.concat(Side::Right, right)?,
        ];
        let [left, right] = gone;
        let gone = [
            self.concat(Side::Left, left)?,
            self.concat(Side::Right, right)?,
        ];
        let keys = [self.keys_of(&new[0])?, self.keys_of(&new[1])?];
        let gone_keys = [self.keys_of(&gone[0])?, self.keys_of(&gone[1])?];
        // the held rows each side's new and gone rows meet
        let held = [
            self.held(state, Side::Left, [&keys[1], &gone_keys[1]])?,
            self.held(state, Side::Right, [&keys[0], &gone_keys[0]])?,
        ];
        let met = self.meet(&new, &held, out)?;
        if gone.iter().any(Option::is_some) {
            self.meet_gone(&new, &gone, &held, out)?;
        }
        for side in SIDES {
            let s = side.index();
            if let Some(rows) = &held[s] {
                if self.at_once && self.owes[s].owed_unmet() {
                    // what these owed went out when they came: take it back
                    let first: Vec<u32> = met[s]
                        .held
                        .iter()
                        .copied()
                        .filter(|&i| !rows.met[i as usize])
                        .collect();
                    if let Some(owed) = self.unmet(side, &rows.batch, &first)? {
                        out.push(self.signed(owed, "-D")?);
                    }
                }
                let places: Vec<&(ByteString, usize)> = met[s]
                    .held
                    .iter()
                    .map(|&i| &rows.places[i as usize])
                    .collect();
                match self.owes[s] {
                    owes if owes.done_when_met() => remove(state, s, &places),
                    Owes::Padded => mark_met(state, s, &places),
                    _ => {}
                }
            }
            if let Some(batch) = &new[s] {
                self.hold(state, (side, epoch), (batch, &keys[s]), &met[s].new, out)?;
            }
            if let Some(batch) = &gone[s] {
                let rows = self.rows[s].convert_columns(batch.columns())?;
                take_back(state, s, &rows, &gone_keys[s]);
            }
        }
        // how far each side's event time has come (its end is not kept in
        // the state: a restored run with more input goes on from the last
        // time)
        let mut reached = [None; 2];
        for side in SIDES {
            let s = side.index();
            reached[s] = match Watermark::combine(std::mem::take(&mut marks[s])) {
                Some(Frontier::At(moved)) => {
                    let at = state
                        .shared(side.watermark())
                        .map_or(moved, |w| w.max(moved));
                    state.set_shared(side.watermark(), at);
                    Some(at)
                }
                Some(Frontier::End) => {
                    self.ended[s] = true;
                    Some(u64::MAX)
                }
                None if self.ended[s] => Some(u64::MAX),
                None => state.shared(side.watermark()),
            };
        }
        for side in SIDES {
            let clock = match &self.join.expiry {
                Expire::EventTime(_) => reached[side.other().index()],
                Expire::After(_) => Some(epoch),
            };
            self.expire(state, side, clock, out)?;
        }
        Ok(())
    }

    /// Joins the new rows of each side with the other side's held and new
    /// rows (each pair once): the pairs (of inner and outer joins), or a
    /// semi join's rows of its side that meet a row for the first time.
    /// Returns, per side that owes more than pairs, its rows that met one.
    fn meet(
        &self,
        new: &[Option<RecordBatch>; 2],
        held: &[Option<HeldRows>; 2],
        out: &mut Vec<Batch>,
    ) -> Result<[Met; 2]> {
        let spec = &self.join.spec;
        let held = [
            held[0].as_ref().map(|h| &h.batch),
            held[1].as_ref().map(|h| &h.batch),
        ];
        // (left, right, whether each is new)
        let pairs = [
            (new[0].as_ref(), held[1], true, false),
            (held[0], new[1].as_ref(), false, true),
            (new[0].as_ref(), new[1].as_ref(), true, true),
        ];
        let paired = matches!(
            spec.join_type,
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full
        );
        let mut met: [Met; 2] = Default::default();
        for (l, r, l_new, r_new) in pairs {
            let (Some(l), Some(r)) = (l, r) else { continue };
            let (li, ri) = meeting(l, r, spec)?;
            if li.is_empty() {
                continue;
            }
            if paired {
                out.push(self.signed(self.pairs(l, &li, r, &ri)?, "+I")?);
            }
            for (s, new, rows) in [(0, l_new, li), (1, r_new, ri)] {
                if self.owes[s] != Owes::Nothing {
                    met[s].add(new, rows);
                }
            }
        }
        for (s, met) in met.iter_mut().enumerate() {
            for (batch, rows) in [(new[s].as_ref(), &mut met.new), (held[s], &mut met.held)] {
                rows.sort_unstable();
                rows.dedup();
                if self.owes[s] == Owes::Semi
                    && let Some(batch) = batch
                    && !rows.is_empty()
                {
                    out.push(Batch(self.rows_of(batch, rows)?));
                }
            }
        }
        Ok(met)
    }

    /// The pairs that rows taken back (`gone`, of an updating side)
    /// withdraw, as `-D` rows: with the other side's held and new rows; and
    /// the pairs of two rows taken back, which both withdraw, given again
    /// (`+I`), so that each pair is withdrawn once.
    fn meet_gone(
        &self,
        new: &[Option<RecordBatch>; 2],
        gone: &[Option<RecordBatch>; 2],
        held: &[Option<HeldRows>; 2],
        out: &mut Vec<Batch>,
    ) -> Result<()> {
        let held = [
            held[0].as_ref().map(|h| &h.batch),
            held[1].as_ref().map(|h| &h.batch),
        ];
        let terms = [
            (gone[0].as_ref(), held[1], "-D"),
            (held[0], gone[1].as_ref(), "-D"),
            (gone[0].as_ref(), new[1].as_ref(), "-D"),
            (new[0].as_ref(), gone[1].as_ref(), "-D"),
            (gone[0].as_ref(), gone[1].as_ref(), "+I"),
        ];
        for (l, r, op) in terms {
            let (Some(l), Some(r)) = (l, r) else { continue };
            let (li, ri) = meeting(l, r, &self.join.spec)?;
            if !li.is_empty() {
                out.push(self.signed(self.pairs(l, &li, r, &ri)?, op)?);
            }
        }
        Ok(())
    }

    /// `batch` of the join's rows, as updates of kind `op` if its rows are
    /// updates.
    fn signed(&self, batch: RecordBatch, op: &str) -> Result<Batch> {
        let Some(schema) = &self.updates else {
            return Ok(Batch(batch));
        };
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec![op; batch.num_rows()])));
        Ok(Batch(RecordBatch::try_new(Arc::clone(schema), columns)?))
    }

    /// The output of the pairs at `li` of `l` and `ri` of `r`.
    fn pairs(
        &self,
        l: &RecordBatch,
        li: &[u32],
        r: &RecordBatch,
        ri: &[u32],
    ) -> Result<RecordBatch> {
        let mut columns = columns_of(l, li, self.k())?;
        columns.extend(columns_of(r, ri, self.k())?);
        Ok(RecordBatch::try_new(
            Arc::clone(&self.join.spec.schema),
            columns,
        )?)
    }

    /// The output of the rows at `rows` of `batch` (a semi or anti
    /// join's).
    fn rows_of(&self, batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.join.spec.schema),
            columns_of(batch, rows, self.k())?,
            &options,
        )?)
    }

    /// What the rows at `rows` of `batch` (of `side`), which met no row,
    /// owe: an anti join's rows, or an outer join's padded with nulls.
    fn unmet(&self, side: Side, batch: &RecordBatch, rows: &[u32]) -> Result<Option<RecordBatch>> {
        if rows.is_empty() {
            return Ok(None);
        }
        if self.owes[side.index()] == Owes::Anti {
            return Ok(Some(self.rows_of(batch, rows)?));
        }
        let schema = &self.join.spec.schema;
        let own = columns_of(batch, rows, self.k())?;
        let (n, mine) = (schema.fields().len(), own.len());
        let padding = |fields: std::ops::Range<usize>| {
            schema.fields()[fields]
                .iter()
                .map(|f| new_null_array(f.data_type(), rows.len()))
                .collect::<Vec<ArrayRef>>()
        };
        let columns = match side {
            Side::Left => own.into_iter().chain(padding(mine..n)).collect(),
            Side::Right => padding(0..n - mine).into_iter().chain(own).collect(),
        };
        Ok(Some(RecordBatch::try_new(Arc::clone(schema), columns)?))
    }

    /// How many key columns each side's rows end with.
    fn k(&self) -> usize {
        self.join.spec.keys.left.len()
    }

    /// The new rows of `side`, as one batch.
    fn concat(&self, side: Side, batches: Vec<RecordBatch>) -> Result<Option<RecordBatch>> {
        if batches.is_empty() {
            return Ok(None);
        }
        Ok(Some(concat_batches(
            &self.join.keyed[side.index()],
            &batches,
        )?))
    }

    /// The key bytes of each row of `batch`.
    fn keys_of(&self, batch: &Option<RecordBatch>) -> Result<Vec<ByteString>> {
        let Some(b) = batch else {
            return Ok(Vec::new());
        };
        let rows = self
            .keys
            .convert_columns(&b.columns()[b.num_columns() - self.k()..])?;
        Ok(rows.iter().map(|r| ByteString::from(r.as_ref())).collect())
    }

    /// The rows of `side` held under any of `keys`, as one batch, with the
    /// place of each (its key, its index among the key's rows).
    fn held(
        &self,
        state: &Keyed<Held>,
        side: Side,
        keys: [&[ByteString]; 2],
    ) -> Result<Option<HeldRows>> {
        let wanted: BTreeSet<&ByteString> = keys.into_iter().flatten().collect();
        let parser = self.rows[side.index()].parser();
        let mut rows = Vec::new();
        let mut places = Vec::new();
        let mut met = Vec::new();
        for key in wanted {
            let Some(Held(sides)) = state.get(key) else {
                continue;
            };
            for (i, held) in sides[side.index()].iter().enumerate() {
                rows.push(parser.parse(&held.row));
                places.push((key.clone(), i));
                met.push(held.met);
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let columns = self.rows[side.index()].convert_rows(rows)?;
        let batch = RecordBatch::try_new(Arc::clone(&self.join.keyed[side.index()]), columns)?;
        Ok(Some(HeldRows { batch, places, met }))
    }

    /// Holds the new rows of `side` of `epoch` (of keys `keys`), those at
    /// `met` as having met a row (a semi or anti join's are done, not held);
    /// those the other side's event time has passed (or, with a time to
    /// live, whose epochs have passed) go at the next `expire`. A row with a
    /// null time meets nothing: what it owes goes out now.
    fn hold(
        &mut self,
        state: &mut Keyed<Held>,
        (side, epoch): (Side, u64),
        (batch, keys): (&RecordBatch, &[ByteString]),
        met: &[u32],
        out: &mut Vec<Batch>,
    ) -> Result<()> {
        let expiries = match &self.join.expiry {
            Expire::EventTime(bounds) => match side {
                Side::Left => expiries(batch, &bounds.left)?,
                Side::Right => expiries(batch, &bounds.right)?,
            },
            Expire::After(epochs) => {
                let at = i64::try_from(epoch.saturating_add(*epochs)).unwrap_or(i64::MAX);
                vec![Some(at); batch.num_rows()]
            }
        };
        let owes = self.owes[side.index()];
        let rows = self.rows[side.index()].convert_columns(batch.columns())?;
        let mut met = met.iter().peekable();
        // rows whose due goes out now: with a null time (they meet
        // nothing), or that met none when it goes out at once
        let mut owed = Vec::new();
        for (i, ((row, key), expiry)) in rows.iter().zip(keys).zip(expiries).enumerate() {
            let row_met = met.next_if(|&&m| m as usize == i).is_some();
            if row_met && owes.done_when_met() {
                continue;
            }
            if !row_met && self.at_once {
                owed.push(i as u32);
            }
            let Some(expiry) = expiry else {
                owed.push(i as u32);
                continue;
            };
            let held = HeldRow {
                expiry,
                row: ByteString::from(row.as_ref()),
                met: row_met,
            };
            state.update(key.clone(), Held::default, |Held(sides)| {
                sides[side.index()].push(held)
            });
            self.expiring[side.index()]
                .entry(expiry)
                .or_default()
                .insert(key.clone());
        }
        if owes.owed_unmet()
            && let Some(rows) = self.unmet(side, batch, &owed)?
        {
            out.push(self.signed(rows, "+I")?);
        }
        Ok(())
    }

    /// Drops the rows of `side` whose expiry the other side's event time
    /// (or, with a time to live, the epoch), `other`, has reached, giving
    /// out what those that met no row owe.
    fn expire(
        &mut self,
        state: &mut Keyed<Held>,
        side: Side,
        other: Option<u64>,
        out: &mut Vec<Batch>,
    ) -> Result<()> {
        let Some(w) = other else {
            return Ok(());
        };
        let w = i64::try_from(w).unwrap_or(i64::MAX);
        let s = side.index();
        // (what goes out at once is not owed again)
        let owed = self.owes[s].owed_unmet() && !self.at_once;
        let mut unmet = Vec::new();
        while let Some(entry) = self.expiring[s].first_entry() {
            if *entry.key() > w {
                break;
            }
            for key in entry.remove() {
                state.change(&key, |Held(sides)| {
                    sides[s].retain(|held| {
                        let expired = held.expiry <= w;
                        if expired && owed && !held.met {
                            unmet.push(held.row.clone());
                        }
                        !expired
                    });
                    !sides.iter().all(Vec::is_empty)
                });
            }
        }
        if unmet.is_empty() {
            return Ok(());
        }
        let parser = self.rows[s].parser();
        let columns = self.rows[s].convert_rows(unmet.iter().map(|r| parser.parse(r)))?;
        let batch = RecordBatch::try_new(Arc::clone(&self.join.keyed[s]), columns)?;
        let all: Vec<u32> = (0..batch.num_rows() as u32).collect();
        if let Some(rows) = self.unmet(side, &batch, &all)? {
            out.push(self.signed(rows, "+I")?);
        }
        Ok(())
    }
}

/// Held rows of one side as a batch, and the place of each in the state
/// (its key, its index among the key's rows).
struct HeldRows {
    batch: RecordBatch,
    places: Vec<(ByteString, usize)>,
    /// Whether each had met a row before.
    met: Vec<bool>,
}

/// The rows of one side that met a row: among its new rows, and among its
/// held rows.
#[derive(Default)]
struct Met {
    new: Vec<u32>,
    held: Vec<u32>,
}

impl Met {
    fn add(&mut self, new: bool, rows: Vec<u32>) {
        match new {
            true => self.new.extend(rows),
            false => self.held.extend(rows),
        }
    }
}

/// The columns of `batch` but its last `k` (its keys), at `rows`.
fn columns_of(batch: &RecordBatch, rows: &[u32], k: usize) -> Result<Vec<ArrayRef>> {
    let indices = UInt32Array::from(rows.to_vec());
    batch.columns()[..batch.num_columns() - k]
        .iter()
        .map(|c| Ok(take(c, &indices, None)?))
        .collect()
}
