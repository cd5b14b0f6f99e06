//! A fixed-bucket histogram the writer thread can record into with a few relaxed atomic
//! adds, and a metrics page can read at any time (Prometheus' cumulative `le` buckets).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of observations at or below each bound, plus their sum and count.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// One slot per bound and one for what is above the last bound; not cumulative.
    slots: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds`, which must ascend.
    #[must_use]
    pub fn new(bounds: &'static [u64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds must ascend");
        Self { bounds, slots: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum: AtomicU64::new(0) }
    }

    /// Records one observation.
    pub fn record(&self, value: u64) {
        let slot = self.bounds.partition_point(|&bound| bound < value);
        self.slots[slot].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// `(bound, observations at or below it)` for each bound, cumulative as Prometheus wants
    /// them; the count of all observations is [`Histogram::count`].
    #[must_use]
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut total = 0;
        self.bounds
            .iter()
            .zip(self.slots.iter())
            .map(|(&bound, slot)| {
                total += slot.load(Ordering::Relaxed);
                (bound, total)
            })
            .collect()
    }

    /// How many observations were recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.slots.iter().map(|slot| slot.load(Ordering::Relaxed)).sum()
    }

    /// The sum of every observation.
    #[must_use]
    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let histogram = Histogram::new(&[1, 4, 16]);
        for value in [0, 1, 2, 4, 5, 16, 17, 1000] {
            histogram.record(value);
        }
        assert_eq!(histogram.cumulative(), vec![(1, 2), (4, 4), (16, 6)]);
        assert_eq!(histogram.count(), 8);
        assert_eq!(histogram.sum(), 1045);
    }
}
