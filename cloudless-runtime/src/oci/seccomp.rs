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

/// Syscalls the default profile allows unconditionally.
pub const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_getfd",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// The syscall architectures a filter for the host's architecture must cover.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    }
}

fn rule(names: &[&str], action: LinuxSeccompAction) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.iter().map(|n| (*n).to_owned()).collect());
    rule.set_action(action);
    rule
}

/// The default profile: allow [`ALLOWED`], `clone` without namespace flags, `clone3` -> `ENOSYS`,
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
            let mut clone = rule(&["clone"], LinuxSeccompAction::ScmpActAllow);
            clone.set_args(Some(vec![arg]));
            clone
        }
        Err(_) => rule(&["clone"], LinuxSeccompAction::ScmpActErrno),
    };
    let mut clone3 = rule(&["clone3"], LinuxSeccompAction::ScmpActErrno);
    clone3.set_errno_ret(Some(ENOSYS));

    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(EPERM));
    profile.set_architectures(Some(architectures()));
    profile.set_syscalls(Some(vec![
        rule(ALLOWED, LinuxSeccompAction::ScmpActAllow),
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
            assert!(!ALLOWED.contains(&name), "{name} must not be allowed");
        }
    }

    #[test]
    fn allow_list_is_sorted_enough_to_have_no_duplicates() {
        let set: std::collections::BTreeSet<_> = ALLOWED.iter().collect();
        assert_eq!(set.len(), ALLOWED.len());
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
