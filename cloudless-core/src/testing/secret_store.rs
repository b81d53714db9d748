//! Conformance suite for the `secret_store` contract (being written).
