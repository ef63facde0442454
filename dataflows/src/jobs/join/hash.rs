//! Hybrid hash join (as in Flink's `MutableHashTable`): the build side is hashed
//! into partitions kept in memory while they fit the budget; when they do not, the
//! largest partition goes to disk, and so do later build rows and all probe rows
//! of that partition. Probe rows of in-memory partitions are answered at once;
//! spilled partitions are joined at the end, block by block (a block is as much
//! of the partition's build side as fits the budget), so even a single key with
//! more rows than memory completes.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;

use super::spill::{
    SpillDir, SpillFile, SpillReader, SpillWriter, create as create_spill, row_bytes,
};
use super::{Emit, LocalStrategy, Row};
use weir_runtime::error::JobError;
use weir_runtime::operators::key_hash;

/// Partitions per worker.
const PARTITIONS: usize = 64;

fn partition(key: &str) -> usize {
    // salted, so that partitions do not correlate with the worker routing
    (key_hash(&(0x5eed_u64, key)) % PARTITIONS as u64) as usize
}

#[derive(Default)]
struct Partition {
    table: HashMap<String, Vec<String>>,
    bytes: usize,
    build_spill: Option<SpillWriter>,
    build_file: Option<SpillFile>,
    probe_spill: Option<SpillWriter>,
}

/// The hybrid hash join of one worker.
pub struct HybridHash {
    budget: usize,
    used: usize,
    partitions: Vec<Partition>,
    spill: SpillDir,
    /// Spilled partitions still to join (known once the probe side is complete).
    queue: Option<VecDeque<(SpillFile, SpillFile)>>,
    current: Option<Block>,
}

/// A block of a spilled partition's build side, being probed.
struct Block {
    build: SpillReader,
    build_done: bool,
    probe_file: SpillFile,
    probe: Option<SpillReader>,
    table: HashMap<String, Vec<String>>,
}

impl HybridHash {
    /// A join that keeps at most about `budget` bytes of build rows in memory,
    /// spilling below `spill_dir` and counting spilled bytes in `spilled`.
    pub fn new(budget: usize, spill_dir: Option<PathBuf>, spilled: Rc<Cell<u64>>) -> Self {
        HybridHash {
            budget,
            used: 0,
            partitions: (0..PARTITIONS).map(|_| Partition::default()).collect(),
            spill: SpillDir::new(spill_dir, spilled),
            queue: None,
            current: None,
        }
    }

    fn spill_largest(&mut self) -> Result<bool, JobError> {
        let Some((index, _)) = self
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.build_spill.is_none() && p.bytes > 0)
            .max_by_key(|(_, p)| p.bytes)
        else {
            return Ok(false);
        };
        let mut writer = create_spill(&mut self.spill)?;
        let part = &mut self.partitions[index];
        for (key, rows) in std::mem::take(&mut part.table) {
            for row in rows {
                writer.push(&key, &row)?;
            }
        }
        self.used -= part.bytes;
        part.bytes = 0;
        part.build_spill = Some(writer);
        Ok(true)
    }
}

fn load_block(
    reader: &mut SpillReader,
    budget: usize,
    table: &mut HashMap<String, Vec<String>>,
) -> Result<bool, JobError> {
    let mut bytes = 0;
    while bytes < budget {
        let Some(row) = reader.next_row()? else {
            return Ok(true);
        };
        bytes += row_bytes(&row);
        table.entry(row.0).or_default().push(row.1);
    }
    Ok(false)
}

impl LocalStrategy for HybridHash {
    fn build(&mut self, row: Row) -> Result<(), JobError> {
        let part = &mut self.partitions[partition(&row.0)];
        if let Some(writer) = &mut part.build_spill {
            return writer.push(&row.0, &row.1);
        }
        let size = row_bytes(&row);
        part.table.entry(row.0).or_default().push(row.1);
        part.bytes += size;
        self.used += size;
        while self.used > self.budget && self.spill_largest()? {}
        Ok(())
    }

    fn build_done(&mut self) -> Result<(), JobError> {
        for part in &mut self.partitions {
            if let Some(writer) = part.build_spill.take() {
                part.build_file = Some(writer.finish()?);
            }
        }
        Ok(())
    }

    fn probe(&mut self, row: Row, emit: &mut Emit) -> Result<(), JobError> {
        let part = &mut self.partitions[partition(&row.0)];
        if part.build_file.is_some() {
            let writer = match &mut part.probe_spill {
                Some(writer) => writer,
                None => part.probe_spill.insert(create_spill(&mut self.spill)?),
            };
            return writer.push(&row.0, &row.1);
        }
        if let Some(rows) = part.table.get(&row.0) {
            for build in rows {
                emit(build, &row.1);
            }
        }
        Ok(())
    }

    fn finish(&mut self, emit: &mut Emit, max: usize) -> Result<bool, JobError> {
        if self.queue.is_none() {
            let mut queue = VecDeque::new();
            for part in std::mem::take(&mut self.partitions) {
                if let (Some(build), Some(probe)) = (part.build_file, part.probe_spill) {
                    queue.push_back((build, probe.finish()?));
                }
            }
            self.used = 0;
            self.queue = Some(queue);
        }
        let mut emitted = 0;
        loop {
            let block = match &mut self.current {
                Some(block) => block,
                None => {
                    let Some((build, probe_file)) =
                        self.queue.as_mut().and_then(VecDeque::pop_front)
                    else {
                        return Ok(true);
                    };
                    self.current.insert(Block {
                        build: build.read()?,
                        build_done: false,
                        probe_file,
                        probe: None,
                        table: HashMap::new(),
                    })
                }
            };
            if block.probe.is_none() {
                if block.build_done {
                    self.current = None;
                    continue;
                }
                block.table.clear();
                block.build_done = load_block(&mut block.build, self.budget, &mut block.table)?;
                if block.table.is_empty() {
                    self.current = None;
                    continue;
                }
                block.probe = Some(block.probe_file.read()?);
            }
            let Some(reader) = block.probe.as_mut() else {
                continue;
            };
            match reader.next_row()? {
                Some(row) => {
                    if let Some(rows) = block.table.get(&row.0) {
                        for build in rows {
                            emit(build, &row.1);
                        }
                        emitted += rows.len();
                        if emitted >= max {
                            return Ok(false);
                        }
                    }
                }
                None => block.probe = None,
            }
        }
    }

    fn spilled(&self) -> bool {
        self.spill.used()
    }
}
