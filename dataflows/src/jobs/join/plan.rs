//! The cost model: which ship and local strategies a join runs with, from
//! the input sizes, the worker layout and the memory budget, and why.

use super::{JoinSpec, Local, Ship};

/// The strategies a join runs with, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Ship strategy.
    pub ship: Ship,
    /// Local strategy.
    pub local: Local,
    /// Whether the left side is the build side.
    pub build_left: bool,
    /// What was picked and why, for the user.
    pub explanation: String,
}

pub use weir_runtime::units::default_memory_budget;

/// An estimated byte count for the explanation, in the size options' units.
fn size(bytes: f64) -> String {
    weir_runtime::units::bytes(bytes as u64)
}

/// Picks the strategies like a cost-based optimizer, from input sizes in bytes,
/// the number of workers in all processes (`peers`) and in one process
/// (`local_peers`), and the budget of one worker.
///
/// Costs are bytes handled. A byte sent to another process counts 1, one moved to
/// another thread of the same process 1/4; every byte put into a hash table or
/// sorted counts 1, and every spilled byte 2 (written and read back). Broadcast
/// sends the build side to every other worker and makes each worker build all of
/// it; repartition sends `(peers-1)/peers` of both sides and splits the build work.
/// The hash join spills the part of the build side that exceeds the budget and the
/// same fraction of the probe side; the sort-merge join sorts both sides and
/// spills every side larger than half the budget.
pub fn plan(
    spec: &JoinSpec,
    left_bytes: u64,
    right_bytes: u64,
    peers: usize,
    local_peers: usize,
    worker_budget: u64,
) -> Plan {
    let build_left = left_bytes <= right_bytes;
    let (build, probe) = if build_left {
        (left_bytes as f64, right_bytes as f64)
    } else {
        (right_bytes as f64, left_bytes as f64)
    };
    let w = peers.max(1) as f64;
    let l = local_peers.clamp(1, peers.max(1)) as f64;
    // cost of sending `bytes` from one worker to `to` others, spread evenly
    // a byte moved to another worker: to another process with probability
    // (w - l) / (w - 1), else to a thread of the same process
    let per_byte = if w > 1.0 {
        ((w - l) + 0.25 * (l - 1.0)) / (w - 1.0)
    } else {
        0.0
    };
    let send = |bytes: f64| bytes * per_byte;
    let budget = worker_budget.max(1) as f64;
    let local_cost = |local: Local, b: f64, p: f64| match local {
        Local::Hash => {
            let spilled = (1.0 - budget / b.max(1.0)).max(0.0);
            b + 2.0 * spilled * (b + p)
        }
        Local::SortMerge => {
            let side = |s: f64| if s > budget / 2.0 { 3.0 * s } else { s };
            side(b) + side(p)
        }
    };
    let ship_cost = |ship: Ship, local: Local| match ship {
        Ship::Broadcast => send(build * (w - 1.0)) + w * local_cost(local, build, probe / w),
        Ship::Repartition => {
            send((build + probe) * (w - 1.0) / w) + w * local_cost(local, build / w, probe / w)
        }
    };
    let ships: Vec<Ship> = spec
        .ship
        .map_or(vec![Ship::Broadcast, Ship::Repartition], |s| vec![s]);
    let locals: Vec<Local> = spec
        .local
        .map_or(vec![Local::Hash, Local::SortMerge], |l| vec![l]);
    let mut options: Vec<(f64, Ship, Local)> = Vec::new();
    for &ship in &ships {
        for &local in &locals {
            options.push((ship_cost(ship, local), ship, local));
        }
    }
    // ties go to the earlier option: broadcast before repartition, hash before sort-merge
    let (cost, ship, local) = options
        .iter()
        .copied()
        .fold(None, |best: Option<(f64, Ship, Local)>, o| match best {
            Some(b) if b.0 <= o.0 => Some(b),
            _ => Some(o),
        })
        .unwrap_or((0.0, Ship::Repartition, Local::Hash));
    let how = |fixed: bool| if fixed { "given" } else { "auto" };
    let alternatives: Vec<String> = options
        .iter()
        .filter(|o| (o.1, o.2) != (ship, local))
        .map(|o| format!("{}+{} {}", o.1, o.2, size(o.0)))
        .collect();
    let explanation = format!(
        "ship {ship} ({}), local {local} ({}); build side {} ({}), probe side {} ({}); \
         estimated cost {} of bytes handled{}",
        how(spec.ship.is_some()),
        how(spec.local.is_some()),
        if build_left { "left" } else { "right" },
        size(build),
        if build_left { "right" } else { "left" },
        size(probe),
        size(cost),
        if alternatives.is_empty() {
            String::new()
        } else {
            format!(" (vs {})", alternatives.join(", "))
        }
    );
    Plan {
        ship,
        local,
        build_left,
        explanation,
    }
}
