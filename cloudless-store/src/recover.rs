//! Recovery after quorum loss: turn one surviving coordinator's data directory into the data of
//! a new single-member cluster, which then elects itself and can add members again.
//!
//! Offline (the member must not be running): the stored snapshot is replayed with every
//! committed log entry this member knows, the result becomes a new snapshot whose membership
//! is this member alone, and the log is emptied (purged up to the snapshot). Entries committed
//! by the old cluster but not known here as committed are lost — this is the operator's
//! explicit choice when a majority is gone for good.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cloudless_core::ids::{NodeId, Revision};
use cloudless_core::state::apply;
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, EntryPayload, Membership, RaftLogReader, SnapshotMeta, Vote};

use crate::db::{
    KEY_COMMITTED, KEY_PURGED, KEY_SNAPSHOT, KEY_VOTE, LOG, META, OpenError, SNAPSHOT,
};
use crate::state_machine::{SNAPSHOT_FORMAT_VERSION, SnapshotBody, StoredSnapshot};
use crate::store::open_store;
use crate::types::{StoredMembership, encode};

/// Why a data directory could not be recovered.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The data directory could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Reading or rewriting the data failed; the directory may be left unchanged or
    /// recovered, never half-written (one transaction).
    #[error("recovery failed: {0}")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> RecoverError {
    RecoverError::Storage(e.to_string())
}

/// Rewrites the data in `dir` as a single-member cluster of `id` reachable at `address`.
/// Returns the recovered revision.
pub async fn recover_as_single_member(
    dir: &Path,
    id: NodeId,
    address: String,
) -> Result<Revision, RecoverError> {
    let mut store = open_store(dir, 1)?;
    let (mut state, mut last) = {
        let a = store.hub.lock();
        ((*a.state).clone(), a.extra.last_applied)
    };
    let committed = store.log.read_committed().await.map_err(storage)?;
    if let Some(committed) = committed {
        let from = last.map_or(0, |l| l.index + 1);
        let entries = store
            .log
            .try_get_log_entries(from..=committed.index)
            .await
            .map_err(storage)?;
        for entry in entries {
            if let EntryPayload::Normal(batch) = &entry.payload {
                for command in batch {
                    // A rejection changes nothing, exactly as when it was first applied.
                    drop(apply(&mut state, command));
                }
            }
            last = Some(entry.log_id);
        }
    }
    let Some(last) = last else {
        return Err(RecoverError::Storage(
            "nothing was ever applied here; start a fresh cluster instead".into(),
        ));
    };
    let revision = state.revision;
    let membership = Membership::new(
        vec![BTreeSet::from([id.0])],
        BTreeMap::from([(id.0, BasicNode::new(address))]),
    );
    let data = encode(&SnapshotBody {
        format: SNAPSHOT_FORMAT_VERSION,
        state,
    })
    .map_err(storage)?;
    let snapshot = StoredSnapshot {
        meta: SnapshotMeta {
            last_log_id: Some(last),
            last_membership: StoredMembership::new(Some(last), membership),
            snapshot_id: format!("recovered-{}-{}", last.leader_id, last.index),
        },
        data,
    };
    let snapshot = encode(&snapshot).map_err(storage)?;
    let purged = encode(&last).map_err(storage)?;
    let committed = encode(&Some(last)).map_err(storage)?;
    let vote = encode(&Vote::new(last.leader_id.term, id.0)).map_err(storage)?;
    let db = store.state_machine.db();
    let txn = db.begin_write().map_err(storage)?;
    {
        let mut log = txn.open_table(LOG).map_err(storage)?;
        log.retain_in(0u64.., |_, _| false).map_err(storage)?;
        let mut meta = txn.open_table(META).map_err(storage)?;
        meta.insert(KEY_PURGED, purged.as_slice())
            .map_err(storage)?;
        meta.insert(KEY_COMMITTED, committed.as_slice())
            .map_err(storage)?;
        meta.insert(KEY_VOTE, vote.as_slice()).map_err(storage)?;
        let mut snap = txn.open_table(SNAPSHOT).map_err(storage)?;
        snap.insert(KEY_SNAPSHOT, snapshot.as_slice())
            .map_err(storage)?;
    }
    txn.commit().map_err(storage)?;
    Ok(revision)
}
