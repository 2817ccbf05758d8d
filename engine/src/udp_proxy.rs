//! The UDP relay: datagrams from each client address to an upstream endpoint, and replies back.
//!
//! Owns: the per-core session table of one UDP listener (client address → a connected upstream
//! socket), creating sessions (counted against the per-core connection limit, endpoint chosen by
//! the cluster's balancer), relaying replies from the listening address, and expiring sessions
//! after the listener's idle timeout. The kernel's SO_REUSEPORT hash keeps one client's datagrams
//! on one core, so a session never spans cores.
//! Must not: hold a buffer per session (replies are received into one per-core buffer), block the
//! receive loop on one session, or create sessions while draining. A datagram that cannot be sent
//! at once (full socket buffer) is dropped and counted: UDP promises no more.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Instant;

use monoio::net::udp::UdpSocket;
use strait_balancer::Balancer;
use strait_protocols::relay::sys;
use tracing::{debug, warn};

use crate::context::CoreContext;
use crate::log_limit::LogLimit;
use crate::upstream::{ConnectionGuard, EndpointGuard};

/// The largest UDP payload over IPv4/IPv6 without jumbograms.
const MAX_DATAGRAM: usize = 65_535;

struct Session {
    upstream: UdpSocket,
    last_activity: Cell<Instant>,
    /// The configuration version the session was opened under: its cluster and endpoint stay
    /// for its life, as a TCP connection's do across a reload.
    ctx: Rc<CoreContext>,
    cluster_index: usize,
}

type Sessions = Rc<RefCell<HashMap<SocketAddr, Rc<Session>>>>;

