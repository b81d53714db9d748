//! openraft's storage conformance suite against the redb store, on real files in a temp dir.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use cloudless_store::{
    DEFAULT_RETAINED_CHANGES, RedbLogStore, RedbStateMachine, TypeConfig, open_store,
};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageError, StorageIOError};
use tempfile::TempDir;

struct RedbBuilder;

impl StoreBuilder<TypeConfig, RedbLogStore, RedbStateMachine, TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(TempDir, RedbLogStore, RedbStateMachine), StorageError<u64>> {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        let store = open_store(dir.path(), DEFAULT_RETAINED_CHANGES)
            .map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        Ok((dir, store.log, store.state_machine))
    }
}

#[test]
fn redb_store_passes_the_openraft_suite() {
    Suite::test_all(RedbBuilder).unwrap();
}
