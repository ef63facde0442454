//! When a source with a stop time (`stop_when_idle`) stops: once every
//! worker's share of it has been quiet for that long in one epoch, which
//! the workers tell each other through a loop of the dataflow. A worker that
//! owns no input is quiet from the start; stopping it then would leave the
//! files or messages that come to it later unread while the others still
//! run, so it waits for the others.
//!
//! Each worker votes once per epoch in which it is quiet ([`Vote::Quiet`]),
//! and once when it stops ([`Vote::Stopped`]: it counts as quiet from then
//! on). The votes are broadcast and come back one epoch later, so the loop
//! holds no epoch back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a worker tells every worker (itself too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Vote {
    /// In this epoch, the worker's share of the source has been quiet for
    /// the stop time.
    Quiet(u64),
    /// The worker stopped in this epoch.
    Stopped(u64),
}

/// The votes a worker has heard, and the one it sent last.
#[derive(Debug)]
pub struct Votes {
    peers: usize,
    /// Quiet votes per epoch.
    quiet: BTreeMap<u64, usize>,
    /// The epochs in which workers stopped.
    stopped: Vec<u64>,
    /// The epoch of this worker's last quiet vote.
    sent: Option<u64>,
    /// Whether every worker was quiet in one epoch, or had stopped by then.
    agreed: bool,
}

impl Votes {
    /// No votes yet, of `peers` workers.
    pub fn new(peers: usize) -> Votes {
        Votes {
            peers,
            quiet: BTreeMap::new(),
            stopped: Vec::new(),
            sent: None,
            agreed: false,
        }
    }

    /// Takes a vote that came back.
    pub fn hear(&mut self, vote: Vote) {
        let from = match vote {
            Vote::Quiet(epoch) => {
                *self.quiet.entry(epoch).or_insert(0) += 1;
                epoch..=epoch
            }
            Vote::Stopped(epoch) => {
                self.stopped.push(epoch);
                epoch..=u64::MAX
            }
        };
        // only the epochs this vote counts in can agree now
        self.agreed = self.agreed
            || self.quiet.range(from).any(|(&epoch, &quiet)| {
                quiet + self.stopped.iter().filter(|&&s| s <= epoch).count() >= self.peers
            });
    }

    /// This worker's vote, quiet in `epoch`: `None` if it voted in that
    /// epoch already.
    pub fn quiet(&mut self, epoch: u64) -> Option<Vote> {
        (self.sent != Some(epoch)).then(|| {
            self.sent = Some(epoch);
            Vote::Quiet(epoch)
        })
    }

    /// Whether every worker was quiet in one epoch, or had stopped by then.
    pub fn agreed(&self) -> bool {
        self.agreed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_must_be_quiet_in_one_epoch_or_stopped_before() {
        let mut votes = Votes::new(3);
        assert_eq!(votes.quiet(4), Some(Vote::Quiet(4)));
        assert_eq!(votes.quiet(4), None, "one vote per epoch");
        votes.hear(Vote::Quiet(4));
        votes.hear(Vote::Quiet(4));
        votes.hear(Vote::Quiet(5));
        assert!(!votes.agreed(), "two of three in epoch 4");
        votes.hear(Vote::Stopped(6));
        assert!(!votes.agreed(), "a worker that stopped later counts later");
        votes.hear(Vote::Quiet(6));
        votes.hear(Vote::Quiet(6));
        assert!(votes.agreed());
        // a stop heard after the others' quiet votes counts for them too
        let mut late = Votes::new(2);
        late.hear(Vote::Quiet(3));
        assert!(!late.agreed());
        late.hear(Vote::Stopped(4));
        assert!(!late.agreed(), "stopped after epoch 3");
        late.hear(Vote::Stopped(2));
        assert!(late.agreed());
        let mut alone = Votes::new(1);
        assert!(!alone.agreed());
        alone.hear(Vote::Quiet(0));
        assert!(alone.agreed());
    }
}
