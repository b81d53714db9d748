//! `kind: Policy`: non-empty patterns, capability names, egress CIDRs or host names.

use std::net::IpAddr;

use super::is_dns_subdomain;
use crate::manifest::decode::Report;
use crate::manifest::path::FieldPath;
use crate::policy::{AllowDeny, PolicySpec};

pub(super) fn check(r: &mut Report<'_>, p: &FieldPath, s: &PolicySpec) {
    patterns(r, &p.key("images"), &s.images, |_| None);
    patterns(r, &p.key("registries"), &s.registries, |x| {
        let host = x.replace('*', "x");
        let host = host.split(':').next().unwrap_or("");
        (!is_dns_subdomain(&host.to_ascii_lowercase()))
            .then(|| format!("invalid registry {x:?}: expected a host name with an optional port"))
    });
    patterns(r, &p.key("capabilities"), &s.capabilities, |x| {
        let ok = x == "*"
            || x.chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit() || c == '*');
        (!ok)
            .then(|| format!("invalid capability pattern {x:?}: expected uppercase like NET_ADMIN"))
    });
    patterns(r, &p.key("egress"), &s.egress, egress_problem);
}

fn patterns(
    r: &mut Report<'_>,
    p: &FieldPath,
    ad: &AllowDeny,
    problem: impl Fn(&str) -> Option<String>,
) {
    for (list, name) in [(&ad.allow, "allow"), (&ad.deny, "deny")] {
        for (i, pat) in list.iter().enumerate() {
            let at = p.key(name).index(i);
            if pat.trim().is_empty() {
                r.fail(&at, "must not be empty");
            } else if pat.chars().any(char::is_whitespace) {
                r.fail(&at, format!("must not contain whitespace (got {pat:?})"));
            } else if let Some(why) = problem(pat) {
                r.fail(&at, why);
            }
        }
    }
}

/// An egress entry is `*`, a CIDR (`10.0.0.0/8`, `fd00::/8`), an IP, or a host name with an
/// optional leading `*.` wildcard.
fn egress_problem(x: &str) -> Option<String> {
    if x == "*" || x.parse::<IpAddr>().is_ok() {
        return None;
    }
    if let Some((ip, len)) = x.split_once('/') {
        let Ok(ip) = ip.parse::<IpAddr>() else {
            return Some(format!(
                "invalid CIDR {x:?}: the address is not an IP address"
            ));
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return match len.parse::<u8>() {
            Ok(n) if n <= max => None,
            _ => Some(format!(
                "invalid CIDR {x:?}: the prefix length must be 0..={max}"
            )),
        };
    }
    let host = x.strip_prefix("*.").unwrap_or(x);
    if is_dns_subdomain(host) {
        None
    } else {
        Some(format!(
            "invalid egress destination {x:?}: expected a CIDR like 10.0.0.0/8 or a host name"
        ))
    }
}
