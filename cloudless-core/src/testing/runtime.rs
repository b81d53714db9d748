//! Conformance suite for the `runtime` contract (being written).
