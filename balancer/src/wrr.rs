//! Smooth weighted round-robin.
//!
//! Owns: the per-core, per-cluster selection state for weighted round-robin (NGINX's "smooth"
//! variant). Must not: allocate after construction, block, share state across cores, or panic on
//! any weight or skip pattern.

use crate::Balancer;

/// Smooth weighted round-robin over a fixed endpoint list.
///
/// Each pick, every eligible endpoint's `current` grows by its weight, the largest `current` wins,
/// and the winner pays back the round's total eligible weight. Heavy endpoints are thereby spread
/// through the sequence (5,1,1 gives `a a b a c a a`) instead of being served in bursts, and equal
/// weights degenerate into plain rotation.
#[derive(Debug, Clone)]
pub struct WeightedRoundRobin {
    slots: Vec<Slot>,
    /// Index that wins ties; rotating it per core keeps cores from all hitting endpoint 0 first.
    start: usize,
    /// Magnitude beyond which `current` values are considered to have drifted (see `pick`).
    drift_limit: i64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    weight: i64,
    current: i64,
}

impl WeightedRoundRobin {
    /// `weights[i]` is endpoint i's relative share (0 = never picked). `start` rotates the
    /// starting point so each core does not begin on the same endpoint (pass the core index).
    pub fn new(weights: &[u32], start: usize) -> Self {
        let slots: Vec<Slot> = weights
            .iter()
            .map(|&w| Slot {
                weight: i64::from(w),
                current: 0,
            })
            .collect();
        let total = slots
            .iter()
            .fold(0i64, |acc, s| acc.saturating_add(s.weight));
        // Without skips the values provably stay within one total weight of zero; skips change the
        // eligible set between rounds, so allow generous headroom before treating it as drift.
        let drift_limit = total.saturating_mul(4).saturating_add(1);
        let start = start.checked_rem(slots.len()).unwrap_or(0);
        Self {
            slots,
            start,
            drift_limit,
        }
    }
}

impl Balancer for WeightedRoundRobin {
    fn choose(&mut self, _hash: Option<u64>, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
        let n = self.slots.len();
        let mut total: i64 = 0;
        let mut best: Option<(usize, i64)> = None;
        // Visiting from `start` makes ties (e.g. all-equal weights on the first round) resolve to
        // the rotated position, which is what offsets each core's sequence.
        for i in (self.start..n).chain(0..self.start) {
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            if slot.weight == 0 || skip(i) {
                continue;
            }
            slot.current = slot.current.saturating_add(slot.weight);
            total = total.saturating_add(slot.weight);
            if best.is_none_or(|(_, c)| slot.current > c) {
                best = Some((i, slot.current));
            }
        }
        let (index, _) = best?;
        let slot = self.slots.get_mut(index)?;
        slot.current = slot.current.saturating_sub(total);
        if slot.current.abs() > self.drift_limit {
            // Adversarial skip patterns can in principle push values apart; restarting the
            // sequence costs one momentarily uneven round, saturation would freeze it for good.
            for s in &mut self.slots {
                s.current = 0;
            }
        }
        Some(index)
    }

    fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TriedSet;

    fn never(_: usize) -> bool {
        false
    }

    fn sequence(b: &mut WeightedRoundRobin, count: usize) -> Vec<usize> {
        (0..count).filter_map(|_| b.choose(None, &never)).collect()
    }

    fn max_run(seq: &[usize], index: usize) -> usize {
        let mut best = 0;
        let mut run = 0;
        for &i in seq {
            if i == index {
                run += 1;
                best = best.max(run);
            } else {
                run = 0;
            }
        }
        best
    }

    #[test]
    fn equal_weights_rotate_exactly() {
        let mut b = WeightedRoundRobin::new(&[1, 1, 1], 0);
        assert_eq!(sequence(&mut b, 9), vec![0, 1, 2, 0, 1, 2, 0, 1, 2]);
        let mut b = WeightedRoundRobin::new(&[7, 7, 7, 7], 0);
        assert_eq!(sequence(&mut b, 8), vec![0, 1, 2, 3, 0, 1, 2, 3]);
    }

    #[test]
    fn start_offsets_the_sequence() {
        let mut b = WeightedRoundRobin::new(&[1, 1, 1], 1);
        assert_eq!(sequence(&mut b, 6), vec![1, 2, 0, 1, 2, 0]);
        let mut b = WeightedRoundRobin::new(&[1, 1, 1], 2);
        assert_eq!(sequence(&mut b, 6), vec![2, 0, 1, 2, 0, 1]);
        // Core indices beyond the endpoint count wrap instead of failing.
        let mut b = WeightedRoundRobin::new(&[1, 1, 1], 4);
        assert_eq!(sequence(&mut b, 3), vec![1, 2, 0]);
        let mut b = WeightedRoundRobin::new(&[1, 1, 1], usize::MAX);
        assert_eq!(sequence(&mut b, 3).len(), 3);
    }

