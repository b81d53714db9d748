//! # cloudless-store
//!
//! Placeholder crate in the Cloudless workspace; its default implementation arrives with its own
//! issue. It depends on `cloudless-core` only.
