//! The protocol-neutral view of a request that every policy reads, implemented over HTTP/1.1
//! spans (the codec's parsed head and the connection's read buffer) and h2 fields
//! (`http::request::Parts`), so a policy is written once for HTTP/1.1, h2 and h2c clients.
//!
//! Owns: [`RequestView`] and its two implementations. Must not: copy or allocate (every method
//! borrows from the request as it arrived), or decode anything (paths are the bytes the client
//! sent; the route table and the upstream see the same bytes).

use std::net::SocketAddr;

use strait_protocols::http1::RequestHead;

/// What a policy may read of a request, whatever protocol it arrived in. The whole surface is
/// the policies' API; the built-in ones read only part of it so far (the client address and TLS
/// facts are for ACLs and rate limits), hence the allowance.
#[allow(dead_code)]
pub(crate) trait RequestView {
    /// The method token (`GET`, `POST`, an extension method...).
    fn method(&self) -> &[u8];
    /// `:authority`, else Host; `None` when the request has neither.
    fn authority(&self) -> Option<&[u8]>;
    /// The path and query as the client sent them (`/a/b?c=d`; `*` for `OPTIONS *`).
    fn path_and_query(&self) -> &[u8];
    /// The first field of that (lowercase) name.
    fn header(&self, name: &[u8]) -> Option<&[u8]>;
    /// The declared body length, when the request declares one.
    fn content_length(&self) -> Option<u64>;
    /// The client's address (the TCP peer; `X-Forwarded-For` is a header like any other).
    fn client(&self) -> SocketAddr;
    /// The request arrived over TLS (terminated by Strait).
    fn tls(&self) -> bool;

    /// The path without the query.
    fn path(&self) -> &[u8] {
        let pq = self.path_and_query();
        match pq.iter().position(|&b| b == b'?') {
            Some(i) => &pq[..i],
            None => pq,
        }
    }

    /// The query without its `?`, if there is one.
    fn query(&self) -> Option<&[u8]> {
        let pq = self.path_and_query();
        pq.iter().position(|&b| b == b'?').map(|i| &pq[i + 1..])
    }
}

/// An HTTP/1.1 request: the codec's spans over the connection's read buffer.
#[allow(dead_code)]
pub(crate) struct H1View<'a> {
    pub head: &'a RequestHead,
    pub buf: &'a [u8],
    pub client: SocketAddr,
    pub tls: bool,
}

impl RequestView for H1View<'_> {
    fn method(&self) -> &[u8] {
        self.head.method_bytes(self.buf)
    }

    fn authority(&self) -> Option<&[u8]> {
        self.head.authority(self.buf)
    }

    fn path_and_query(&self) -> &[u8] {
        self.head.path_and_query(self.buf)
    }

    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.head.headers().find(name, self.buf)
    }

    fn content_length(&self) -> Option<u64> {
        match self.head.framing() {
            strait_protocols::http1::RequestFraming::ContentLength(n) => Some(n),
            _ => None,
        }
    }

    fn client(&self) -> SocketAddr {
        self.client
    }

    fn tls(&self) -> bool {
        self.tls
    }
}

/// An h2 request: its pseudo-header fields and fields as the `h2` crate parsed them.
#[allow(dead_code)]
pub(crate) struct H2View<'a> {
    pub parts: &'a http::request::Parts,
    pub client: SocketAddr,
    pub tls: bool,
}

impl RequestView for H2View<'_> {
    fn method(&self) -> &[u8] {
        self.parts.method.as_str().as_bytes()
    }

    fn authority(&self) -> Option<&[u8]> {
        self.parts
            .uri
            .authority()
            .map(|a| a.as_str().as_bytes())
            .or_else(|| {
                self.parts
                    .headers
                    .get(http::header::HOST)
                    .map(|v| v.as_bytes())
            })
    }

    fn path_and_query(&self) -> &[u8] {
        self.parts
            .uri
            .path_and_query()
            .map_or(b"/", |p| p.as_str().as_bytes())
    }

    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        let name = std::str::from_utf8(name).ok()?;
        self.parts.headers.get(name).map(|v| v.as_bytes())
    }

    fn content_length(&self) -> Option<u64> {
        self.parts
            .headers
            .get(http::header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    fn client(&self) -> SocketAddr {
        self.client
    }

    fn tls(&self) -> bool {
        self.tls
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_protocols::http1::Limits;

    /// The same request through both views reads the same.
    #[test]
    fn both_views_agree() {
        let raw = b"POST /a/b?c=d HTTP/1.1\r\nHost: example.test\r\nX-Key: k1\r\nContent-Length: 3\r\n\r\n";
        let mut head = RequestHead::new();
        assert!(head.parse(raw, &Limits::DEFAULT).expect("parse").is_some());
        let client: SocketAddr = "192.0.2.7:4000".parse().expect("addr");
        let h1 = H1View {
            head: &head,
            buf: raw,
            client,
            tls: false,
        };
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri("http://example.test/a/b?c=d")
            .header("x-key", "k1")
            .header("content-length", "3")
            .body(())
            .expect("request")
            .into_parts();
        let h2 = H2View {
            parts: &parts,
            client,
            tls: false,
        };
        let views: [&dyn RequestView; 2] = [&h1, &h2];
        for v in views {
            assert_eq!(v.method(), b"POST");
            assert_eq!(v.authority(), Some(&b"example.test"[..]));
            assert_eq!(v.path_and_query(), b"/a/b?c=d");
            assert_eq!(v.path(), b"/a/b");
            assert_eq!(v.query(), Some(&b"c=d"[..]));
            assert_eq!(v.header(b"x-key"), Some(&b"k1"[..]));
            assert_eq!(v.header(b"x-missing"), None);
            assert_eq!(v.content_length(), Some(3));
            assert_eq!(v.client(), client);
        }
    }
}
