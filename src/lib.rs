//! # Cloudless
//!
//! The facade crate: re-exports the building blocks. The `Fabric` builder arrives with the
//! control-plane work.

pub use cloudless_core as core;
