//! The flow table's index from 4-tuple to flow: open addressing with linear probing over
//! 16-byte slots (hash and boxed flow). With hundreds of thousands of flows the index is
//! far bigger than the CPU's caches, and a lookup's misses are most of a packet's cost:
//! here a lookup is one miss on its slot, where std's HashMap took one on its control
//! bytes and one on its 48-byte bucket.

use std::hash::BuildHasher;
use std::net::SocketAddr;

use super::{Flow, FlowKey};
use crate::prefetch;

/// Maps each flow's key to its boxed flow. The key is not stored: the flow's own endpoints
/// give it, and the slot keeps the hash, so a probe only looks at a flow whose hash matches.
#[derive(Default)]
pub struct FlowIndex {
    /// A power of two long (or empty), at most half full, so probes stay short.
    slots: Vec<Slot>,
    len: usize,
    /// foldhash, seeded at random per process: the keys come from the network, and an
    /// unseeded hash would let crafted 4-tuples pile into one run of slots and turn every
    /// lookup into a scan.
    hasher: foldhash::fast::RandomState,
}

/// 16 bytes: four to a cache line.
#[derive(Default)]
struct Slot {
    hash: u64,
    flow: Option<Box<Flow>>,
}

impl FlowIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// An empty index whose keys are hashed by `hasher` (shared by the tables a capture's
    /// flows are split over, and by the thread that works the hashes out).
    pub fn with_hasher(hasher: foldhash::fast::RandomState) -> FlowIndex {
        FlowIndex {
            slots: Vec::new(),
            len: 0,
            hasher,
        }
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & self.slots.len().wrapping_sub(1)
    }

    fn next(&self, at: usize) -> usize {
        (at + 1) & (self.slots.len() - 1)
    }

    /// Where the flow of `hash` for which `is_it` holds is, if it is here.
    #[inline]
    fn find(&self, hash: u64, is_it: impl Fn(&Flow) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut at = self.home(hash);
        loop {
            let slot = &self.slots[at];
            match &slot.flow {
                None => return None,
                Some(flow) if slot.hash == hash && is_it(flow) => return Some(at),
                Some(_) => at = self.next(at),
            }
        }
    }

    pub fn get(&self, key: &FlowKey, hash: u64) -> Option<&Flow> {
        let at = self.find(hash, |flow| flow.key() == *key)?;
        self.slots[at].flow.as_deref()
    }

    /// The flow between `a` and `b` (either way round), whose key hashes to `hash`: the
    /// packet path's lookup, which compares the endpoints as they are instead of building
    /// the flow's key.
    #[inline]
    pub fn get_between_mut(
        &mut self,
        a: SocketAddr,
        b: SocketAddr,
        hash: u64,
    ) -> Option<&mut Flow> {
        let at = self.find(hash, |flow| {
            // A packet reads or writes most of its flow's 12 cache lines, one after
            // another as the code goes, and each is a miss once the flow has been idle:
            // asked for together, the misses overlap.
            prefetch::all(flow);
            (flow.client == a && flow.server == b) || (flow.client == b && flow.server == a)
        })?;
        self.slots[at].flow.as_deref_mut()
    }

    /// Adds a flow whose key is not here yet.
    pub fn insert(&mut self, hash: u64, flow: Box<Flow>) {
        debug_assert!(self.get(&flow.key(), hash).is_none());
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let at = self.free_slot(hash);
        self.slots[at] = Slot {
            hash,
            flow: Some(flow),
        };
        self.len += 1;
    }

    /// The first empty slot from the home of `hash` on: where a flow of that hash goes.
    fn free_slot(&self, hash: u64) -> usize {
        let mut at = self.home(hash);
        while self.slots[at].flow.is_some() {
            at = self.next(at);
        }
        at
    }

    pub fn remove(&mut self, key: &FlowKey, hash: u64) -> Option<Box<Flow>> {
        let at = self.find(hash, |flow| flow.key() == *key)?;
        let flow = self.slots[at].flow.take();
        self.len -= 1;
        // Close the gap (backward shift): each later slot of the run moves into the hole
        // if its home is not between the hole and itself, so no lookup ever stops at the
        // hole short of its flow. No tombstones, so a churning table stays fast.
        let mask = self.slots.len() - 1;
        let (mut hole, mut at) = (at, self.next(at));
        while self.slots[at].flow.is_some() {
            let from_home = at.wrapping_sub(self.home(self.slots[at].hash)) & mask;
            let from_hole = at.wrapping_sub(hole) & mask;
            if from_home >= from_hole {
                self.slots.swap(hole, at);
                hole = at;
            }
            at = self.next(at);
        }
        flow
    }

    /// Every flow, the index left empty.
    pub fn drain(&mut self) -> impl Iterator<Item = Box<Flow>> + use<> {
        self.len = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .filter_map(|slot| slot.flow)
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        let old = std::mem::take(&mut self.slots);
        self.slots.resize_with(size, Slot::default);
        for slot in old {
            if slot.flow.is_some() {
                let at = self.free_slot(slot.hash);
                self.slots[at] = slot;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;

    use proptest::prelude::*;

    use super::*;
    use crate::flow::{Orientation, Stamp};

    fn endpoints(n: u16) -> (SocketAddr, SocketAddr) {
        (
            SocketAddr::from(([198, 18, 0, 1], 40_000 + n)),
            SocketAddr::from(([198, 18, 0, 2], 443)),
        )
    }

    fn flow(n: u16, id: u64) -> Box<Flow> {
        let (client, server) = endpoints(n);
        let at = Stamp {
            frame: id,
            ts: Default::default(),
        };
        Box::new(Flow::new(id, client, server, Orientation::Handshake, at))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any run of inserts and removes over a few keys (few, so runs of slots form, wrap
        /// around the end and are closed by removes) finds exactly what a HashMap holds.
        #[test]
        fn agrees_with_a_hash_map(ops in prop::collection::vec((any::<bool>(), 0u16..40), 1..400)) {
            let mut index = FlowIndex::default();
            let mut model: HashMap<u16, u64> = HashMap::new();
            for (id, (insert, n)) in ops.into_iter().enumerate() {
                let (a, b) = endpoints(n);
                let key = FlowKey::new(b, a); // either order finds the flow
                let hash = index.hash(&key);
                if insert && !model.contains_key(&n) {
                    index.insert(hash, flow(n, id as u64));
                    model.insert(n, id as u64);
                } else {
                    let removed = index.remove(&key, hash).map(|f| f.id);
                    prop_assert_eq!(removed, model.remove(&n));
                }
                prop_assert_eq!(index.len(), model.len());
                for m in 0..40 {
                    let (a, b) = endpoints(m);
                    let key = FlowKey::new(a, b);
                    let hash = index.hash(&key);
                    let found = index.get(&key, hash).map(|f| f.id);
                    prop_assert_eq!(found, model.get(&m).copied());
                    let between = index.get_between_mut(b, a, hash).map(|f| f.id);
                    prop_assert_eq!(between, model.get(&m).copied());
                }
            }
            let mut drained: Vec<u64> = index.drain().map(|f| f.id).collect();
            let mut expected: Vec<u64> = model.into_values().collect();
            drained.sort_unstable();
            expected.sort_unstable();
            prop_assert_eq!(drained, expected);
            prop_assert_eq!(index.len(), 0);
        }
    }
}
