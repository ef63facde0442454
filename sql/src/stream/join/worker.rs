//! A worker's side of a streaming join: its held rows' encodings and
//! expiry index, the join of one epoch's new rows, and the rows owed when
//! held rows expire.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use datafusion_common::JoinType;
use weir_progress::byte_string::ByteString;
use weir_streaming::window::{Frontier, Watermark};

mod count;
mod output;

use super::held::{Held, HeldRow, expiries, remove, set_matches, take_back};
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
    /// Whether what each row owes follows the count of rows it meets, going
    /// out and being taken back (`-D`) as the count changes (a join without
    /// a time bound, as Flink's regular joins; see [`count`]), rather than
    /// when it first meets one or expires.
    counting: bool,
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
        let counting =
            matches!(join.expiry, Expire::After(_)) && owes.iter().any(|&o| o != Owes::Nothing);
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
            updates: join.emits_updates.then(|| with_op(&join.spec.schema)),
            counting,
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
        let unmet = match gone.iter().any(Option::is_some) {
            true => self.meet_gone(&new, &gone, &held, out)?,
            false => Default::default(),
        };
        for side in SIDES {
            let s = side.index();
            if self.counting && self.owes[s] != Owes::Nothing {
                let epoch_rows = count::Rows {
                    new: (new[s].as_ref(), &keys[s]),
                    gone: (gone[s].as_ref(), &gone_keys[s]),
                    held: held[s].as_ref(),
                    met: &met[s],
                    unmet: &unmet[s],
                };
                self.count(state, (side, epoch), epoch_rows, out)?;
                continue;
            }
            if let Some(rows) = &held[s] {
                let places: Vec<&(ByteString, usize)> = met[s]
                    .held
                    .iter()
                    .map(|&i| &rows.places[i as usize])
                    .collect();
                match self.owes[s] {
                    owes if owes.done_when_met() => remove(state, s, &places),
                    Owes::Padded => {
                        let met: Vec<_> = places.into_iter().map(|p| (p, 1)).collect();
                        set_matches(state, s, &met)
                    }
                    _ => {}
                }
            }
            if let Some(batch) = &new[s] {
                let mut matches = vec![0; batch.num_rows()];
                for &i in &met[s].new {
                    matches[i as usize] = 1;
                }
                let timeless = self.hold(state, (side, epoch), (batch, &keys[s]), &matches)?;
                if self.owes[s].owed_unmet()
                    && let Some(rows) = self.owed(side, batch, &timeless)?
                {
                    out.push(self.signed(rows, "+I")?);
                }
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
    /// Returns, per side that owes more than pairs, its rows that met one
    /// (each once; as often as they met one when counting).
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
        let paired = self.paired();
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
        if self.counting {
            // each meeting counts
            return Ok(met);
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
    /// withdraw, as `-D` rows (of inner and outer joins): with the other
    /// side's held and new rows; and the pairs of two rows taken back, which
    /// both withdraw, given again (`+I`), so that each pair is withdrawn
    /// once. Returns, per side that owes more than pairs, its held and new
    /// rows that met a row taken back, as often as they met one.
    fn meet_gone(
        &self,
        new: &[Option<RecordBatch>; 2],
        gone: &[Option<RecordBatch>; 2],
        held: &[Option<HeldRows>; 2],
        out: &mut Vec<Batch>,
    ) -> Result<[Met; 2]> {
        let paired = self.paired();
        let held = [
            held[0].as_ref().map(|h| &h.batch),
            held[1].as_ref().map(|h| &h.batch),
        ];
        // (left, right, the pairs' op, which side's rows count and
        // whether they are new)
        let terms = [
            (gone[0].as_ref(), held[1], "-D", Some((1, false))),
            (held[0], gone[1].as_ref(), "-D", Some((0, false))),
            (gone[0].as_ref(), new[1].as_ref(), "-D", Some((1, true))),
            (new[0].as_ref(), gone[1].as_ref(), "-D", Some((0, true))),
            (gone[0].as_ref(), gone[1].as_ref(), "+I", None),
        ];
        let mut unmet: [Met; 2] = Default::default();
        for (l, r, op, counted) in terms {
            let (Some(l), Some(r)) = (l, r) else { continue };
            let (li, ri) = meeting(l, r, &self.join.spec)?;
            if li.is_empty() {
                continue;
            }
            if paired {
                out.push(self.signed(self.pairs(l, &li, r, &ri)?, op)?);
            }
            if let Some((s, new)) = counted
                && self.owes[s] != Owes::Nothing
            {
                unmet[s].add(new, if s == 0 { li } else { ri });
            }
        }
        Ok(unmet)
    }

    /// Whether the join gives pairs (inner and outer joins do).
    fn paired(&self) -> bool {
        matches!(
            self.join.spec.join_type,
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full
        )
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
        let mut matches = Vec::new();
        for key in wanted {
            let Some(Held(sides)) = state.get(key) else {
                continue;
            };
            for (i, held) in sides[side.index()].iter().enumerate() {
                rows.push(parser.parse(&held.row));
                places.push((key.clone(), i));
                matches.push(held.matches);
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let columns = self.rows[side.index()].convert_rows(rows)?;
        let batch = RecordBatch::try_new(Arc::clone(&self.join.keyed[side.index()]), columns)?;
        Ok(Some(HeldRows {
            batch,
            places,
            matches,
        }))
    }

    /// Holds the new rows of `side` of `epoch` (of keys `keys`), each with
    /// the count of rows it met, `matches` (a semi or anti join's rows that
    /// met one are done, not held, unless counting); those the other side's
    /// event time has passed (or, with a time to live, whose epochs have
    /// passed) go at the next `expire`. Returns the rows with a null time,
    /// which meet nothing and are not held.
    fn hold(
        &mut self,
        state: &mut Keyed<Held>,
        (side, epoch): (Side, u64),
        (batch, keys): (&RecordBatch, &[ByteString]),
        matches: &[u32],
    ) -> Result<Vec<u32>> {
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
        let done = self.owes[side.index()].done_when_met() && !self.counting;
        let rows = self.rows[side.index()].convert_columns(batch.columns())?;
        let mut timeless = Vec::new();
        for (i, ((row, key), expiry)) in rows.iter().zip(keys).zip(expiries).enumerate() {
            if done && matches[i] > 0 {
                continue;
            }
            let Some(expiry) = expiry else {
                timeless.push(i as u32);
                continue;
            };
            let held = HeldRow {
                expiry,
                row: ByteString::from(row.as_ref()),
                matches: matches[i],
            };
            state.update(key.clone(), Held::default, |Held(sides)| {
                sides[side.index()].push(held)
            });
            self.expiring[side.index()]
                .entry(expiry)
                .or_default()
                .insert(key.clone());
        }
        Ok(timeless)
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
        // (when counting, what is owed went out already)
        let owed = self.owes[s].owed_unmet() && !self.counting;
        let mut unmet = Vec::new();
        while let Some(entry) = self.expiring[s].first_entry() {
            if *entry.key() > w {
                break;
            }
            for key in entry.remove() {
                state.change(&key, |Held(sides)| {
                    sides[s].retain(|held| {
                        let expired = held.expiry <= w;
                        if expired && owed && held.matches == 0 {
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
        if let Some(rows) = self.owed(side, &batch, &all)? {
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
    /// The count of rows each met before.
    matches: Vec<u32>,
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
