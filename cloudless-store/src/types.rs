//! The openraft type configuration and the one encoding used on disk and on the wire.

use std::io::Cursor;

use cloudless_core::state::{Applied, ApplyError, CommandEnvelope};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a committed command produced: `apply`'s result, carried back to the proposer.
pub type ApplyResult = Result<Applied, ApplyError>;

/// Commands committed together in one log entry: the leader batches concurrent proposals, so
/// one append and one fsync carry many. Applied in order, each with its own revision.
pub type CommandBatch = Vec<CommandEnvelope>;

/// The results of a [`CommandBatch`], in order.
pub type BatchResult = Vec<ApplyResult>;

openraft::declare_raft_types!(
    /// The raft types of the cloudless metadata store: log entries carry a [`CommandBatch`],
    /// responses a [`BatchResult`], node ids are `NodeId.0`, and a node's address is an RPC
    /// transport address.
    pub TypeConfig:
        D = CommandBatch,
        R = BatchResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The raft handle of this store.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<u64>;
/// A storage error as openraft wants it.
pub type StorageError = openraft::StorageError<u64>;
/// Membership as stored in the log and state machine.
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

/// Encodes `value` as CBOR. CBOR (not JSON) because cluster state has maps with tuple keys,
/// and it is compact and self-describing, so serde's tagged enums round-trip.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| CodecError(e.to_string()))?;
    Ok(out)
}

/// Decodes CBOR written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    ciborium::from_reader(bytes).map_err(|e| CodecError(e.to_string()))
}
