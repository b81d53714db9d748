//! Conformance suite for the `consensus` contract (being written).
