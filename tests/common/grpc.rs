//! gRPC test helpers without protoc: hand-written prost messages, a tonic server whose service is
//! written by hand on `tonic::server::Grpc` (what tonic-build would generate), and clients on
//! `tonic::client::Grpc`, over a tonic `Channel` or over a bare hyper HTTP/2 connection (which,
//! unlike a `Channel`, does not enforce `grpc-timeout` itself, so the proxy's deadline can be
//! observed).
//!
//! Service `strait.test.Echo`:
//! - `Unary(EchoRequest) -> EchoReply`: echoes `message`; sleeps `sleep_ms` first; fails with
//!   `Status::new(code, message)` when `code` is not 0.
//! - `ServerStream(EchoRequest) -> stream EchoReply`: `count` replies `"<message> <i>"`.
//! - `ClientStream(stream EchoRequest) -> EchoReply`: the messages joined by `,`, `seq` = count.
//! - `Bidi(stream EchoRequest) -> stream EchoReply`: one reply `"pong <message>"` per message, as
//!   soon as it arrives.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, BoxStream, Service};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

pub const SERVICE: &str = "strait.test.Echo";

#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    #[prost(string, tag = "1")]
    pub message: String,
    #[prost(uint32, tag = "2")]
    pub count: u32,
    #[prost(uint64, tag = "3")]
    pub sleep_ms: u64,
    #[prost(int32, tag = "4")]
    pub code: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoReply {
    #[prost(string, tag = "1")]
    pub message: String,
    #[prost(uint32, tag = "2")]
    pub seq: u32,
}

pub fn echo_request(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_string(),
        ..EchoRequest::default()
    }
}

pub fn path(method: &str) -> PathAndQuery {
    PathAndQuery::try_from(format!("/{SERVICE}/{method}")).expect("path")
}

// ---------------------------------------------------------------------------------------------
// The server.

struct Unary;

impl tonic::server::UnaryService<EchoRequest> for Unary {
    type Response = EchoReply;
    type Future = BoxFuture<Response<EchoReply>, Status>;

    fn call(&mut self, request: Request<EchoRequest>) -> Self::Future {
        Box::pin(async move {
            let r = request.into_inner();
            if r.sleep_ms > 0 {
                tokio::time::sleep(Duration::from_millis(r.sleep_ms)).await;
            }
            if r.code != 0 {
                return Err(Status::new(Code::from_i32(r.code), r.message));
            }
            Ok(Response::new(EchoReply {
                message: r.message,
                seq: 0,
            }))
        })
    }
}

struct ServerStream;

impl tonic::server::ServerStreamingService<EchoRequest> for ServerStream {
    type Response = EchoReply;
    type ResponseStream = BoxStream<EchoReply>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<EchoRequest>) -> Self::Future {
        Box::pin(async move {
            let r = request.into_inner();
            let items: Vec<Result<EchoReply, Status>> = (0..r.count)
                .map(|i| {
                    Ok(EchoReply {
                        message: format!("{} {i}", r.message),
                        seq: i,
                    })
                })
                .collect();
            let stream: Self::ResponseStream = Box::pin(tokio_stream::iter(items));
            Ok(Response::new(stream))
        })
    }
}

struct ClientStream;

impl tonic::server::ClientStreamingService<EchoRequest> for ClientStream {
    type Response = EchoReply;
    type Future = BoxFuture<Response<EchoReply>, Status>;

    fn call(&mut self, request: Request<Streaming<EchoRequest>>) -> Self::Future {
        Box::pin(async move {
            let mut stream = request.into_inner();
            let mut parts = Vec::new();
            while let Some(m) = stream.message().await? {
                parts.push(m.message);
            }
            Ok(Response::new(EchoReply {
                seq: parts.len() as u32,
                message: parts.join(","),
            }))
        })
    }
}

struct Bidi;

impl tonic::server::StreamingService<EchoRequest> for Bidi {
    type Response = EchoReply;
    type ResponseStream = BoxStream<EchoReply>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<EchoRequest>>) -> Self::Future {
        Box::pin(async move {
            let mut incoming = request.into_inner();
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(async move {
                let mut seq = 0;
                loop {
                    match incoming.message().await {
                        Ok(Some(m)) => {
                            let reply = EchoReply {
                                message: format!("pong {}", m.message),
                                seq,
                            };
                            seq += 1;
                            if tx.send(Ok(reply)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => return,
                        Err(status) => {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                    }
                }
            });
            let stream: Self::ResponseStream =
                Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
            Ok(Response::new(stream))
        })
    }
}

/// The service: dispatches on the path as generated code would.
#[derive(Clone, Default)]
pub struct EchoService {
    calls: Arc<AtomicUsize>,
}

impl Service<http::Request<Body>> for EchoService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let method = req
            .uri()
            .path()
            .strip_prefix(&format!("/{SERVICE}/"))
            .map(str::to_string);
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<EchoReply, EchoRequest>::default());
            let resp = match method.as_deref() {
                Some("Unary") => grpc.unary(Unary, req).await,
                Some("ServerStream") => grpc.server_streaming(ServerStream, req).await,
                Some("ClientStream") => grpc.client_streaming(ClientStream, req).await,
                Some("Bidi") => grpc.streaming(Bidi, req).await,
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(resp)
        })
    }
}

/// A tonic server on 127.0.0.1 running [`EchoService`] on its own thread.
pub struct GrpcOrigin {
    pub addr: SocketAddr,
    calls: Arc<AtomicUsize>,
}

impl GrpcOrigin {
    pub fn start() -> GrpcOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("grpc origin bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let service = EchoService::default();
        let calls = service.calls.clone();
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("grpc runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                if let Err(e) = tonic::transport::Server::builder()
                    .serve_with_incoming(service, incoming)
                    .await
                {
                    eprintln!("grpc origin {addr}: {e}");
                }
            });
        });
        GrpcOrigin { addr, calls }
    }

    /// Calls the origin's service received.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// Clients.

/// The request codec of a client.
pub fn codec() -> ProstCodec<EchoRequest, EchoReply> {
    ProstCodec::default()
}

/// A tonic client over a `Channel` to `addr` (h2c with prior knowledge).
pub async fn channel_client(addr: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("gRPC channel to {addr}: {e}"));
    tonic::client::Grpc::new(channel)
}

/// A bare hyper HTTP/2 connection as a gRPC transport: no client-side `grpc-timeout`
/// enforcement, so a deadline error can only come from the other side.
#[derive(Clone)]
pub struct BareH2 {
    send: hyper::client::conn::http2::SendRequest<Body>,
}

impl Service<http::Request<Body>> for BareH2 {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = BoxFuture<Self::Response, hyper::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let fut = self.send.send_request(req);
        Box::pin(fut)
    }
}

pub async fn bare_client(addr: SocketAddr) -> tonic::client::Grpc<BareH2> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = tcp.set_nodelay(true);
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("hyper h2 handshake");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("bare h2 connection: {e}");
        }
    });
    let origin: http::Uri = format!("http://{addr}").parse().expect("origin");
    tonic::client::Grpc::with_origin(BareH2 { send }, origin)
}

/// A unary call on any transport.
pub async fn unary<T>(
    client: &mut tonic::client::Grpc<T>,
    request: Request<EchoRequest>,
) -> Result<Response<EchoReply>, Status>
where
    T: tonic::client::GrpcService<Body>,
    T::ResponseBody: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError>,
{
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {}", e.into())))?;
    client.unary(request, path("Unary"), codec()).await
}
