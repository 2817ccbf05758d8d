//! `request_filter`: a request that declares a body longer than the route's `max_body_size`
//! (or the listener's) is refused with 413 before any upstream is contacted. Bodies without a
//! declared length (chunked HTTP/1.1, h2 DATA) are counted against the same limit by the
//! exchange's legs as they stream ([`Pipeline::max_body`](super::super::Pipeline)).

use crate::http::fault::Fault;
use crate::http::pipeline::{Filter, Phases, RequestView};

pub(crate) struct BodyLimit(pub u64);

impl Phases for BodyLimit {
    fn name(&self) -> &'static str {
        "body_limit"
    }

    fn request_filter(&self, req: &dyn RequestView) -> Filter<'_> {
        match req.content_length() {
            Some(n) if n > self.0 => Filter::Refuse(Fault::BodyTooLarge),
            _ => Filter::Continue,
        }
    }
}
