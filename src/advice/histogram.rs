//! The idle before each reuse of a pooled connection, counted per outcome in fixed
//! log-spaced bins: what `--plot` draws, in memory that does not grow with the number of
//! reuses (at most one small entry per bin in use).

use super::Outcome;

/// Bins per decade: neighbouring edges 4.7 % apart, so a race at 4.96 s and a close at
/// 5.00 s share a bin while 4.5 s and 5 s do not.
pub const BINS_PER_DECADE: u32 = 50;
/// The lowest edge, as a power of ten: 10 ms (a reuse needs 50 ms of idle).
pub const LOWEST_DECADE: i32 = -2;
/// Decades covered: 10 ms to 10^6 s (11.6 days); anything longer counts in the last bin.
pub const DECADES: u32 = 8;
pub const BINS: u32 = BINS_PER_DECADE * DECADES;

/// One bin in use: its index and a count per outcome (`Outcome::ALL` order).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bin {
    index: u16,
    counts: [u64; Outcome::ALL.len()],
}

/// Reuses counted by idle time (log bins) and outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdleHistogram {
    /// Sorted by index; a bin appears once something falls in it.
    bins: Vec<Bin>,
    totals: [u64; Outcome::ALL.len()],
}

impl IdleHistogram {
    pub fn add(&mut self, idle_s: f64, outcome: Outcome) {
        self.count(bin_of(idle_s), outcome, 1);
    }

    /// Adds another histogram's counts (flows judged elsewhere, for the same server).
    pub fn merge(&mut self, other: &IdleHistogram) {
        for bin in &other.bins {
            for outcome in Outcome::ALL {
                let n = bin.counts[outcome.index()];
                if n > 0 {
                    self.count(bin.index, outcome, n);
                }
            }
        }
    }

    fn count(&mut self, index: u16, outcome: Outcome, n: u64) {
        let at = match self.bins.binary_search_by_key(&index, |b| b.index) {
            Ok(at) => at,
            Err(at) => {
                let counts = [0; Outcome::ALL.len()];
                self.bins.insert(at, Bin { index, counts });
                at
            }
        };
        self.bins[at].counts[outcome.index()] += n;
        self.totals[outcome.index()] += n;
    }

    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// Reuses with this outcome.
    pub fn total(&self, outcome: Outcome) -> u64 {
        self.totals[outcome.index()]
    }

    /// Every reuse counted.
    pub fn reuses(&self) -> u64 {
        self.totals.iter().sum()
    }

    /// The bins with this outcome in them: (lower edge, upper edge, count), shortest first.
    pub fn bins(&self, outcome: Outcome) -> impl Iterator<Item = (f64, f64, u64)> + '_ {
        self.bins
            .iter()
            .filter(move |b| b.counts[outcome.index()] > 0)
            .map(move |b| {
                (
                    lower_edge(b.index),
                    lower_edge(b.index + 1),
                    b.counts[outcome.index()],
                )
            })
    }

    /// The lower edge of the first bin in use and the upper edge of the last.
    pub fn span(&self) -> Option<(f64, f64)> {
        let first = self.bins.first()?;
        let last = self.bins.last()?;
        Some((lower_edge(first.index), lower_edge(last.index + 1)))
    }
}

/// The bin an idle falls in; idles outside the covered decades go to the end bins.
fn bin_of(idle_s: f64) -> u16 {
    let position = (idle_s.max(f64::MIN_POSITIVE).log10() - f64::from(LOWEST_DECADE))
        * f64::from(BINS_PER_DECADE);
    // A small tolerance so that an edge (1 s, 10 s) lands in the bin it begins.
    (position + 1e-9).floor().clamp(0.0, f64::from(BINS - 1)) as u16
}

fn lower_edge(index: u16) -> f64 {
    10f64.powf(f64::from(LOWEST_DECADE) + f64::from(index) / f64::from(BINS_PER_DECADE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_lands_in_the_bin_whose_edges_hold_it() {
        for idle in [0.05, 0.3, 1.0, 4.96, 5.0, 5.01, 10.0, 299.9, 350.0, 3600.0] {
            let index = bin_of(idle);
            let (low, high) = (lower_edge(index), lower_edge(index + 1));
            assert!(
                low <= idle * (1.0 + 1e-9) && idle < high,
                "{idle}: [{low}, {high})"
            );
        }
        assert_eq!(bin_of(1.0), (2 * BINS_PER_DECADE) as u16);
        assert_eq!(bin_of(4.96), bin_of(5.0));
        assert_ne!(bin_of(4.5), bin_of(5.0));
    }

    #[test]
    fn idles_out_of_range_count_in_the_end_bins() {
        assert_eq!(bin_of(0.0), 0);
        assert_eq!(bin_of(1e-6), 0);
        assert_eq!(bin_of(1e9), (BINS - 1) as u16);
    }

    #[test]
    fn counts_per_outcome_stay_exact_and_bins_stay_few() {
        let mut histogram = IdleHistogram::default();
        for i in 0..400_000u32 {
            histogram.add(0.05 + f64::from(i % 1000) * 0.01, Outcome::Answered);
        }
        histogram.add(4.97, Outcome::Race);
        histogram.add(4.99, Outcome::Race);
        assert_eq!(histogram.total(Outcome::Answered), 400_000);
        assert_eq!(histogram.total(Outcome::Race), 2);
        assert_eq!(histogram.reuses(), 400_002);
        let races: Vec<_> = histogram.bins(Outcome::Race).collect();
        assert_eq!(races.len(), 1);
        assert_eq!(races[0].2, 2);
        // 0.05 s to 10.04 s is 2.3 decades: at most 50 bins a decade, whatever the count.
        assert!(histogram.bins.len() <= 120, "{}", histogram.bins.len());
        let answered: u64 = histogram.bins(Outcome::Answered).map(|b| b.2).sum();
        assert_eq!(answered, 400_000);
    }

    #[test]
    fn merging_adds_the_counts() {
        let (mut a, mut b) = (IdleHistogram::default(), IdleHistogram::default());
        a.add(5.0, Outcome::Race);
        b.add(5.0, Outcome::Race);
        b.add(300.0, Outcome::Reset);
        a.merge(&b);
        let mut both = IdleHistogram::default();
        for (idle, outcome) in [
            (5.0, Outcome::Race),
            (5.0, Outcome::Race),
            (300.0, Outcome::Reset),
        ] {
            both.add(idle, outcome);
        }
        assert_eq!(a, both);
    }
}