    #[test]
    fn five_one_one_interleaves() {
        let mut b = WeightedRoundRobin::new(&[5, 1, 1], 0);
        assert_eq!(sequence(&mut b, 7), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn three_to_one_is_exact_and_smooth() {
        let mut b = WeightedRoundRobin::new(&[3, 1], 0);
        let seq = sequence(&mut b, 400);
        assert_eq!(seq.len(), 400);
        let a = seq.iter().filter(|&&i| i == 0).count();
        let c = seq.iter().filter(|&&i| i == 1).count();
        assert_eq!((a, c), (300, 100));
        assert!(max_run(&seq, 0) <= 3, "heavy endpoint burst: {seq:?}");
        assert_eq!(max_run(&seq, 1), 1);
        // The same holds from every starting rotation.
        for start in 0..2 {
            let mut b = WeightedRoundRobin::new(&[1, 3], start);
            let seq = sequence(&mut b, 400);
            assert_eq!(seq.iter().filter(|&&i| i == 1).count(), 300);
            assert!(max_run(&seq, 1) <= 3);
            assert_eq!(max_run(&seq, 0), 1);
        }
    }

    #[test]
    fn shares_hold_for_uneven_weights() {
        let weights = [5u32, 2, 9, 1];
        let total: u32 = weights.iter().sum();
        let mut b = WeightedRoundRobin::new(&weights, 3);
        let seq = sequence(&mut b, total as usize * 50);
        for (i, &w) in weights.iter().enumerate() {
            assert_eq!(seq.iter().filter(|&&x| x == i).count(), w as usize * 50);
        }
    }

    #[test]
    fn skip_excludes_and_all_skipped_is_none() {
        let mut b = WeightedRoundRobin::new(&[1, 1, 1], 0);
        let seq: Vec<_> = (0..10)
            .filter_map(|_| b.choose(None, &|i| i == 1))
            .collect();
        assert_eq!(seq, vec![0, 2, 0, 2, 0, 2, 0, 2, 0, 2]);
        assert_eq!(b.choose(None, &|_| true), None);
        let mut b = WeightedRoundRobin::new(&[3, 1], 0);
        assert_eq!(b.choose(None, &|i| i < 2), None);
        assert_eq!(b.choose(None, &|i| i == 0), Some(1));
    }

    #[test]
    fn empty_is_none() {
        let mut b = WeightedRoundRobin::new(&[], 3);
        assert!(b.is_empty());
        assert_eq!(b.len(), 0);
        assert_eq!(b.choose(None, &never), None);
    }

    #[test]
    fn zero_weight_is_never_picked() {
        let mut b = WeightedRoundRobin::new(&[0, 2, 0, 1], 0);
        assert_eq!(b.len(), 4);
        let seq = sequence(&mut b, 300);
        assert_eq!(seq.len(), 300);
        assert!(seq.iter().all(|&i| i == 1 || i == 3));
        let mut b = WeightedRoundRobin::new(&[0, 0], 1);
        assert_eq!(b.choose(None, &never), None);
    }

    #[test]
    fn failover_visits_each_endpoint_at_most_once() {
        let mut b = WeightedRoundRobin::new(&[4, 1, 2, 3, 1], 2);
        for _connection in 0..50 {
            let mut tried = TriedSet::new();
            while let Some(i) = b.choose(None, &|i| tried.contains(i)) {
                assert!(!tried.contains(i), "endpoint {i} revisited");
                assert!(tried.insert(i));
            }
            assert_eq!(tried.len(), 5);
        }
    }

    #[test]
    fn skips_do_not_accumulate_weight() {
        // Endpoint 1 sits out 30 rounds; had it kept accumulating it would win a long burst when
        // it returns. It must instead rejoin the plain rotation.
        let mut b = WeightedRoundRobin::new(&[1, 1, 1], 0);
        for _ in 0..30 {
            assert_ne!(b.choose(None, &|i| i == 1), Some(1));
        }
        let seq = sequence(&mut b, 30);
        assert!(max_run(&seq, 1) <= 1, "{seq:?}");
        assert_eq!(seq.iter().filter(|&&i| i == 1).count(), 10);
    }

    #[test]
    fn extreme_weights_and_random_skips_stay_sane() {
        let mut b = WeightedRoundRobin::new(&[u32::MAX, 1, u32::MAX, 0, 7], 1);
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mask = state;
            let picked = b.choose(None, &|i| mask >> (i % 64) & 1 == 1);
            if let Some(i) = picked {
                assert!(i < 5 && i != 3);
                assert_eq!(mask >> i & 1, 0);
            }
            for s in &b.slots {
                assert!(s.current.abs() <= b.drift_limit);
            }
        }
    }
}
