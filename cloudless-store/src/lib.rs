//! cloudless-store.
