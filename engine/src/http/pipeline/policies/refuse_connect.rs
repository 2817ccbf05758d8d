//! `request_filter`: CONNECT is refused (405) on every HTTP listener, before routing: Strait is
//! a reverse proxy, not a forward proxy or a tunnel (RFC 9110 §9.3.6).

use crate::http::fault::Fault;
use crate::http::pipeline::{Filter, Phases, RequestView};

pub(crate) struct RefuseConnect;

impl Phases for RefuseConnect {
    fn name(&self) -> &'static str {
        "refuse_connect"
    }

    fn request_filter(&self, req: &dyn RequestView) -> Filter<'_> {
        if req.method() == b"CONNECT" {
            Filter::Refuse(Fault::MethodNotAllowed)
        } else {
            Filter::Continue
        }
    }
}
