//! `upstream_peer`: the route's cluster, or one of several by weight (a canary split: smooth
//! weighted round robin, one picker per route per core, started at a different cluster on each
//! core so the cores do not all send their first requests to the same one).

use std::cell::RefCell;

use strait_balancer::{Balancer, PickContext, WeightedRoundRobin};

use crate::config::WeightedCluster;
use crate::http::pipeline::{Peer, Phases, RequestView};

pub(crate) enum ClusterChoice {
    One(usize),
    Split {
        clusters: Vec<usize>,
        picker: RefCell<WeightedRoundRobin>,
    },
}

impl ClusterChoice {
    pub(crate) fn new(clusters: &[WeightedCluster], core: usize) -> Self {
        match clusters {
            [only] => ClusterChoice::One(only.cluster),
            all => {
                let weights: Vec<u32> = all.iter().map(|c| c.weight).collect();
                ClusterChoice::Split {
                    clusters: all.iter().map(|c| c.cluster).collect(),
                    picker: RefCell::new(WeightedRoundRobin::new(&weights, core)),
                }
            }
        }
    }
}

impl Phases for ClusterChoice {
    fn name(&self) -> &'static str {
        "cluster_choice"
    }

    fn upstream_peer(&self, _req: &dyn RequestView, peer: &mut Option<Peer>) {
        let cluster = match self {
            ClusterChoice::One(c) => *c,
            ClusterChoice::Split { clusters, picker } => {
                // The borrow ends here: no RefCell borrow is held across an await.
                let picked = picker
                    .try_borrow_mut()
                    .ok()
                    .and_then(|mut p| p.pick(&PickContext::FIRST, &|_| false));
                clusters[picked.unwrap_or(0).min(clusters.len() - 1)]
            }
        };
        *peer = Some(Peer {
            cluster,
            hash: peer.and_then(|p| p.hash),
        });
    }
}
