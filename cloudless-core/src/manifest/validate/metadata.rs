//! `metadata`: name, namespace, labels, annotations.

use super::{dns_label, label_map};
use crate::manifest::Metadata;
use crate::manifest::decode::Report;
use crate::manifest::path::FieldPath;

/// Most bytes of all annotations together (they ride along in cluster state).
const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

pub(super) fn check(r: &mut Report<'_>, path: &FieldPath, m: &Metadata) {
    dns_label(r, &path.key("name"), &m.name);
    dns_label(r, &path.key("namespace"), &m.namespace);
    label_map(r, &path.key("labels"), &m.labels, true);
    label_map(r, &path.key("annotations"), &m.annotations, false);
    let total: usize = m.annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_ANNOTATION_BYTES {
        r.fail(
            &path.key("annotations"),
            format!("annotations total {total} bytes (the limit is {MAX_ANNOTATION_BYTES})"),
        );
    }
}
