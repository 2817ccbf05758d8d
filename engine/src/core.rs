//! One core: its runtime's main task, accept loops, control handling and drain.
//!
//! Owns: the accept loop of each listener socket, the per-core connection limit, and the drain sequence: cancel in-flight accepts, close the listening sockets, wait for
//! open connections up to the drain timeout, then return (dropping whatever is left).
//! Must not: block the thread, take locks, or talk to other cores — only the control channel
//! crosses the thread boundary, and only for rare messages.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use monoio::io::{CancelHandle, Canceller};
use monoio::net::{TcpListener, TcpStream};
use strait_protocols::relay::sys;
use tracing::{debug, info, warn};

use crate::config::ListenerProtocol;
use crate::context::CoreContext;
use crate::control::{Control, ControlReceiver};
use crate::http::{self, pool::Pools};
use crate::listener::{self, BoundSocket};
use crate::log_limit::LogLimit;
use crate::stats::{CoreHistograms, Detected};
use crate::tcp_proxy;
use crate::udp_proxy;

/// The core's configuration versions: the current one, which new connections take (one `Rc`
/// clone per accepted connection), and the older ones still used by open connections (weakly
/// held: a version is freed when its last connection ends). Their histograms are reported with
/// the current one's, and their pools are swept and emptied at drain like its.
struct Epochs {
    current: RefCell<Rc<CoreContext>>,
    old: RefCell<Vec<Weak<CoreContext>>>,
}

type Current = Rc<Epochs>;

impl Epochs {
    fn borrow(&self) -> std::cell::Ref<'_, Rc<CoreContext>> {
        self.current.borrow()
    }

    fn swap(&self, next: CoreContext) {
        next.current_version.set(next.version);
        let previous = std::mem::replace(&mut *self.current.borrow_mut(), Rc::new(next));
        let mut old = self.old.borrow_mut();
        old.retain(|w| w.strong_count() > 0);
        old.push(Rc::downgrade(&previous));
    }

    /// The older versions still in use.
    fn live_old(&self) -> Vec<Rc<CoreContext>> {
        let mut old = self.old.borrow_mut();
        old.retain(|w| w.strong_count() > 0);
        old.iter().filter_map(Weak::upgrade).collect()
    }
}

fn apply_control(current: &Current, msg: Control) {
    let ctx = current.borrow().clone();
    match msg {
        Control::Histograms(reply) => answer_histograms(current, reply),
        Control::Tls(configs) => {
            for (listener, config) in configs {
                ctx.set_tls(listener, &config);
            }
        }
        Control::Reload(r) => {
            let next = ctx.next(r.config, r.stats, r.version, &r.upstream_tls);
            info!(
                core = ctx.stats.index,
                version = r.version,
                "configuration reloaded"
            );
            current.swap(next);
            let _ = r.done.send(());
        }
        Control::Drain => {}
    }
}