/// Serves one UDP listener socket on this core until the runtime stops. `current` returns the
/// core's current configuration version: each new session is opened under it (a reload changes
/// where new sessions go), while open sessions keep the version they started with.
pub(crate) async fn serve(
    current: impl Fn() -> Rc<CoreContext>,
    listener_index: usize,
    socket: UdpSocket,
) {
    let socket = Rc::new(socket);
    let sessions: Sessions = Rc::default();
    // Shared by every session of this listener for replies: received and sent before any await.
    let reply_buffer = Rc::new(RefCell::new(vec![0u8; MAX_DATAGRAM].into_boxed_slice()));
    let errors = LogLimit::per_second();
    let mut buf = vec![0u8; MAX_DATAGRAM].into_boxed_slice();
    loop {
        let received = recv_from(&socket, &mut buf).await;
        let ctx = current();
        // Reloads keep the listener set, so the index names the same listener in every version.
        let counters = &ctx.stats.listeners[listener_index];
        let listener = &ctx.config.listeners[listener_index];
        let (n, client) = match received {
            Ok(v) => v,
            Err(e) => {
                if let Some(suppressed) = errors.allow() {
                    warn!(listener = %listener.name, error = %e, suppressed, "UDP receive failed");
                }
                // As in the TCP accept loop: an error that persists must not spin the core.
                monoio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
        };
        counters.datagrams_received.inc();
        counters.received_bytes.add(n as u64);
        let existing = sessions.borrow().get(&client).cloned();
        let session = match existing {
            Some(s) => s,
            None => match open_session(
                &ctx,
                listener_index,
                client,
                &socket,
                &sessions,
                &reply_buffer,
            )
            .await
            {
                Some(s) => s,
                None => {
                    counters.datagrams_dropped.inc();
                    continue;
                }
            },
        };
        session.last_activity.set(Instant::now());
        let cluster_counters = &session.ctx.stats.clusters[session.cluster_index];
        match sys::send_nonblocking(session.upstream.as_raw_fd(), &buf[..n]) {
            Ok(_) => cluster_counters.sent_bytes.add(n as u64),
            Err(e) => {
                counters.datagrams_dropped.inc();
                counters.upstream_errors.inc();
                debug!(listener = %listener.name, client = %client, error = %e, "datagram to upstream dropped");
            }
        }
    }
}

/// Waits for a datagram on the listening socket and receives it with a plain syscall.
async fn recv_from(socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        match recv_from_now(socket, buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => socket.readable(false).await?,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

fn recv_from_now(socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    // SAFETY: `socket` owns this descriptor and outlives the borrow, which ends with this call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    let sock = socket2::SockRef::from(&fd);
    // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and recv only writes into it.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
    let (n, from) = sock.recv_from_with_flags(uninit, libc::MSG_DONTWAIT)?;
    let from = from.as_socket().ok_or_else(|| {
        std::io::Error::new(ErrorKind::InvalidData, "datagram from a non-IP address")
    })?;
    Ok((n, from))
}

async fn open_session(
    ctx: &Rc<CoreContext>,
    listener_index: usize,
    client: SocketAddr,
    socket: &Rc<UdpSocket>,
    sessions: &Sessions,
    reply_buffer: &Rc<RefCell<Box<[u8]>>>,
) -> Option<Rc<Session>> {
    let counters = &ctx.stats.listeners[listener_index];
    if ctx.draining.get() {
        return None;
    }
    if ctx.active.get() >= ctx.config.runtime.max_connections_per_core {
        counters.rejected_max_connections.inc();
        ctx.stats.totals.rejected_max_connections.inc();
        return None;
    }
    let cluster_index = ctx.config.listeners[listener_index].l4_cluster();
    let cluster = &ctx.config.clusters[cluster_index];
    let endpoint_index = ctx.balancers[cluster_index]
        .borrow_mut()
        .pick(&strait_balancer::PickContext::FIRST, &|_| false)?;
    let endpoint = cluster.endpoints[endpoint_index].address;
    let local: SocketAddr = if endpoint.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let upstream = match UdpSocket::bind(local) {
        Ok(s) => s,
        Err(e) => {
            counters.no_upstream.inc();
            warn!(cluster = %cluster.name, error = %e, "cannot open a UDP socket for a new session");
            return None;
        }
    };
    if let Err(e) = upstream.connect(endpoint).await {
        counters.no_upstream.inc();
        ctx.stats.clusters[cluster_index].connect_failures.inc();
        warn!(cluster = %cluster.name, endpoint = %endpoint, error = %e, "cannot connect a UDP session upstream");
        return None;
    }
    let guard = ConnectionGuard::open(ctx, listener_index, upstream.as_raw_fd());
    let endpoint_guard = EndpointGuard::open(ctx.clone(), cluster_index, endpoint_index);
    ctx.stats.clusters[cluster_index].connections.inc();
    counters.detected[crate::stats::Detected::Udp as usize].inc();
    ctx.stats.endpoints[cluster_index][endpoint_index]
        .connections
        .inc();
    let session = Rc::new(Session {
        upstream,
        last_activity: Cell::new(Instant::now()),
        ctx: ctx.clone(),
        cluster_index,
    });
    sessions.borrow_mut().insert(client, session.clone());
    drop(monoio::spawn(relay_replies(
        guard,
        endpoint_guard,
        client,
        session.clone(),
        socket.clone(),
        sessions.clone(),
        reply_buffer.clone(),
    )));
    Some(session)
}

/// One session: upstream replies back to the client until the session is idle for its timeout.
async fn relay_replies(
    guard: ConnectionGuard,
    _endpoint: EndpointGuard,
    client: SocketAddr,
    session: Rc<Session>,
    socket: Rc<UdpSocket>,
    sessions: Sessions,
    reply_buffer: Rc<RefCell<Box<[u8]>>>,
) {
    let ctx = guard.context().clone();
    let listener_index = guard.listener_index();
    let listener = &ctx.config.listeners[listener_index];
    let counters = &ctx.stats.listeners[listener_index];
    let cluster_counters = &ctx.stats.clusters[session.cluster_index];
    loop {
        let deadline = session.last_activity.get() + listener.idle_timeout;
        let now = Instant::now();
        if now >= deadline {
            counters.idle_timeouts.inc();
            break;
        }
        // Dropping the readiness wait on timeout cancels it cleanly; nothing is lost.
        match monoio::time::timeout(deadline - now, session.upstream.readable(false)).await {
            Err(_) => continue, // re-check: a client datagram may have renewed the session
            Ok(Err(e)) => {
                counters.upstream_errors.inc();
                debug!(client = %client, error = %e, "UDP session readiness failed");
                break;
            }
            Ok(Ok(())) => {}
        }
        // Drain everything queued, each reply straight back to the client from our port.
        loop {
            let mut buf = reply_buffer.borrow_mut();
            let n = match sys::recv(session.upstream.as_raw_fd(), &mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ECONNREFUSED: the endpoint's port is closed (ICMP). Keep the session; the
                    // client decides whether to retry.
                    counters.upstream_errors.inc();
                    debug!(client = %client, error = %e, "UDP upstream error");
                    break;
                }
            };
            cluster_counters.received_bytes.add(n as u64);
            session.last_activity.set(Instant::now());
            match sys::send_to(socket.as_raw_fd(), &buf[..n], client) {
                Ok(_) => {
                    counters.datagrams_sent.inc();
                    counters.sent_bytes.add(n as u64);
                }
                Err(e) => {
                    counters.datagrams_dropped.inc();
                    counters.client_errors.inc();
                    debug!(client = %client, error = %e, "reply to client dropped");
                }
            }
        }
    }
    sessions.borrow_mut().remove(&client);
}
