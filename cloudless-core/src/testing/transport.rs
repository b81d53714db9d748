//! Conformance suite for the `transport` contract (being written).
