//! Reference in-memory implementations and public conformance suites (feature `testing`).
//!
//! A vendor's implementation of a building block runs the matching suite in its own tests:
//!
//! ```
//! use std::sync::Arc;
//! use cloudless_core::clock::ManualClock;
//! use cloudless_core::testing::mem_object_store::MemObjectStore;
//!
//! // A vendor's store runs the same suite the reference store passes.
//! futures::executor::block_on(cloudless_core::testing::object_store::conformance(|| {
//!     MemObjectStore::new(Arc::new(ManualClock::new(0)))
//! }));
//! ```
//!
//! The in-memory implementations here are for tests and simulations only; nothing outside tests
//! defaults to them (DESIGN §8, Persistence).

pub mod consensus;
pub mod mem_object_store;
pub mod mem_secret_store;
pub mod object_store;
pub mod runtime;
pub mod secret_store;
pub mod transport;

mod check;
mod mem_secret_seal;
mod runtime_checks;

pub use mem_object_store::MemObjectStore;
pub use mem_secret_store::MemSecretStore;
