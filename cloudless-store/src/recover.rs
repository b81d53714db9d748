//! Recovery after quorum loss: turn one surviving coordinator's data directory into the data of
//! a new single-member cluster, which then elects itself and can add members again.
//!
//! Offline (the member must not be running): the stored snapshot is replayed with every
//! committed log entry this member knows, the result becomes a new snapshot whose membership
//! is this member alone, and the log is emptied (purged up to the snapshot). Entries committed
//! by the old cluster but not known here as committed are lost — this is the operator's
//! explicit choice when a majority is gone for good.

use std::path::Path;

use cloudless_core::ids::{NodeId, Revision};
use cloudless_core::state::apply;
use openraft::storage::RaftLogStorage;
use openraft::{EntryPayload, RaftLogReader};

use crate::db::OpenError;
use crate::snapshot::write_single_member;
use crate::store::open_store;

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
    write_single_member(&store, state, last, id, address).map_err(RecoverError::Storage)?;
    Ok(revision)
}
