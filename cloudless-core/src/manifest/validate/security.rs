//! `spec.security`: user, capabilities, seccomp, AppArmor, runtime class.

use super::dns_label;
use crate::manifest::decode::Report;
use crate::manifest::path::FieldPath;
use crate::workload::{ProfileKind, SecurityContext};

pub(super) fn check(r: &mut Report<'_>, p: &FieldPath, s: &SecurityContext) {
    if s.run_as_non_root && s.run_as_user == Some(0) {
        r.fail(
            &p.key("runAsUser"),
            "0 (root) contradicts runAsNonRoot: true",
        );
    }
    let cp = p.key("capabilities");
    let caps = &s.capabilities;
    for (list, name) in [(&caps.add, "add"), (&caps.drop, "drop")] {
        for (i, cap) in list.iter().enumerate() {
            if !is_capability(cap) {
                r.fail(&cp.key(name).index(i), format!("invalid capability {cap:?}: expected uppercase like NET_BIND_SERVICE (CAP_ prefix optional)"));
            }
        }
    }
    if caps.add.iter().any(|c| bare(c) == "ALL") {
        let i = caps.add.iter().position(|c| bare(c) == "ALL").unwrap_or(0);
        r.fail(
            &cp.key("add").index(i),
            "adding ALL capabilities is not allowed; name each one",
        );
    }
    for (i, cap) in caps.add.iter().enumerate() {
        if caps.drop.iter().any(|d| bare(d) == bare(cap)) {
            r.fail(
                &cp.key("add").index(i),
                format!("{cap} is both added and dropped"),
            );
        }
    }
    profile(
        r,
        &p.key("seccompProfile"),
        s.seccomp_profile.kind,
        s.seccomp_profile.localhost_profile.as_deref(),
    );
    profile(
        r,
        &p.key("apparmorProfile"),
        s.apparmor_profile.kind,
        s.apparmor_profile.localhost_profile.as_deref(),
    );
    if let Some(rc) = &s.runtime_class {
        dns_label(r, &p.key("runtimeClass"), rc);
    }
}

fn bare(cap: &str) -> &str {
    cap.strip_prefix("CAP_").unwrap_or(cap)
}

fn is_capability(cap: &str) -> bool {
    let b = bare(cap);
    !b.is_empty()
        && b.chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        && b.starts_with(|c: char| c.is_ascii_uppercase())
}

fn profile(r: &mut Report<'_>, p: &FieldPath, kind: ProfileKind, local: Option<&str>) {
    match (kind, local) {
        (ProfileKind::Localhost, None) => {
            r.fail(
                &p.key("localhostProfile"),
                "required when type is localhost",
            );
        }
        (ProfileKind::Localhost, Some(name)) => {
            let ok = !name.is_empty()
                && !name.starts_with('/')
                && !name.split('/').any(|s| s == ".." || s.is_empty())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
            if !ok {
                r.fail(&p.key("localhostProfile"), format!("invalid profile name {name:?}: a relative path of letters, digits, '.', '_', '-'"));
            }
        }
        (_, Some(_)) => r.fail(
            &p.key("localhostProfile"),
            "only allowed when type is localhost",
        ),
        (_, None) => {}
    }
}
