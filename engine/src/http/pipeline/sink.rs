//! Where a policy writes header fields, whatever the protocol: [`HeaderSink`].
//!
//! Owns: the sink trait and its two implementations: an h2 `HeaderMap` (fields are removed,
//! replaced and appended in place) and an HTTP/1.1 head being written in one pass
//! ([`H1Fields`]: the writer has already skipped every field a policy `drops` while it copied the
//! message's own fields, so `remove` has nothing left to do, and new fields are appended as
//! `name: value` lines). Must not: decide which fields change (policies do), or allocate for an
//! HTTP/1.1 head (the output buffer is the caller's).

use http::{HeaderMap, HeaderName, HeaderValue};

/// A message's header fields as a policy edits them.
pub(crate) trait HeaderSink {
    /// Drops every field of that (lowercase) name.
    fn remove(&mut self, name: &str);
    /// Adds a field (after the message's own).
    fn append(&mut self, name: &str, value: &str);

    /// Replaces every field of that name with one.
    fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.append(name, value);
    }
}

impl HeaderSink for HeaderMap {
    fn remove(&mut self, name: &str) {
        HeaderMap::remove(self, name);
    }

    fn append(&mut self, name: &str, value: &str) {
        // Configured names and values were validated at load; a bad one is skipped, not a panic.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            HeaderMap::append(self, n, v);
        }
    }
}

/// The fields of an HTTP/1.1 head being written (see the module header).
pub(crate) struct H1Fields<'a>(pub &'a mut Vec<u8>);

impl HeaderSink for H1Fields<'_> {
    fn remove(&mut self, _name: &str) {}

    fn append(&mut self, name: &str, value: &str) {
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b": ");
        self.0.extend_from_slice(value.as_bytes());
        self.0.extend_from_slice(b"\r\n");
    }
}