/// The core's main task. Returns when the core has drained (or the control channel closed).
pub(crate) async fn run(
    ctx: Rc<CoreContext>,
    listeners: Vec<BoundSocket>,
    control: ControlReceiver,
) {
    // One timer for every connection's idle timeout; lives (detached) as long as the runtime.
    {
        let relay = ctx.relay.clone();
        drop(monoio::spawn(async move { relay.idle.run().await }));
    }
    let current: Current = Rc::new(Epochs {
        current: RefCell::new(ctx.clone()),
        old: RefCell::new(Vec::new()),
    });
    if ctx.http.is_active() {
        drop(monoio::spawn(http_housekeeping(current.clone())));
    }
    let canceller = Canceller::new();
    let mut accept_tasks = Vec::with_capacity(listeners.len());
    for (index, socket) in listeners.into_iter().enumerate() {
        let registered = match socket {
            BoundSocket::Tcp(s) => TcpListener::from_std(s).map(|listener| {
                accept_tasks.push(monoio::spawn(accept_loop(
                    current.clone(),
                    index,
                    listener,
                    canceller.handle(),
                )));
            }),
            // A UDP listener keeps serving its open sessions while draining; it refuses new
            // ones itself, so it needs no cancellation. New sessions take the current version.
            BoundSocket::Udp(s) => monoio::net::udp::UdpSocket::from_std(s).map(|socket| {
                let current = current.clone();
                let version = move || current.borrow().clone();
                drop(monoio::spawn(udp_proxy::serve(version, index, socket)));
            }),
        };
        match registered {
            Ok(()) => {}
            Err(e) => warn!(
                core = ctx.stats.index,
                listener = %ctx.config.listeners[index].name,
                error = %e,
                "cannot register listener socket with the runtime; this core will not accept on it"
            ),
        }
    }

    // Version 0 lives on only through its connections and UDP sessions.
    drop(ctx);
    // Runs until Drain, or until the server's sender is gone.
    loop {
        match control.recv_async().await {
            Ok(Control::Drain) | Err(_) => break,
            Ok(msg) => apply_control(&current, msg),
        }
    }

    // The drain works on the current version; older ones share the connection count, the
    // open-socket slab and the drain flag with it.
    let ctx = current.borrow().clone();
    ctx.draining.set(true);
    // Cancel in-flight accepts and drop the sockets before anything else: an accept left in the
    // ring would keep the port alive after exit and reset connections meant for a new process.
    let _ = canceller.cancel();
    for task in accept_tasks {
        task.await;
    }
    let deadline = Instant::now() + ctx.config.runtime.drain_timeout;
    // Keep-alive connections between requests close now; busy ones finish their request and
    // answer it with `connection: close`.
    ctx.open_sockets.borrow_mut().close_idle();
    for version in std::iter::once(ctx.clone()).chain(current.live_old()) {
        version.http.pools.borrow_mut().clear();
        version.http.h2_clients.clear();
    }
    info!(
        core = ctx.stats.index,
        open_connections = ctx.active.get(),
        "draining: listeners closed, waiting for open connections"
    );
    while ctx.active.get() > 0 && Instant::now() < deadline {
        monoio::select! {
            msg = control.recv_async() => {
                if let Ok(msg) = msg {
                    apply_control(&current, msg);
                } else {
                    // The server is gone; nobody will ask again. Keep draining on the timer.
                    monoio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            _ = monoio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    if ctx.active.get() > 0 {
        warn!(
            core = ctx.stats.index,
            open_connections = ctx.active.get(),
            "drain timeout reached: aborting the remaining connections"
        );
        ctx.open_sockets.borrow().abort_all();
    } else {
        info!(core = ctx.stats.index, "drained");
    }
    let log = ctx.http.access_log.clone();
    let mut log = log.borrow_mut();
    if let Some(log) = log.as_mut() {
        log.flush();
    }
}

/// Per core, while HTTP listeners exist: hands the access log buffer to its writer thread and
/// closes upstream connections that idled in the pools past their timeout.
async fn http_housekeeping(current: Current) {
    let mut last_sweep = Instant::now();
    let mut dropped = 0;
    loop {
        monoio::time::sleep(http::ACCESS_LOG_FLUSH).await;
        // The current version: its pools are the ones new requests use.
        let ctx = current.borrow().clone();
        let sweep_every = Pools::sweep_period(&ctx.config);
        if let Some(log) = ctx.http.access_log.borrow_mut().as_mut() {
            log.flush();
            let now_dropped = log.dropped_lines();
            ctx.stats
                .totals
                .access_log_dropped
                .add(now_dropped.saturating_sub(dropped));
            dropped = now_dropped;
        }
        let now = Instant::now();
        if now.duration_since(last_sweep) >= sweep_every {
            last_sweep = now;
            for version in std::iter::once(ctx.clone()).chain(current.live_old()) {
                version.http.pools.borrow_mut().sweep(now);
            }
        }
    }
}

/// The current version's histograms plus what connections of older versions recorded since
/// they were replaced (each version's samples moved to its successor at the swap, so nothing is
/// counted twice), laid out for the current version.
fn answer_histograms(current: &Current, reply: flume::Sender<(u64, CoreHistograms)>) {
    let ctx = current.borrow().clone();
    let mut copy = ctx.histograms.borrow().clone();
    for old in current.live_old() {
        let mapped = old.histograms.borrow().carry_over(&old.config, &ctx.config);
        copy.merge(&mapped);
    }
    // The asker may have given up (timeout); that is fine.
    let _ = reply.send((ctx.version, copy));
}

#[derive(Clone, Copy)]
enum Entry {
    Http,
    Tcp,
    Sniff,
}

async fn accept_loop(
    current: Current,
    listener_index: usize,
    listener: TcpListener,
    cancel: CancelHandle,
) {
    // The per-core parts (the connection count, the drain flag, the core's counters) and the
    // listener itself are the same in every configuration version (a reload does not change
    // listeners); the loop keeps only those, not a version.
    let first = current.borrow().clone();
    let name = first.config.listeners[listener_index].name.clone();
    let l = &first.config.listeners[listener_index];
    // Sniffing and TLS need the entry phase; plain HTTP and TCP go straight to their handler.
    let entry = match (l.protocol, &l.tls) {
        (ListenerProtocol::Auto, _) | (_, Some(_)) => Entry::Sniff,
        (ListenerProtocol::Http, None) => Entry::Http,
        _ => Entry::Tcp,
    };
    let max = first.config.runtime.max_connections_per_core;
    let (active, draining, totals, core) = (
        first.active.clone(),
        first.draining.clone(),
        first.stats.totals.clone(),
        first.stats.index,
    );
    drop(first);
    let resource_warnings = LogLimit::per_second();
    let listener_fd = {
        use std::os::fd::AsRawFd;
        listener.as_raw_fd()
    };
    // monoio's own accepts leave sockets blocking under io_uring and non-blocking under epoll;
    // the backlog drain below does the same.
    let nonblocking = monoio::utils::is_legacy();
    let start = |stream: TcpStream, peer: SocketAddr| {
        let ctx = current.borrow().clone();
        // An accept that completed as the drain began still belongs to a client who connected
        // before it: serve it.
        if ctx.active.get() >= max {
            reject(&ctx, listener_index, stream, peer);
        } else {
            use std::os::fd::AsRawFd;
            let guard =
                crate::upstream::ConnectionGuard::open(&ctx, listener_index, stream.as_raw_fd());
            let counters = &ctx.stats.listeners[listener_index];
            match entry {
                Entry::Http => {
                    counters.detected[Detected::Http1 as usize].inc();
                    monoio::spawn(http::proxy::serve(guard, stream, peer));
                }
                Entry::Tcp => {
                    counters.detected[Detected::Tcp as usize].inc();
                    monoio::spawn(tcp_proxy::serve(guard, stream, peer));
                }
                Entry::Sniff => {
                    monoio::spawn(crate::entry::serve(guard, stream, peer));
                }
            }
        }
    };
    loop {
        // Take what is already queued with plain non-blocking accepts first: while connections
        // are waiting in the backlog nobody needs to wait on the listener, so a client's connect
        // wakes no one on its core (with an async accept pending, every connect costs the
        // client's core a wakeup of this one: measured ~12 % fewer connections per second on
        // the load core). Bounded, so a connection storm cannot starve open connections.
        for _ in 0..BACKLOG_BATCH {
            if draining.get() || active.get() >= max {
                break;
            }
            match listener::accept_queued(listener_fd, nonblocking) {
                Some((stream, peer)) => match TcpStream::from_std(stream) {
                    Ok(stream) => start(stream, peer),
                    Err(e) => {
                        totals.accept_errors.inc();
                        debug!(core, error = %e, "cannot register an accepted connection");
                    }
                },
                None => break,
            }
        }
        if draining.get() {
            break;
        }
        match listener.cancelable_accept(cancel.clone()).await {
            Ok((stream, peer)) => start(stream, peer),
            Err(_) if draining.get() => break,
            Err(e) => {
                totals.accept_errors.inc();
                if is_resource_exhaustion(&e) {
                    // Out of fds or memory: the pending connection stays in the backlog. Back off
                    // instead of spinning on accept, and say so at most once a second.
                    if let Some(suppressed) = resource_warnings.allow() {
                        warn!(core, listener = %name, error = %e, suppressed,
                            "accept failed: out of resources; raise the file descriptor limit (ulimit -n) or lower max_connections_per_core");
                    }
                    monoio::time::sleep(Duration::from_millis(20)).await;
                } else if !is_transient(&e) {
                    warn!(core, listener = %name, error = %e, "accept failed");
                    monoio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    debug!(core, listener = %name, "accept loop stopped");
    drop(listener);
}

/// Queued connections taken per round of the accept loop before it awaits again.
const BACKLOG_BATCH: usize = 32;

/// Over the per-core limit: close at once with RST so the client retries elsewhere instead of
/// waiting, and count it.
fn reject(ctx: &CoreContext, listener_index: usize, stream: TcpStream, peer: SocketAddr) {
    use std::os::fd::AsRawFd;
    let _ = sys::set_linger_zero(stream.as_raw_fd());
    drop(stream);
    ctx.stats.totals.rejected_max_connections.inc();
    ctx.stats.listeners[listener_index]
        .rejected_max_connections
        .inc();
    debug!(core = ctx.stats.index, client = %peer, "connection rejected: max_connections_per_core reached");
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Errors about one pending connection (it was reset or aborted before we took it) that say
/// nothing about the listener.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::ECONNRESET
                | libc::EINTR
                | libc::EAGAIN
                | libc::EPERM
                | libc::EPROTO
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
        )
    )
}
