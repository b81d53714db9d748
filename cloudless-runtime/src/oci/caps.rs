//! The default capability set and how a workload's `add`/`drop` change it.
//!
//! The default keeps what ordinary servers need and nothing that reaches the host: file ownership
//! changes inside the container (`CHOWN`, `DAC_OVERRIDE`, `FOWNER`, `FSETID`), signalling its own
//! processes (`KILL`), dropping to another user (`SETUID`, `SETGID`, `SETPCAP`) and binding ports
//! below 1024 (`NET_BIND_SERVICE`). Docker's default adds `MKNOD`, `NET_RAW`, `SYS_CHROOT`,
//! `AUDIT_WRITE`, `SETFCAP`; Cloudless leaves those out (`NET_RAW` allows packet spoofing on the
//! bridge; the others are rarely needed) and a workload adds them explicitly.

use std::collections::BTreeSet;
use std::str::FromStr;

use oci_spec::runtime::Capability;

/// The default set, by name.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "NET_BIND_SERVICE",
];

/// Normalizes a capability name: upper case, without the `CAP_` prefix.
fn normalize(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    upper.strip_prefix("CAP_").unwrap_or(&upper).to_owned()
}

/// The effective set: the default, minus `drop` (`ALL` drops everything), plus `add`. An unknown
/// name is an error naming it.
pub fn effective_set(add: &[String], drop: &[String]) -> Result<BTreeSet<String>, String> {
    let mut set: BTreeSet<String> = DEFAULT_CAPABILITIES
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    for name in drop {
        let name = normalize(name);
        if name == "ALL" {
            set.clear();
        } else {
            Capability::from_str(&name).map_err(|_| name.clone())?;
            set.remove(&name);
        }
    }
    for name in add {
        let name = normalize(name);
        Capability::from_str(&name).map_err(|_| name.clone())?;
        set.insert(name);
    }
    Ok(set)
}

/// The OCI capabilities for names from [`effective_set`].
pub fn to_oci(set: &BTreeSet<String>) -> oci_spec::runtime::Capabilities {
    set.iter()
        .filter_map(|name| Capability::from_str(name).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn default_set_is_small_and_excludes_host_reaching_caps() {
        let set = effective_set(&[], &[]).expect("default");
        assert_eq!(set.len(), DEFAULT_CAPABILITIES.len());
        for bad in [
            "SYS_ADMIN",
            "NET_ADMIN",
            "NET_RAW",
            "SYS_PTRACE",
            "SYS_MODULE",
            "MKNOD",
        ] {
            assert!(!set.contains(bad), "{bad}");
        }
    }

    #[test]
    fn drop_all_then_add() {
        let set = effective_set(&s(&["cap_net_raw"]), &s(&["ALL"])).expect("set");
        assert_eq!(set.into_iter().collect::<Vec<_>>(), vec!["NET_RAW"]);
    }

    #[test]
    fn drop_one() {
        let set = effective_set(&[], &s(&["CAP_CHOWN"])).expect("set");
        assert!(!set.contains("CHOWN"));
        assert!(set.contains("KILL"));
    }

    #[test]
    fn unknown_names_are_refused() {
        assert_eq!(effective_set(&s(&["FLY"]), &[]), Err("FLY".to_owned()));
        assert_eq!(
            effective_set(&[], &s(&["cap_nope"])),
            Err("NOPE".to_owned())
        );
    }

    #[test]
    fn converts_every_name() {
        let set = effective_set(&[], &[]).expect("default");
        assert_eq!(to_oci(&set).len(), set.len());
    }
}
