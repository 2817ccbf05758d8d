//! Endpoint selection for Strait clusters.
//!
//! Owns: the algorithms that choose which endpoint (by index into a cluster's endpoint list) a new
//! connection should try next, and the small per-connection [`TriedSet`] used to skip endpoints
//! that already failed. Must not: perform IO, know about sockets, addresses, health checks or
//! configuration files, use locks or atomics (one balancer lives on each core for each cluster), or
//! allocate on the pick path.

mod tried;
mod wrr;

pub use tried::TriedSet;
pub use wrr::WeightedRoundRobin;

/// Chooses endpoints (by index) for new connections.
pub trait Balancer {
    /// The next endpoint to try, skipping every index for which `skip` returns true
    /// (endpoints already tried for this connection, later: unhealthy ones). None when all are
    /// skipped or there are none.
    fn pick(&mut self, skip: &dyn Fn(usize) -> bool) -> Option<usize>;

    /// Number of endpoints, including those that can never be picked (weight 0).
    fn len(&self) -> usize;

    /// True when the cluster has no endpoints at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
