//! # cloudless-store
//!
//! The default [`Consensus`](cloudless_core::consensus::Consensus) of Cloudless: openraft 0.9
//! with durable redb storage, replicating core's cluster state machine
//! ([`cloudless_core::state`]) over the typed RPC layer of `cloudless-net`.
//!
//! ```text
//!  RaftConsensus::propose ──client_write──▶ openraft ──append (fsync)──▶ RedbLogStore
//!        ▲                                     │ replicate: RaftNetwork over RpcClient
//!        │ Applied                             ▼ commit
//!        └──────────────── RedbStateMachine::apply(core::state::apply) ──▶ Hub (state,
//!                                                 snapshots in redb          watch history)
//! ```
//!
//! See `docs/design/raft-consensus.md`.

// openraft's trait methods fix `StorageError` (224 bytes) and `ConfigError` as error types;
// our helpers return them unboxed so they pass straight through.
#![allow(clippy::result_large_err)]

mod batcher;
mod config;
mod consensus;
mod db;
mod history;
pub mod linearizability;
mod log_store;
mod network;
mod profile;
mod recover;
mod server;
pub mod snapshot;
mod state_machine;
mod store;
mod types;
mod wal;
mod writer;

pub use config::RaftConsensusConfig;
pub use consensus::{RaftConsensus, StartError};
pub use db::{DATA_FILE, OpenError, STORE_FORMAT_VERSION};
pub use log_store::RedbLogStore;
pub use network::{
    APPEND_ENTRIES, FORMAT_CBOR, INSTALL_SNAPSHOT, PeerClient, RpcNetworkFactory, VOTE,
};
pub use profile::{Compaction, DEFAULT_SNAPSHOT_LOG_BYTES, MAX_SNAPSHOT_CHUNK_BYTES, Timeouts};
pub use recover::{RecoverError, recover_as_single_member};
pub use server::RaftService;
pub use state_machine::{RedbStateMachine, SNAPSHOT_FORMAT_VERSION};
pub use store::{DEFAULT_RETAINED_CHANGES, OpenedStore, open_store};
pub use types::{
    ApplyResult, BatchResult, CodecError, CommandBatch, Entry, LogId, Raft, StorageError,
    StoredMembership, TypeConfig, decode, encode,
};

/// Generated protobuf types of the raft RPC (`proto/cloudless/v1/raft.proto`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/cloudless.raft.v1.rs"));
}
