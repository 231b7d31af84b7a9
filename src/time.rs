//! Packet time: nanosecond timestamps taken from the capture, never from the wall clock.

use chrono::{DateTime, Utc};

/// Nanoseconds since the Unix epoch, as recorded in the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// A signed span between two timestamps, in nanoseconds.
pub type Nanos = i64;

pub const NANOS_PER_SEC: i64 = 1_000_000_000;

impl Timestamp {
    pub fn from_parts(secs: i64, nanos: i64) -> Self {
        Timestamp(secs.saturating_mul(NANOS_PER_SEC).saturating_add(nanos))
    }

    /// `self - earlier`, in nanoseconds (negative when `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Nanos {
        self.0.saturating_sub(earlier.0)
    }

    pub fn to_utc(self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.0)
    }
}

/// Seconds as a float, for evidence and JSON.
pub fn secs(n: Nanos) -> f64 {
    n as f64 / NANOS_PER_SEC as f64
}

/// A span for people: "5.003 s", "412.4 s", "18 ms", "0.2 ms".
pub fn human(n: Nanos) -> String {
    let abs = n.unsigned_abs();
    let sign = if n < 0 { "-" } else { "" };
    if abs >= 100 * NANOS_PER_SEC as u64 {
        format!("{sign}{:.1} s", abs as f64 / 1e9)
    } else if abs >= NANOS_PER_SEC as u64 {
        format!("{sign}{:.3} s", abs as f64 / 1e9)
    } else if abs >= 10_000_000 {
        format!("{sign}{:.0} ms", abs as f64 / 1e6)
    } else {
        format!("{sign}{:.1} ms", abs as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_spans_pick_a_readable_unit() {
        assert_eq!(human(5_003_000_000), "5.003 s");
        assert_eq!(human(412_400_000_000), "412.4 s");
        assert_eq!(human(18_200_000), "18 ms");
        assert_eq!(human(-200_000), "-0.2 ms");
    }

    #[test]
    fn since_is_signed() {
        let a = Timestamp::from_parts(10, 0);
        let b = Timestamp::from_parts(12, 500);
        assert_eq!(b.since(a), 2_000_000_500);
        assert_eq!(a.since(b), -2_000_000_500);
    }
}
