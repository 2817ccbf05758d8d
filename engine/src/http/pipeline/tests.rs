//! The request phases on both protocol views: one policy list, the same decisions for an
//! HTTP/1.1 request and an h2 request.

use std::cell::RefCell;
use std::net::SocketAddr;

use http::HeaderMap;
use strait_protocols::http1::{Limits, RequestHead};

use super::*;
use crate::config::http::defaults;
use crate::config::{HeaderEdits, WeightedCluster};

const CLIENT: &str = "192.0.2.7:4000";

/// One request as both protocols deliver it; `f` sees each view in turn.
fn both_views(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    mut f: impl FnMut(&dyn RequestView),
) {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nhost: app.test\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let mut head = RequestHead::new();
    let parsed = head.parse(raw.as_bytes(), &Limits::DEFAULT);
    assert!(matches!(parsed, Ok(Some(_))), "{raw:?}: {parsed:?}");
    let client: SocketAddr = CLIENT.parse().expect("addr");
    f(&H1View {
        head: &head,
        buf: raw.as_bytes(),
        client,
        tls: false,
    });
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://app.test{path}"));
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let (parts, ()) = b.body(()).expect("request").into_parts();
    f(&H2View {
        parts: &parts,
        client,
        tls: true,
    });
}

fn route(action: RouteAction) -> RouteConfig {
    let mut r = defaults::catch_all_route(0);
    r.action = action;
    r
}

fn forward(clusters: &[(usize, u32)]) -> RouteAction {
    RouteAction::Forward(crate::config::ForwardAction {
        clusters: clusters
            .iter()
            .map(|&(cluster, weight)| WeightedCluster { cluster, weight })
            .collect(),
        rewrite: None,
    })
}

fn fixed(status: u16) -> RouteAction {
    RouteAction::Respond(FixedResponse {
        status,
        body: "moved".into(),
        content_type: "text/plain".into(),
        location: Some("/new".into()),
    })
}

