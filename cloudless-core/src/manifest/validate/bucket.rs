//! `kind: Bucket`: replication factor and erasure coding.

use crate::manifest::decode::Report;
use crate::manifest::path::FieldPath;
use crate::storage::BucketSpec;

/// Most copies a bucket may keep.
const MAX_REPLICATION: u32 = 7;
/// Most shards (data + parity) an erasure-coded stripe may have.
const MAX_SHARDS: u32 = 32;

pub(super) fn check(r: &mut Report<'_>, p: &FieldPath, s: &BucketSpec) {
    if !(1..=MAX_REPLICATION).contains(&s.replication) {
        r.fail(
            &p.key("replication"),
            format!(
                "{} is out of range: must be 1..={MAX_REPLICATION}",
                s.replication
            ),
        );
    }
    if let Some(ec) = &s.erasure_coding {
        let ep = p.key("erasureCoding");
        if ec.data_shards < 2 {
            r.fail(&ep.key("dataShards"), "must be at least 2");
        }
        if ec.parity_shards < 1 {
            r.fail(&ep.key("parityShards"), "must be at least 1");
        }
        if ec.data_shards.saturating_add(ec.parity_shards) > MAX_SHARDS {
            r.fail(
                &ep,
                format!("dataShards + parityShards must be at most {MAX_SHARDS}"),
            );
        }
    }
    if s.quota.is_some_and(|q| q.gib() == 0) {
        r.fail(&p.key("quota"), "must be greater than zero");
    }
}
