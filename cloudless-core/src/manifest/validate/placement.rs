//! `spec.placement`: spread, selectors, node and workload affinity, tolerations.

use super::{dns_label, is_label_key, label_map};
use crate::manifest::decode::Report;
use crate::manifest::path::FieldPath;
use crate::workload::{MatchOperator, NodeMatch, Placement, TolerationOperator, WorkloadAffinity};

pub(super) fn check(r: &mut Report<'_>, p: &FieldPath, pl: &Placement) {
    if let Some(spread) = &pl.spread
        && spread.max_skew < 1
    {
        r.fail(&p.key("spread").key("maxSkew"), "must be at least 1");
    }
    label_map(r, &p.key("nodeSelector"), &pl.node_selector, true);
    let na = p.key("nodeAffinity");
    for (i, m) in pl.node_affinity.required.iter().enumerate() {
        node_match(r, &na.key("required").index(i), m);
    }
    for (i, pref) in pl.node_affinity.preferred.iter().enumerate() {
        let at = na.key("preferred").index(i);
        weight(r, &at, pref.weight);
        node_match(r, &at.key("match"), &pref.term);
    }
    workload_terms(r, &p.key("workloadAffinity"), &pl.workload_affinity);
    workload_terms(
        r,
        &p.key("workloadAntiAffinity"),
        &pl.workload_anti_affinity,
    );
    for (i, t) in pl.tolerations.iter().enumerate() {
        let at = p.key("tolerations").index(i);
        match t.operator {
            TolerationOperator::Exists if !t.value.is_empty() => {
                r.fail(&at.key("value"), "must be empty with operator Exists");
            }
            TolerationOperator::Equal if t.key.is_empty() => {
                r.fail(&at.key("key"), "required with operator Equal (use Exists with an empty key to tolerate everything)");
            }
            _ => {}
        }
        if !t.key.is_empty() && !is_label_key(&t.key) {
            r.fail(&at.key("key"), format!("invalid taint key {:?}", t.key));
        }
    }
}

fn weight(r: &mut Report<'_>, at: &FieldPath, w: u32) {
    if !(1..=100).contains(&w) {
        r.fail(
            &at.key("weight"),
            format!("{w} is out of range: must be 1..=100"),
        );
    }
}

fn node_match(r: &mut Report<'_>, at: &FieldPath, m: &NodeMatch) {
    if !is_label_key(&m.key) {
        r.fail(&at.key("key"), format!("invalid key {:?}", m.key));
    }
    match m.operator {
        MatchOperator::In | MatchOperator::NotIn if m.values.is_empty() => {
            r.fail(
                &at.key("values"),
                format!("operator {:?} needs at least one value", m.operator),
            );
        }
        MatchOperator::Exists | MatchOperator::DoesNotExist if !m.values.is_empty() => {
            r.fail(
                &at.key("values"),
                format!("must be empty with operator {:?}", m.operator),
            );
        }
        _ => {}
    }
}

fn workload_terms(r: &mut Report<'_>, p: &FieldPath, a: &WorkloadAffinity) {
    for (i, t) in a.required.iter().enumerate() {
        dns_label(r, &p.key("required").index(i).key("workload"), &t.workload);
    }
    for (i, pref) in a.preferred.iter().enumerate() {
        let at = p.key("preferred").index(i);
        weight(r, &at, pref.weight);
        dns_label(r, &at.key("match").key("workload"), &pref.term.workload);
    }
}
