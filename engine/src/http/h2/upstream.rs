//! The core's HTTP/2 (h2c) connections to upstream endpoints, multiplexed across requests.
//!
//! Owns: per cluster and endpoint, a few h2c client connections shared by every stream on this
//! core; at most [`STREAMS_PER_CONNECTION`] requests in flight on each (a new connection is
//! opened when all are saturated — one at a time per endpoint, so a burst of streams waits for
//! it instead of opening one each — and never more than `max_connections_per_endpoint`); the
//! forgetting connections that closed or received GOAWAY. Opening connections (and their driver
//! tasks) is the exchange's (`http::exchange::acquire`). Must not: be shared between cores (an
//! `h2::client::SendRequest` is cheap to clone but its connection belongs to this core's
//! runtime), or do IO.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::Bytes;
use h2::client::SendRequest;

/// Requests in flight per upstream h2 connection before another is opened: the value most
/// servers advertise as SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §6.5.2 recommends ≥ 100).
pub(crate) const STREAMS_PER_CONNECTION: usize = 100;

/// One upstream h2c connection.
pub(crate) struct Client {
    pub send: SendRequest<Bytes>,
    /// Streams in flight (a stream holds an [`InFlight`] guard).
    pub in_flight: Rc<Cell<usize>>,
    /// Cleared by the driver task when the connection ends.
    pub alive: Rc<Cell<bool>>,
}

/// Per core: `[cluster][endpoint]` → open connections, and whether one is being opened.
#[derive(Default)]
pub(crate) struct H2Clients {
    pub(crate) clients: RefCell<Vec<Vec<Vec<Client>>>>,
    /// `[cluster][endpoint]`: a connection is being opened. Streams that find no free slot wait
    /// for it instead of each opening their own (a burst of streams would otherwise open one
    /// connection per stream).
    pub(crate) connecting: RefCell<Vec<Vec<bool>>>,
}

impl H2Clients {
    pub(crate) fn new(clusters: &[crate::config::ClusterConfig]) -> H2Clients {
        H2Clients {
            clients: RefCell::new(
                clusters
                    .iter()
                    .map(|c| c.endpoints.iter().map(|_| Vec::new()).collect())
                    .collect(),
            ),
            connecting: RefCell::new(
                clusters
                    .iter()
                    .map(|c| vec![false; c.endpoints.len()])
                    .collect(),
            ),
        }
    }

    /// The connections of a reloaded configuration: those to endpoints that still exist (see
    /// [`Carried`]) carry their streams over.
    pub(crate) fn carry_over(
        &self,
        config: &crate::config::Config,
        carried: &crate::stats::Carried,
    ) -> H2Clients {
        let next = H2Clients::new(&config.clusters);
        {
            let mut old = self.clients.borrow_mut();
            let mut new = next.clients.borrow_mut();
            for (c, endpoints) in carried.connections.iter().enumerate() {
                for (e, at) in endpoints.iter().enumerate() {
                    let Some((oc, oe)) = *at else { continue };
                    if let (Some(from), Some(to)) = (
                        old.get_mut(oc).and_then(|x| x.get_mut(oe)),
                        new.get_mut(c).and_then(|x| x.get_mut(e)),
                    ) {
                        *to = std::mem::take(from);
                    }
                }
            }
        }
        next
    }

    /// Closes every connection (drain).
    pub(crate) fn clear(&self) {
        for endpoints in self.clients.borrow_mut().iter_mut() {
            for list in endpoints.iter_mut() {
                list.clear();
            }
        }
    }
}

/// A stream slot on an upstream connection, released on drop.
pub(crate) struct InFlight {
    pub send: SendRequest<Bytes>,
    pub(crate) count: Rc<Cell<usize>>,
}

impl InFlight {
    pub(crate) fn send_request(
        &mut self,
        request: http::Request<()>,
        end_of_stream: bool,
    ) -> Result<(h2::client::ResponseFuture, h2::SendStream<Bytes>), h2::Error> {
        self.send.send_request(request, end_of_stream)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.set(self.count.get().saturating_sub(1));
    }
}

/// A new connection: its request handle, stream count and liveness.
pub(crate) type Opened = (SendRequest<Bytes>, Rc<Cell<usize>>, Rc<Cell<bool>>);

pub(crate) enum Slot {
    /// A live connection with a free stream slot (its stream count and liveness).
    Free(SendRequest<Bytes>, Rc<Cell<usize>>, Rc<Cell<bool>>),
    /// Every connection is busy and another is being opened.
    Wait,
    /// Every connection is busy: open one (marked as being opened).
    Open,
    /// Every connection is busy and the endpoint has `max_connections_per_endpoint`.
    Full,
}

/// The least busy live connection with a free slot, or what to do instead.
pub(crate) fn free_slot(
    clients: &H2Clients,
    cluster: usize,
    endpoint: usize,
    max_open: usize,
) -> Slot {
    let mut all = clients.clients.borrow_mut();
    let list = &mut all[cluster][endpoint];
    list.retain(|c| c.alive.get());
    let best = list
        .iter()
        .filter(|c| c.in_flight.get() < STREAMS_PER_CONNECTION)
        .min_by_key(|c| c.in_flight.get());
    if let Some(c) = best {
        return Slot::Free(c.send.clone(), c.in_flight.clone(), c.alive.clone());
    }
    let open = list.len();
    let mut connecting = clients.connecting.borrow_mut();
    let flag = &mut connecting[cluster][endpoint];
    if *flag {
        Slot::Wait
    } else if open >= max_open {
        Slot::Full
    } else {
        *flag = true;
        Slot::Open
    }
}
