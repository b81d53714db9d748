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
//!
//! # Example
//!
//! A single-member cluster on an in-memory network (a real deployment passes a
//! `QuicTransport` and lists three voters): start, initialize, propose, read, save a snapshot.
//!
//! ```rust
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use cloudless_core::consensus::Consensus;
//! use cloudless_core::event::{EventCategory, Severity};
//! use cloudless_core::ids::{NodeId, Revision};
//! use cloudless_core::state::{Command, CommandEnvelope};
//! use cloudless_core::transport::{PeerIdentity, Role, Transport};
//! use cloudless_net::mem::{MemNetwork, addr_of};
//! use cloudless_net::{Router, RpcConfig, RpcEndpoint};
//! use cloudless_store::{RaftConsensus, RaftConsensusConfig, RaftService, snapshot};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let net = MemNetwork::new(1);
//! let me = PeerIdentity { cluster: "home".into(), role: Role::Coordinator, node: NodeId(1) };
//! let transport: Arc<dyn Transport> = Arc::new(net.endpoint(me));
//!
//! // Raft traffic arrives as RPCs: the service's handlers go on the member's router.
//! let service = RaftService::new("home");
//! let mut router = Router::new();
//! service.register(&mut router);
//! let endpoint = RpcEndpoint::start(Arc::clone(&transport), router, RpcConfig::default())?;
//!
//! let config = RaftConsensusConfig::new(NodeId(1), "home", dir.path().join("raft"));
//! let raft = RaftConsensus::start(config, transport, endpoint.client(), &service).await?;
//! raft.initialize(BTreeMap::from([(NodeId(1), addr_of(NodeId(1)))])).await?;
//! while raft.status().await?.leader != Some(NodeId(1)) {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//!
//! let note = Command::RecordEvent {
//!     category: EventCategory::Membership,
//!     severity: Severity::Info,
//!     subject: "cluster/home".into(),
//!     reason: "Initialized".into(),
//!     message: "first coordinator".into(),
//! };
//! let applied = raft.propose(CommandEnvelope::new(1_000, note)).await?;
//! assert_eq!(raft.state().await?.revision, applied.revision);
//!
//! // A consistent copy of the state, for backups (`snapshot::restore` starts a new cluster from it).
//! let file = dir.path().join("backup.cldsnap");
//! let saved = snapshot::save_from(&raft, &file).await?;
//! assert_eq!(saved.revision, applied.revision);
//! assert_eq!(snapshot::read(&file)?.events.len(), 1);
//!
//! raft.shutdown().await;
//! # Ok(())
//! # }
//! ```

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
