//! core's Consensus conformance suite against 1- and 3-member raft clusters (on the leader).

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cloudless_core::testing::consensus::{ConformanceOptions, conformance, conformance_with};
use common::OnLeader;

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("the suite timed out: a watch stream probably lost a change")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_raft_conforms() {
    within(conformance(|| OnLeader::start(1, 1))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_member_raft_conforms() {
    within(conformance(|| OnLeader::start(3, 3))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_member_raft_with_a_small_history_reports_compaction() {
    let make = || OnLeader::start_with(3, 5, Arc::new(|c| c.with_retained_changes(32)));
    let options = ConformanceOptions {
        compacts_after: Some(40),
    };
    within(conformance_with(make, options)).await;
}
