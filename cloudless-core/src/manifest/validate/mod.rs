//! Semantic checks: everything serde's types cannot say (ranges, names, references,
//! contradictions). Every check records its error and carries on, so a user sees all problems
//! of a document at once.

mod bucket;
mod metadata;
mod placement;
mod policy;
mod probe;
mod secret;
mod security;
mod service;
mod workload;

use std::collections::BTreeMap;

use super::decode::Report;
use super::error::ManifestError;
use super::path::FieldPath;
use super::tree::Node;
use super::{Manifest, ManifestSpec};
use crate::ids::validate_dns_label;

/// Runs every check for `m`, recording problems in `report`.
pub(crate) fn check(m: &Manifest, report: &mut Report<'_>) {
    let root = FieldPath::root();
    metadata::check(report, &root.key("metadata"), &m.metadata);
    let spec = root.key("spec");
    match &m.spec {
        ManifestSpec::Workload(s) => workload::check(report, &spec, s),
        ManifestSpec::Service(s) => service::check(report, &spec, s),
        ManifestSpec::Bucket(s) => bucket::check(report, &spec, s),
        ManifestSpec::Secret(s) => secret::check(report, &spec, s),
        ManifestSpec::Policy(s) => policy::check(report, &spec, s),
    }
}

/// Runs every check for `m` outside a parse (no tree, so no lines).
pub(crate) fn manifest(m: &Manifest, document: usize, root: Option<&Node>) -> Vec<ManifestError> {
    let mut report = Report {
        document,
        root,
        errors: Vec::new(),
    };
    check(m, &mut report);
    report.errors
}

/// A DNS-1123 label (names of objects, ports, volumes, ...).
pub(crate) fn dns_label(r: &mut Report<'_>, path: &FieldPath, s: &str) {
    if let Err(e) = validate_dns_label(s) {
        r.fail(path, format!("invalid name: {e}"));
    }
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| validate_dns_label(l).is_ok())
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters (label names and values).
fn is_label_word(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    s.len() <= 63
        && s.chars().all(ok)
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

/// A label or annotation key: `[prefix/]name` with a DNS-subdomain prefix (Kubernetes rules).
pub(crate) fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_word(name),
        None => is_label_word(s),
    }
}

/// Checks keys (and, when `values_too`, values) of a label-like map.
pub(crate) fn label_map(
    r: &mut Report<'_>,
    path: &FieldPath,
    map: &BTreeMap<String, String>,
    values_too: bool,
) {
    for (k, v) in map {
        let at = path.key(k);
        if !is_label_key(k) {
            r.fail(&at, format!("invalid key {k:?}: expected [prefix/]name, name of letters, digits, '-', '_' or '.' (at most 63), starting and ending with a letter or digit"));
        }
        if values_too && !v.is_empty() && !is_label_word(v) {
            r.fail(&at, format!("invalid value {v:?}: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"));
        }
    }
}

/// An absolute, normal path: starts with `/`, no `..` segments, no NUL.
pub(crate) fn absolute_path(r: &mut Report<'_>, path: &FieldPath, s: &str) {
    if !s.starts_with('/') {
        r.fail(path, format!("must be an absolute path (got {s:?})"));
    } else if s.split('/').any(|seg| seg == "..") || s.contains('\0') {
        r.fail(
            path,
            format!("must not contain '..' segments or NUL (got {s:?})"),
        );
    }
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reports every item whose key was already seen, at the later item.
pub(crate) fn unique<'a>(
    r: &mut Report<'_>,
    items: impl IntoIterator<Item = (FieldPath, &'a str)>,
    what: &str,
) {
    let mut seen = std::collections::BTreeSet::new();
    for (path, key) in items {
        if !seen.insert(key) {
            r.fail(&path, format!("duplicate {what} {key:?}"));
        }
    }
}
