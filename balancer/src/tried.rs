//! The per-connection set of endpoints already attempted.
//!
//! Owns: a fixed-capacity, stack-only set of endpoint indices from which callers build the `skip`
//! predicate passed to [`crate::Balancer::pick`]. Must not: allocate, or decide retry policy (how
//! many attempts to make is the caller's and the configuration's business).

/// Endpoint indices already tried for one connection.
///
/// Capacity is [`TriedSet::CAPACITY`] (16). Configuration validation caps connect attempts per
/// connection at that number, so a full set means the caller has already spent its whole attempt
/// budget; the set therefore never needs to grow and can live on the stack of the connection task.
#[derive(Debug, Clone, Copy, Default)]
pub struct TriedSet {
    items: [usize; TriedSet::CAPACITY],
    len: u8,
}

impl TriedSet {
    /// Maximum number of distinct indices the set can hold; equal to the configured upper bound on
    /// connect attempts per connection.
    pub const CAPACITY: usize = 16;

    /// The empty set, for picks with nothing tried yet.
    pub const EMPTY: TriedSet = TriedSet::new();

    /// An empty set.
    pub const fn new() -> Self {
        Self {
            items: [0; Self::CAPACITY],
            len: 0,
        }
    }

    /// Records `index` as tried.
    ///
    /// Returns `true` when `index` is in the set afterwards (newly added or already present), and
    /// `false` only when the set is full and `index` was not recorded — which means the caller went
    /// past the attempt cap and should stop retrying rather than risk revisiting endpoints.
    pub fn insert(&mut self, index: usize) -> bool {
        if self.contains(index) {
            return true;
        }
        let len = usize::from(self.len);
        match self.items.get_mut(len) {
            Some(slot) => {
                *slot = index;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Whether `index` has been recorded.
    pub fn contains(&self, index: usize) -> bool {
        self.as_slice().contains(&index)
    }

    /// Number of distinct indices recorded.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when nothing has been recorded yet (the first attempt).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when no further index can be recorded.
    pub fn is_full(&self) -> bool {
        self.len() == Self::CAPACITY
    }

    /// The recorded indices, in insertion order.
    pub fn as_slice(&self) -> &[usize] {
        // `len` only ever grows through `insert`, which bounds it by CAPACITY, so this never
        // truncates; `get` keeps the accessor panic-free regardless.
        self.items.get(..self.len()).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_len() {
        let mut set = TriedSet::new();
        assert!(set.is_empty());
        assert!(!set.contains(3));
        assert!(set.insert(3));
        assert!(set.insert(7));
        assert!(set.contains(3));
        assert!(set.contains(7));
        assert!(!set.contains(0));
        assert_eq!(set.len(), 2);
        assert_eq!(set.as_slice(), &[3, 7]);
    }

    #[test]
    fn duplicates_are_not_counted_twice() {
        let mut set = TriedSet::new();
        assert!(set.insert(5));
        assert!(set.insert(5));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn full_set_refuses_new_indices_but_accepts_known_ones() {
        let mut set = TriedSet::new();
        for i in 0..TriedSet::CAPACITY {
            assert!(set.insert(i * 10));
        }
        assert!(set.is_full());
        assert!(!set.insert(usize::MAX));
        assert!(!set.contains(usize::MAX));
        assert!(set.insert(0));
        assert_eq!(set.len(), TriedSet::CAPACITY);
    }

    #[test]
    fn zero_index_is_not_implicitly_present() {
        // The backing array is zero-filled; only recorded slots may count.
        let set = TriedSet::new();
        assert!(!set.contains(0));
    }
}
