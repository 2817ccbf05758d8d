//! The built-in request-phase policies, one file each. A route's list is compiled in
//! [`Pipeline::for_route`](super::Pipeline::for_route), the listener's in
//! [`Pipeline::for_listener`](super::Pipeline::for_listener).

mod body_limit;
mod cluster_choice;
mod header_edits;
mod refuse_connect;
mod respond;

pub(crate) use body_limit::BodyLimit;
pub(crate) use cluster_choice::ClusterChoice;
pub(crate) use header_edits::HeaderEditsPolicy;
pub(crate) use refuse_connect::RefuseConnect;
pub(crate) use respond::Respond;
