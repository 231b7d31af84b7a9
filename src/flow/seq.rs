//! Wrap-aware TCP sequence numbers (RFC 1982 serial arithmetic): never compare raw `u32`s.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// `self + n`, wrapping at 2^32.
    pub fn plus(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }

    /// Signed distance `self - other`, correct across the wrap for spans under 2^31.
    pub fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    pub fn cmp_wrapping(self, other: Seq) -> Ordering {
        self.diff(other).cmp(&0)
    }

    pub fn before(self, other: Seq) -> bool {
        self.diff(other) < 0
    }

    pub fn after(self, other: Seq) -> bool {
        self.diff(other) > 0
    }

    /// The later of two sequence numbers.
    pub fn max(self, other: Seq) -> Seq {
        if self.after(other) { self } else { other }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_across_the_wrap() {
        let before_wrap = Seq(0xffff_fff0);
        let after_wrap = before_wrap.plus(0x20);
        assert_eq!(after_wrap, Seq(0x10));
        assert!(before_wrap.before(after_wrap));
        assert!(after_wrap.after(before_wrap));
        assert_eq!(after_wrap.diff(before_wrap), 0x20);
        assert_eq!(before_wrap.max(after_wrap), after_wrap);
        assert_eq!(after_wrap.cmp_wrapping(after_wrap), Ordering::Equal);
    }
}
