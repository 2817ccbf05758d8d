//! Binding the per-core SO_REUSEPORT sockets (TCP or UDP) of every configured listener.
//!
//! Owns: creating all listening sockets in the main thread before any core starts, so a bad or busy
//! address fails start-up with a clear message instead of failing later inside a core. A listener on
//! port 0 gets one kernel-chosen port shared by all its per-core sockets.
//! Must not: accept connections (each core converts its sockets into runtime listeners itself —
//! monoio requires that to happen inside the runtime).

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{ListenerConfig, ListenerProtocol};

#[derive(Debug)]
pub struct BindError {
    pub listener: String,
    pub address: SocketAddr,
    pub error: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "listener {:?}: cannot listen on {}: {}",
            self.listener, self.address, self.error
        )?;
        match self.error.kind() {
            io::ErrorKind::AddrInUse => write!(f, " (another process holds this port)"),
            io::ErrorKind::PermissionDenied => {
                write!(f, " (ports below 1024 need root or CAP_NET_BIND_SERVICE)")
            }
            io::ErrorKind::AddrNotAvailable => write!(f, " (no local interface has this address)"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for BindError {}

/// One core's socket of a listener.
pub enum BoundSocket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// The sockets of one listener: one per core, all on the same resolved address.
pub struct BoundListener {
    pub address: SocketAddr,
    pub per_core: Vec<BoundSocket>,
}

/// Binds `cores` SO_REUSEPORT sockets for `listener`.
pub fn bind(listener: &ListenerConfig, cores: usize) -> Result<BoundListener, BindError> {
    let err = |address, error| BindError {
        listener: listener.name.clone(),
        address,
        error,
    };
    let mut address = listener.address;
    let mut per_core = Vec::with_capacity(cores);
    for _ in 0..cores {
        let (socket, local) = match listener.protocol {
            ListenerProtocol::Tcp | ListenerProtocol::Http | ListenerProtocol::Auto => {
                let s = bind_tcp(address, listener.backlog).map_err(|e| err(address, e))?;
                let local = s.local_addr();
                (BoundSocket::Tcp(s), local)
            }
            ListenerProtocol::Udp => {
                let s = bind_udp(address).map_err(|e| err(address, e))?;
                let local = s.local_addr();
                (BoundSocket::Udp(s), local)
            }
        };
        if address.port() == 0 {
            // Later cores must join the same port, not get their own.
            address = local.map_err(|e| err(address, e))?;
        }
        per_core.push(socket);
    }
    Ok(BoundListener { address, per_core })
}

fn reuseport_socket(address: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), ty, Some(proto))?;
    socket.set_cloexec(true)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if address.is_ipv6() {
        // `[::]:80` means IPv6 only; an IPv4 listener is configured separately.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket)
}

fn bind_tcp(address: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = reuseport_socket(address, Type::STREAM, Protocol::TCP)?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

fn bind_udp(address: SocketAddr) -> io::Result<UdpSocket> {
    Ok(reuseport_socket(address, Type::DGRAM, Protocol::UDP)?.into())
}

/// One connection already waiting in `listener`'s accept queue, without blocking: `None` when the
/// queue is empty or the accept failed (the async accept that follows reports real errors).
/// `nonblocking` sets O_NONBLOCK on the new socket (what the epoll driver expects; io_uring
/// drives blocking sockets).
pub fn accept_queued(
    listener: std::os::fd::RawFd,
    nonblocking: bool,
) -> Option<(std::net::TcpStream, SocketAddr)> {
    use std::os::fd::FromRawFd;
    let mut storage: libc::sockaddr_storage = unsafe_zeroed_storage();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let flags = libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: `storage` and `len` are valid for writes of the sizes given, for the whole call;
    // accept4 on a non-blocking listener never blocks.
    let fd = unsafe {
        libc::accept4(
            listener,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
            flags,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    let peer = socket_address(&storage)?;
    Some((stream, peer))
}

fn unsafe_zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is a plain C struct for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// The IPv4 or IPv6 address the kernel wrote into `storage`.
fn socket_address(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let a =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