fn edits(remove: &[&str], set: &[(&str, &str)], add: &[(&str, &str)]) -> HeaderEdits {
    let pairs = |l: &[(&str, &str)]| {
        l.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    HeaderEdits {
        remove: remove.iter().map(|n| n.to_string()).collect(),
        set: pairs(set),
        add: pairs(add),
    }
}

#[test]
fn routes_compile_to_their_policies_in_phase_order() {
    let listener = defaults::catch_all(0);
    let mut r = route(forward(&[(0, 1)]));
    assert_eq!(
        Pipeline::for_route(&r, &listener, 0).names(),
        ["body_limit", "cluster_choice"]
    );
    r.request_headers = edits(&["x-a"], &[], &[]);
    assert_eq!(
        Pipeline::for_route(&r, &listener, 0).names(),
        ["body_limit", "cluster_choice", "header_edits"]
    );
    let r = route(fixed(301));
    assert_eq!(
        Pipeline::for_route(&r, &listener, 0).names(),
        ["body_limit", "respond"]
    );
    assert_eq!(
        Pipeline::for_listener(&listener).names(),
        ["refuse_connect"]
    );
}

#[test]
fn request_filter_decides_alike_for_both_protocols() {
    let listener = defaults::catch_all(0);
    let mut r = route(forward(&[(3, 1)]));
    r.max_body_size = Some(10);
    let p = Pipeline::for_route(&r, &listener, 0);
    both_views("POST", "/up", &[("content-length", "11")], |v| {
        assert!(matches!(
            p.request_filter(v),
            Filter::Refuse(Fault::BodyTooLarge)
        ));
    });
    both_views("POST", "/up", &[("content-length", "10")], |v| {
        assert!(matches!(p.request_filter(v), Filter::Continue));
        assert_eq!(
            p.upstream_peer(v),
            Some(Peer {
                cluster: 3,
                hash: None
            })
        );
    });
    let redirect = Pipeline::for_route(&route(fixed(301)), &listener, 0);
    both_views("GET", "/old", &[], |v| {
        assert!(matches!(redirect.request_filter(v), Filter::Respond(f) if f.status == 301));
        assert_eq!(redirect.upstream_peer(v), None);
    });
    let l = Pipeline::for_listener(&listener);
    both_views("GET", "/", &[], |v| {
        assert!(matches!(l.request_filter(v), Filter::Continue));
    });
}

#[test]
fn a_weighted_split_follows_its_weights() {
    let listener = defaults::catch_all(0);
    let p = Pipeline::for_route(&route(forward(&[(0, 1), (1, 3)])), &listener, 0);
    let mut counts = [0usize; 2];
    both_views("GET", "/", &[], |v| {
        for _ in 0..400 {
            let peer = p.upstream_peer(v).expect("a cluster");
            counts[peer.cluster] += 1;
        }
    });
    assert_eq!(counts, [200, 600]);
}

/// The edits are one implementation: the HTTP/1.1 writer (skip what `drops`, then append) and
/// the h2 map (edited in place) end with the same fields.
#[test]
fn header_edits_give_the_same_fields_in_both_protocols() {
    let listener = defaults::catch_all(0);
    let mut r = route(forward(&[(0, 1)]));
    r.request_headers = edits(
        &["x-drop"],
        &[("x-set", "new")],
        &[("x-add", "1"), ("x-add", "2")],
    );
    let p = Pipeline::for_route(&r, &listener, 0);
    let incoming = [
        ("x-drop", "a"),
        ("x-set", "old"),
        ("x-keep", "k"),
        ("x-add", "0"),
    ];
    both_views("GET", "/", &[], |v| {
        let policy = p.upstream_fields(v);
        // HTTP/1.1: one pass over the incoming fields, then the policy's own.
        let mut h1 = Vec::new();
        for (n, val) in incoming {
            if !policy.drops(n.as_bytes()) {
                H1Fields(&mut h1).append(n, val);
            }
        }
        policy.write(&mut H1Fields(&mut h1));
        // h2: the map edited in place.
        let mut h2 = HeaderMap::new();
        for (n, val) in incoming {
            HeaderSink::append(&mut h2, n, val);
        }
        policy.write(&mut h2);
        let mut from_h2 = Vec::new();
        for (n, val) in &h2 {
            let v = val.to_str().expect("ascii");
            H1Fields(&mut from_h2).append(n.as_str(), v);
        }
        let sorted = |b: &[u8]| {
            let mut lines: Vec<String> = String::from_utf8_lossy(b)
                .lines()
                .map(str::to_string)
                .collect();
            lines.sort();
            lines
        };
        assert_eq!(sorted(&h1), sorted(&from_h2));
        assert_eq!(
            sorted(&h1),
            [
                "x-add: 0",
                "x-add: 1",
                "x-add: 2",
                "x-keep: k",
                "x-set: new"
            ]
        );
    });
}

/// A policy written against the trait: it implements two phases, the others default to
/// nothing, and the pipeline calls it in phase order.
#[test]
fn a_custom_policy_plugs_into_every_phase() {
    struct Probe(RefCell<Vec<String>>);
    impl Phases for Probe {
        fn name(&self) -> &'static str {
            "probe"
        }
        fn request_filter(&self, req: &dyn RequestView) -> Filter<'_> {
            self.0.borrow_mut().push(format!(
                "request_filter {} from {}",
                String::from_utf8_lossy(req.path()),
                req.client().ip()
            ));
            match req.header(b"x-deny") {
                Some(_) => Filter::Refuse(Fault::MethodNotAllowed),
                None => Filter::Continue,
            }
        }
        fn upstream_peer(&self, req: &dyn RequestView, peer: &mut Option<Peer>) {
            if let Some(p) = peer {
                p.hash = req.header(b"x-key").map(|k| k.len() as u64);
            }
        }
        fn logging(&self, status: u16, fault: Option<Fault>) {
            self.0
                .borrow_mut()
                .push(format!("logging {status} {:?}", fault.map(Fault::log_name)));
        }
    }
    let probe = Probe(RefCell::new(Vec::new()));
    let p = Pipeline::new(
        vec![
            Box::new(policies::ClusterChoice::new(
                &[WeightedCluster {
                    cluster: 2,
                    weight: 1,
                }],
                0,
            )),
            Box::new(probe),
        ],
        1,
    );
    both_views("GET", "/a?b", &[("x-key", "abc")], |v| {
        assert!(matches!(p.request_filter(v), Filter::Continue));
        assert_eq!(
            p.upstream_peer(v),
            Some(Peer {
                cluster: 2,
                hash: Some(3)
            })
        );
        p.logging(200, None);
    });
    both_views("GET", "/", &[("x-deny", "1")], |v| {
        assert!(matches!(
            p.request_filter(v),
            Filter::Refuse(Fault::MethodNotAllowed)
        ));
    });
    assert_eq!(p.names(), ["cluster_choice", "probe"]);
}
