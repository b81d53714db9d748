//! Cloudless's default seccomp profile, in OCI form.
//!
//! An allow-list: every syscall not named here fails with `EPERM`. The list holds what ordinary
//! programs (libc, language runtimes, shells, servers) use. Left out on purpose, because they
//! reach kernel state shared with the host or widen the attack surface for no workload benefit:
//! module loading (`init_module`, `finit_module`, `delete_module`), `kexec_*`, `reboot`,
//! `mount`/`umount2`/`pivot_root`/`fsopen`/`move_mount` and friends, `unshare`/`setns` (new
//! namespaces, including unprivileged user namespaces), `bpf`, `perf_event_open`, `ptrace` and
//! `process_vm_*`, `keyctl`/`add_key`/`request_key`, `swapon`/`swapoff`, clock and time setting,
//! `acct`, `quotactl`, `open_by_handle_at`, `userfaultfd`, `syslog`, `iopl`/`ioperm`, NUMA policy
//! calls and obsolete ones (`uselib`, `vm86`, `nfsservctl`...).
//!
//! `clone` is allowed only without namespace flags (a masked compare on its flags argument), and
//! `clone3` answers `ENOSYS` so libc falls back to `clone`, whose flags the filter can inspect.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompOperator,
    LinuxSyscall,
};

/// `EPERM`: what a denied syscall returns.
const EPERM: u32 = 1;
/// `ENOSYS`: what `clone3` returns, so callers fall back to `clone`.
const ENOSYS: u32 = 38;
/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET`.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// Syscalls the default profile allows unconditionally: `seccomp_allow.txt`, one name a line.
const ALLOWED_TEXT: &str = include_str!("seccomp_allow.txt");

/// The allowed syscall names.
pub fn allowed() -> impl Iterator<Item = &'static str> {
    ALLOWED_TEXT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

/// The syscall architectures a filter for the host's architecture must cover.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    }
}

fn rule<'a>(names: impl IntoIterator<Item = &'a str>, action: LinuxSeccompAction) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.into_iter().map(str::to_owned).collect());
    rule.set_action(action);
    rule
}

/// The default profile: allow [`allowed`], `clone` without namespace flags, `clone3` -> `ENOSYS`,
/// everything else -> `EPERM`.
pub fn default_profile() -> LinuxSeccomp {
    let clone_arg = LinuxSeccompArgBuilder::default()
        .index(0usize)
        .value(CLONE_NAMESPACE_FLAGS)
        .value_two(0u64)
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .build();
    // Fail closed: should the builder ever refuse, `clone` is denied rather than allowed
    // without its flag check.
    let clone = match clone_arg {
        Ok(arg) => {
            let mut clone = rule(["clone"], LinuxSeccompAction::ScmpActAllow);
            clone.set_args(Some(vec![arg]));
            clone
        }
        Err(_) => rule(["clone"], LinuxSeccompAction::ScmpActErrno),
    };
    let mut clone3 = rule(["clone3"], LinuxSeccompAction::ScmpActErrno);
    clone3.set_errno_ret(Some(ENOSYS));

    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(EPERM));
    profile.set_architectures(Some(architectures()));
    profile.set_syscalls(Some(vec![
        rule(allowed(), LinuxSeccompAction::ScmpActAllow),
        clone,
        clone3,
    ]));
    profile
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_by_default_with_eperm() {
        let p = default_profile();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(EPERM));
    }

    #[test]
    fn dangerous_syscalls_are_not_allowed() {
        for name in [
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "bpf",
            "ptrace",
            "kexec_load",
            "init_module",
            "finit_module",
            "reboot",
            "keyctl",
            "swapon",
            "perf_event_open",
            "open_by_handle_at",
            "userfaultfd",
            "clock_settime",
            "settimeofday",
        ] {
            assert!(!allowed().any(|a| a == name), "{name} must not be allowed");
        }
    }

    #[test]
    fn allow_list_is_sorted_enough_to_have_no_duplicates() {
        let set: std::collections::BTreeSet<_> = allowed().collect();
        assert_eq!(set.len(), allowed().count());
        assert!(set.len() > 300, "the allow-list is read");
        assert!(set.iter().all(|n| {
            n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        }));
    }

    #[test]
    fn clone_is_allowed_only_without_namespace_flags() {
        let p = default_profile();
        let rules = p.syscalls().clone().unwrap_or_default();
        let clone = rules
            .iter()
            .find(|r| r.names() == &vec!["clone".to_owned()])
            .expect("clone rule");
        let args = clone.args().clone().unwrap_or_default();
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(args[0].value(), CLONE_NAMESPACE_FLAGS);
        assert_eq!(args[0].value_two(), Some(0));
        let clone3 = rules
            .iter()
            .find(|r| r.names() == &vec!["clone3".to_owned()])
            .expect("clone3 rule");
        assert_eq!(clone3.errno_ret(), Some(ENOSYS));
    }

    #[test]
    fn serializes_in_oci_form() {
        let json = serde_json::to_value(default_profile()).expect("json");
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(
            json["architectures"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        );
    }
}
