//! A capture's flows split by flow hash into a fixed number of tables, and the answers
//! that cross them. The split depends on `--max-flows` only, never on how many threads
//! run the tables, so one thread and sixteen hand on the same flows at the same packets.

use super::peers::PeerAnswers;
use super::{Flow, FlowTable, PeerAnswer, SegmentHasher, Stamp, TableEvent};
use crate::decode::Segment;
use crate::target::Target;
use crate::time::Timestamp;

/// The most tables a capture's flows are split into: as many threads as can share the
/// work (and a power of two, so a table is picked by the hash's top bits).
pub const MAX_PARTS: usize = 16;

/// The fewest flows a table holds at most: below it, fewer tables. A table's limit is
/// `--max-flows` divided by the tables, and a split of a small limit would evict flows a
/// single table keeps (a table of 2 evicts at the third flow, two tables of 1 at the second).
const FLOWS_PER_PART: usize = 16_384;

/// How many tables flows are split into for a limit of `max_flows`.
pub fn parts_for(max_flows: usize) -> usize {
    let parts = (max_flows / FLOWS_PER_PART).clamp(1, MAX_PARTS);
    // The largest power of two not above it.
    1 << (usize::BITS - 1 - parts.leading_zeros())
}

/// Which of `parts` tables holds the flow of `part_hash` (`SegmentHasher::part_hash`): its
/// top bits.
#[inline]
pub fn part_of(part_hash: u64, parts: usize) -> usize {
    debug_assert!(parts.is_power_of_two());
    ((part_hash >> 32) as usize * parts) >> 32
}

/// The flow tables of one capture and the answers that cross them, on one thread. The
/// parts can also be lent to several threads (`split`), the answers kept by the thread
/// that merges what they hand on in packet order.
pub struct Tracker {
    parts: Vec<FlowTable>,
    peers: PeerAnswers,
    hasher: SegmentHasher,
}

impl Tracker {
    /// A tracker that never tracks more than about `max_flows` at once (each of its tables
    /// evicts the flow idle longest when it holds its share).
    pub fn new(targets: Vec<Target>, max_flows: usize) -> Tracker {
        let hasher = SegmentHasher::default();
        let count = parts_for(max_flows);
        let share = max_flows.max(1).div_ceil(count);
        Tracker {
            parts: (0..count)
                .map(|_| FlowTable::new(targets.clone(), share, &hasher))
                .collect(),
            peers: PeerAnswers::default(),
            hasher,
        }
    }

    /// What works out a segment's hash, on any thread.
    pub fn hasher(&self) -> SegmentHasher {
        self.hasher.clone()
    }

    /// The tables, to be run on other threads, and the answers, for the thread that takes
    /// what they hand on in packet order.
    pub fn split(&mut self) -> (&mut [FlowTable], &mut PeerAnswers) {
        (&mut self.parts, &mut self.peers)
    }

    /// Adds one segment; flows that are done are passed to `done`, settled (see
    /// `PeerAnswers::settle`). Returns the flow when this segment closed it, with the
    /// answer it would be settled with now (`PeerAnswers::peek`).
    pub fn observe(
        &mut self,
        seg: &Segment,
        at: Stamp,
        done: &mut impl FnMut(Box<Flow>),
    ) -> Option<(&Flow, Option<PeerAnswer>)> {
        let hash = self.hasher.hash(seg);
        let part = part_of(SegmentHasher::part_hash(seg), self.parts.len());
        let Tracker { parts, peers, .. } = self;
        let closed = parts[part].observe(seg, hash, at, &mut |event| take(peers, event, done))?;
        let peer = peers.peek(closed);
        Some((closed, peer))
    }

    /// Hands on closed flows whose grace period is over by packet time `now`, in every table.
    pub fn release_closed(&mut self, now: Timestamp, done: &mut impl FnMut(Box<Flow>)) {
        let Tracker { parts, peers, .. } = self;
        for table in parts {
            table.release_closed(now, &mut |event| take(peers, event, done));
        }
    }

    /// The capture ended: every flow left is handed on, in order of first appearance.
    pub fn finish_all(&mut self, done: &mut impl FnMut(Box<Flow>)) {
        let Tracker { parts, peers, .. } = self;
        let mut rest = Vec::new();
        for table in parts {
            table.finish_all(&mut |event| match event {
                TableEvent::Finished(flow) => rest.push(flow),
                TableEvent::Peer(note) => peers.note(note),
            });
        }
        rest.sort_by_key(|f| f.id);
        for mut flow in rest {
            peers.settle(&mut flow);
            done(flow);
        }
    }

    /// Takes back judged flows' boxes for new flows.
    pub fn recycle(&mut self, judged: impl Iterator<Item = Box<Flow>>) {
        let count = self.parts.len();
        for (i, flow) in judged.enumerate() {
            self.parts[i % count].recycle(std::iter::once(flow));
        }
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(FlowTable::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flows handed on early because their table was full.
    pub fn evicted(&self) -> u64 {
        self.parts.iter().map(FlowTable::evicted).sum()
    }
}

fn take(peers: &mut PeerAnswers, event: TableEvent, done: &mut impl FnMut(Box<Flow>)) {
    match event {
        TableEvent::Finished(mut flow) => {
            peers.settle(&mut flow);
            done(flow);
        }
        TableEvent::Peer(note) => peers.note(note),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_depends_on_the_flow_limit_only() {
        assert_eq!(parts_for(1), 1);
        assert_eq!(parts_for(2), 1);
        assert_eq!(parts_for(40_000), 2);
        assert_eq!(parts_for(100_000), 4);
        assert_eq!(parts_for(super::super::DEFAULT_MAX_FLOWS), 16);
        assert_eq!(parts_for(usize::MAX), 16);
    }

    #[test]
    fn every_hash_has_a_part() {
        for parts in [1, 2, 4, 8, 16] {
            let mut seen = vec![false; parts];
            for i in 0..4096u64 {
                let hash = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                seen[part_of(hash, parts)] = true;
            }
            assert!(seen.iter().all(|&s| s), "{parts} parts");
            assert_eq!(part_of(u64::MAX, parts), parts - 1);
        }
    }
}
