//! Endpoint selection for Strait clusters.
//!
//! Owns: the algorithms that choose which endpoint (by index into a cluster's endpoint list) a new
//! connection or request should try next, the per-request [`PickContext`] they may use (a hash
//! key, the endpoints already tried), and the small [`TriedSet`]. Must not: perform IO, know about
//! sockets, addresses, health checks or configuration files, use locks or atomics (one balancer
//! lives on each core for each cluster), or allocate on the pick path.

mod tried;
mod wrr;

pub use tried::TriedSet;
pub use wrr::WeightedRoundRobin;

/// What one pick may depend on: per request for HTTP (per connection for L4).
#[derive(Debug, Clone, Copy)]
pub struct PickContext<'a> {
    /// The request's affinity key hashed to 64 bits (a client address, a header, a cookie...)
    /// for algorithms that hash; `None` when the request has none (they fall back to their
    /// unkeyed choice).
    pub hash: Option<u64>,
    /// Endpoints already tried for this request: never picked again.
    pub tried: &'a TriedSet,
}

impl<'a> PickContext<'a> {
    /// No key; skip what is in `tried`.
    pub const fn new(tried: &'a TriedSet) -> Self {
        PickContext { hash: None, tried }
    }

    /// No key, nothing tried.
    pub const FIRST: PickContext<'static> = PickContext {
        hash: None,
        tried: &TriedSet::EMPTY,
    };
}

/// Chooses endpoints (by index). Implementations write [`choose`](Balancer::choose); callers use
/// [`pick`](Balancer::pick), which also keeps every pick out of the request's tried set.
pub trait Balancer {
    /// The algorithm: the next endpoint, given the request's hash key (if any), skipping every
    /// index for which `skip` returns true. None when all are skipped or there are none.
    fn choose(&mut self, hash: Option<u64>, skip: &dyn Fn(usize) -> bool) -> Option<usize>;

    /// Number of endpoints, including those that can never be picked (weight 0).
    fn len(&self) -> usize;

    /// True when the cluster has no endpoints at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The endpoint to try next for the request described by `cx`: never one already tried for
    /// it, nor one `skip` refuses (later: unhealthy or ejected endpoints).
    fn pick(&mut self, cx: &PickContext<'_>, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
        self.choose(cx.hash, &|i| cx.tried.contains(i) || skip(i))
    }
}

/// The balancer of one cluster on one core, chosen per cluster when the configuration is
/// loaded (enum dispatch: no allocation or virtual call per pick). Today's one algorithm is
/// smooth weighted round robin; hashing, least-request and latency-aware algorithms are further
/// variants (they receive the request's [`PickContext`]).
#[derive(Debug, Clone)]
pub enum ClusterBalancer {
    RoundRobin(WeightedRoundRobin),
}

impl Balancer for ClusterBalancer {
    #[inline]
    fn choose(&mut self, hash: Option<u64>, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
        match self {
            ClusterBalancer::RoundRobin(b) => b.choose(hash, skip),
        }
    }

    fn len(&self) -> usize {
        match self {
            ClusterBalancer::RoundRobin(b) => b.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyed algorithm written against the trait (what `ring_hash`/`maglev` will be): the same
    /// key picks the same endpoint, and `pick` steps past tried ones without the algorithm
    /// knowing about them.
    struct ModuloHash(usize);

    impl Balancer for ModuloHash {
        fn choose(&mut self, hash: Option<u64>, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
            let start = hash.map_or(0, |h| (h % self.0 as u64) as usize);
            (0..self.0)
                .map(|k| (start + k) % self.0)
                .find(|&i| !skip(i))
        }

        fn len(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn the_request_context_reaches_the_algorithm() {
        let mut b = ModuloHash(4);
        let mut tried = TriedSet::new();
        let cx = PickContext {
            hash: Some(4 * 1000 + 2),
            tried: &tried,
        };
        assert_eq!(b.pick(&cx, &|_| false), Some(2));
        assert_eq!(b.pick(&cx, &|_| false), Some(2), "same key, same endpoint");
        assert_eq!(b.pick(&cx, &|i| i == 2), Some(3), "skip moves it on");
        tried.insert(2);
        tried.insert(3);
        let cx = PickContext {
            hash: Some(2),
            tried: &tried,
        };
        assert_eq!(
            b.pick(&cx, &|_| false),
            Some(0),
            "tried endpoints are never picked"
        );
        assert_eq!(b.pick(&PickContext::FIRST, &|_| false), Some(0));
    }

    #[test]
    fn cluster_balancer_dispatches_and_honours_tried() {
        let mut b = ClusterBalancer::RoundRobin(WeightedRoundRobin::new(&[1, 1, 1], 0));
        let mut tried = TriedSet::new();
        tried.insert(0);
        tried.insert(1);
        for _ in 0..5 {
            assert_eq!(b.pick(&PickContext::new(&tried), &|_| false), Some(2));
        }
        assert_eq!(b.len(), 3);
        tried.insert(2);
        assert_eq!(b.pick(&PickContext::new(&tried), &|_| false), None);
    }
}
