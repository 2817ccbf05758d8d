//! `upstream_request_filter` and `response_filter`: a route's `request_headers` and
//! `response_headers` edits (remove, then set: replace every field of that name, then add),
//! written once for every protocol through [`HeaderSink`].

use crate::config::HeaderEdits;
use crate::http::pipeline::{HeaderPolicy, HeaderSink, Phases, RequestView};

pub(crate) struct HeaderEditsPolicy {
    pub request: HeaderEdits,
    pub response: HeaderEdits,
}

impl Phases for HeaderEditsPolicy {
    fn name(&self) -> &'static str {
        "header_edits"
    }

    fn drops_upstream(&self, name: &[u8]) -> bool {
        self.request.drops(name)
    }

    fn upstream_request_filter(&self, _req: &dyn RequestView, fields: &mut dyn HeaderSink) {
        self.request.write(fields);
    }

    fn edits_upstream(&self) -> bool {
        !self.request.is_empty()
    }

    fn drops_response(&self, name: &[u8]) -> bool {
        self.response.drops(name)
    }

    fn response_filter(&self, _status: u16, fields: &mut dyn HeaderSink) {
        self.response.write(fields);
    }
}

/// The edits' one implementation: what a set of edits does to a message's fields.
impl HeaderPolicy for HeaderEdits {
    fn drops(&self, name: &[u8]) -> bool {
        HeaderEdits::drops(self, name)
    }

    fn write(&self, fields: &mut dyn HeaderSink) {
        for name in &self.remove {
            fields.remove(name);
        }
        for (name, value) in &self.set {
            fields.set(name, value);
        }
        for (name, value) in &self.add {
            fields.append(name, value);
        }
    }
}
