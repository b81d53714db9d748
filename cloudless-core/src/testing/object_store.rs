//! Conformance suite for the `object_store` contract (being written).
