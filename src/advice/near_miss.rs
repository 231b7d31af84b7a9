//! Near misses: reuses of an idle connection that were answered, but reached the server
//! within one round trip of its measured keep-alive timer. They say the race will come
//! back even when a capture shows few failures. Counted as flows are judged, in bounded
//! memory: the timer is only known at the end, so the reuses closest to any timer are kept.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::Serialize;

use crate::time::{Nanos, secs};

/// Answered reuses kept per server, those whose idle plus a round trip is longest. A near
/// miss of a timer T has idle < T <= idle + rtt, so it is among them unless more than this
/// many answered reuses came within a round trip of T or past it; then the count is a
/// lower bound and says so (`lower_bound`).
const KEPT: usize = 1024;

/// Flows named per server, as examples to look at.
const NAMED: usize = 8;

/// One answered reuse: the idle the server saw when the request reached it, and the flow's
/// round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Answered {
    /// `at_server + rtt`, first so that the heap orders by it.
    reach: Nanos,
    at_server: Nanos,
    rtt: Nanos,
    flow: u64,
}

/// The answered reuses of one server that could be near misses of whatever timer it has.
#[derive(Debug, Clone, Default)]
pub struct NearMisses {
    /// A min-heap on `reach`: the smallest is dropped first when full.
    kept: BinaryHeap<Reverse<Answered>>,
    /// Some answered reuse was dropped to stay within `KEPT`: the reach it had.
    dropped_reach: Option<Nanos>,
}

/// The near misses of a server's measured keep-alive timer.
#[derive(Debug, Clone, Serialize)]
pub struct NearMiss {
    /// Answered reuses that reached the server less than one round trip (theirs) before
    /// its measured keep-alive timer ran out.
    pub count: u64,
    /// The timer they are measured against: the median idle close, in seconds.
    pub timer_s: f64,
    /// The widest margin among them, in seconds: all came within this of the timer.
    pub within_s: f64,
    /// The narrowest margin, in seconds.
    pub closest_s: f64,
    /// Some of them (at most 8), closest first.
    pub flows: Vec<u64>,
    /// More answered reuses came close than were kept: `count` is a lower bound.
    pub lower_bound: bool,
}

impl NearMisses {
    /// An answered reuse: `at_server` is the idle the server saw when the request reached
    /// it, `rtt` the flow's round trip.
    pub fn observe(&mut self, flow: u64, at_server: Nanos, rtt: Nanos) {
        let answered = Answered {
            reach: at_server.saturating_add(rtt),
            at_server,
            rtt,
            flow,
        };
        self.kept.push(Reverse(answered));
        if self.kept.len() > KEPT
            && let Some(Reverse(dropped)) = self.kept.pop()
        {
            self.dropped_reach = Some(self.dropped_reach.unwrap_or(0).max(dropped.reach));
        }
    }

    /// The near misses of a timer of `timer` ns: answered reuses with
    /// `at_server < timer <= at_server + rtt`.
    pub fn of_timer(&self, timer: Nanos) -> Option<NearMiss> {
        let mut near: Vec<Answered> = self
            .kept
            .iter()
            .map(|Reverse(a)| *a)
            .filter(|a| a.at_server < timer && timer <= a.reach)
            .collect();
        if near.is_empty() {
            return None;
        }
        near.sort_by_key(|a| (timer - a.at_server, a.flow));
        let margin = |a: &Answered| secs(timer - a.at_server);
        Some(NearMiss {
            count: near.len() as u64,
            timer_s: secs(timer),
            within_s: near.last().map(margin).unwrap_or_default(),
            closest_s: near.first().map(margin).unwrap_or_default(),
            flows: near.iter().take(NAMED).map(|a| a.flow).collect(),
            lower_bound: self.dropped_reach.is_some_and(|r| r >= timer),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    #[test]
    fn a_reuse_within_one_round_trip_of_the_timer_is_a_near_miss() {
        let mut near = NearMisses::default();
        near.observe(1, 4_954 * MS, 51 * MS); // 46 ms short of 5 s: near
        near.observe(2, 4_992 * MS, 50 * MS); // 8 ms short: near
        near.observe(3, 4_054 * MS, 50 * MS); // 946 ms short: not
        near.observe(4, 5_010 * MS, 50 * MS); // past the timer, yet answered: not lucky, odd
        let n = near.of_timer(5_000 * MS).unwrap();
        assert_eq!(n.count, 2);
        assert_eq!(n.flows, vec![2, 1]);
        assert!((n.within_s - 0.046).abs() < 1e-9, "{n:?}");
        assert!((n.closest_s - 0.008).abs() < 1e-9, "{n:?}");
        assert!(!n.lower_bound);
        assert!(near.of_timer(6_000 * MS).is_none());
    }

    #[test]
    fn memory_stays_bounded_and_an_overflow_makes_the_count_a_lower_bound() {
        let mut near = NearMisses::default();
        for flow in 0..(3 * KEPT as u64) {
            near.observe(flow, 4_990 * MS, 50 * MS);
        }
        assert_eq!(near.kept.len(), KEPT);
        let n = near.of_timer(5_000 * MS).unwrap();
        assert_eq!(n.count, KEPT as u64);
        assert!(n.lower_bound);
        // Far from every kept reuse, the dropped ones cannot have been near either.
        let mut far = NearMisses::default();
        for flow in 0..(3 * KEPT as u64) {
            far.observe(flow, (1_000 + flow as i64) * MS, 50 * MS);
        }
        assert!(far.of_timer(60_000 * MS).is_none());
        let n = far.of_timer(4_000 * MS).unwrap();
        assert!(!n.lower_bound, "{n:?}");
    }
}
