//! `request_filter`: a route with a fixed response (a health page, a redirect) answers every
//! request itself; the route's `response_headers` edits apply to it like to any response.

use crate::config::FixedResponse;
use crate::http::pipeline::{Filter, Phases, RequestView};

pub(crate) struct Respond(pub FixedResponse);

impl Phases for Respond {
    fn name(&self) -> &'static str {
        "respond"
    }

    fn request_filter(&self, _req: &dyn RequestView) -> Filter<'_> {
        Filter::Respond(&self.0)
    }
}
