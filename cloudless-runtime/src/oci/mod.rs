//! The hardened OCI runtime spec Cloudless gives every container.
//!
//! Built from oci-spec's types field by field rather than from `Spec::default()`, whose defaults
//! (hostname "youki", no seccomp, no cgroups path) are not ours. What every container gets unless
//! its security context asks otherwise: its own pid, ipc, uts, mount and network namespaces
//! (network shared with the host only when the runtime is configured so), no-new-privileges, the
//! small capability set of [`caps`], the allow-list seccomp profile of [`seccomp`], masked and
//! read-only kernel paths, a non-executable `/dev/shm`, the fragment's cgroup limits, and the
//! AppArmor profile when the host has AppArmor.

mod accounts;
pub mod caps;
mod mounts;
pub mod seccomp;
mod user;

use std::collections::BTreeMap;

use cloudless_core::runtime::ContainerSpec;
use cloudless_core::workload::ProfileKind;
use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

pub use accounts::{Accounts, MAX_ACCOUNTS_FILE};
pub use user::{ImageUser, needs_accounts};

/// The CFS period Cloudless uses, in microseconds; the quota is `millicores * period / 1000`.
pub const CPU_PERIOD_US: u64 = 100_000;
/// Open-file limit of container processes (soft and hard), as containerd's default spec: a
/// shim cannot raise it above its own hard limit, which is host-dependent.
pub const NOFILE_LIMIT: u64 = 1024;
/// Masked kernel paths (bind-mounted over with nothing).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// Kernel paths mounted read-only.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// What the image says about how to run it (from its config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` (`NAME=value`).
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `User`.
    pub user: Option<String>,
}

/// Where the container's network namespace comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// A new network namespace with loopback only (no address reachable from the host).
    #[default]
    Isolated,
    /// The host's network namespace: reachable at the host's loopback address. Weaker isolation;
    /// used until per-container bridge networking lands.
    Host,
}

/// What the host supports, detected once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSecurity {
    /// The AppArmor profile to use for `runtimeDefault`, when AppArmor is enabled and the
    /// profile is loaded.
    pub apparmor_default: Option<String>,
    /// Whether AppArmor is enabled at all (for `localhost` profiles).
    pub apparmor_enabled: bool,
}

impl HostSecurity {
    /// Detects AppArmor from securityfs; `default_profile` is used for `runtimeDefault` only if
    /// it is loaded.
    pub fn detect(default_profile: &str) -> Self {
        let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.trim() == "Y");
        let loaded = enabled
            && std::fs::read_to_string("/sys/kernel/security/apparmor/profiles").is_ok_and(|s| {
                s.lines()
                    .any(|l| l.split(" (").next() == Some(default_profile))
            });
        Self {
            apparmor_default: loaded.then(|| default_profile.to_owned()),
            apparmor_enabled: enabled,
        }
    }
}

/// Everything besides the container spec that the OCI spec depends on.
#[derive(Debug, Clone, Default)]
pub struct SpecContext {
    /// The image's defaults.
    pub image: ImageDefaults,
    /// The cgroup path, e.g. `/cloudless/<namespace>/<id>`.
    pub cgroups_path: String,
    /// Network namespace mode.
    pub network: NetworkMode,
    /// Host security features.
    pub host: HostSecurity,
    /// Where each of the spec's ephemeral volumes lives on the host, by volume name; volumes
    /// on disk must have an entry (memory volumes are tmpfs and need none).
    pub volume_dirs: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// The image's user and group names (read when its `User` is a name; see
    /// [`needs_accounts`]).
    pub accounts: Option<Accounts>,
}

/// Why a spec cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Neither the spec nor the image names a command.
    #[error("no command: neither the workload nor the image sets one")]
    NoCommand,
    /// `runAsNonRoot` is set but the container would run as UID 0.
    #[error("runAsNonRoot is set but the container would run as root (uid 0)")]
    RunsAsRoot,
    /// The image's user is a name, which cannot be checked or mapped without the image's files.
    #[error(
        "image user {0:?} is not numeric and the image's /etc/passwd was not read; set runAsUser"
    )]
    NamedUser(String),
    /// The image's user names a user or group its `/etc/passwd` or `/etc/group` does not have.
    #[error("{kind} {name:?} of the image's User is not in /etc/{file} of image {image}", file = if kind == "user" { "passwd" } else { "group" })]
    UnknownAccount {
        /// `user` or `group`.
        kind: String,
        /// The name.
        name: String,
        /// The image.
        image: String,
    },
    /// A capability name is unknown.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    /// A profile kind this host or runtime cannot apply.
    #[error("unsupported profile: {0}")]
    UnsupportedProfile(String),
    /// An environment variable name is empty or has `=`.
    #[error("invalid environment variable name {0:?}")]
    BadEnv(String),
    /// An ephemeral volume is malformed (name, mount path) or has no host directory.
    #[error("invalid volume {0}")]
    BadVolume(String),
    /// oci-spec refused a value.
    #[error("building the OCI spec: {0}")]
    Build(#[from] oci_spec::OciSpecError),
}

/// Merges image env and workload env (the workload wins per name), sorted by name for a stable
/// spec, with a default `PATH`.
fn merge_env(spec: &ContainerSpec, image: &ImageDefaults) -> Result<Vec<String>, SpecError> {
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_owned(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
    );
    for kv in &image.env {
        if let Some((k, v)) = kv.split_once('=') {
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    for var in &spec.env {
        if var.name.is_empty() || var.name.contains('=') || var.name.contains('\0') {
            return Err(SpecError::BadEnv(var.name.clone()));
        }
        env.insert(var.name.clone(), var.value.clone());
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// The process's argv: `command` replaces the entrypoint and `args` the image's `Cmd`
/// (a `command` without `args` drops the image's `Cmd`).
pub fn argv(spec: &ContainerSpec, image: &ImageDefaults) -> Result<Vec<String>, SpecError> {
    let mut argv = if spec.command.is_empty() {
        image.entrypoint.clone()
    } else {
        spec.command.clone()
    };
    if !spec.args.is_empty() {
        argv.extend(spec.args.iter().cloned());
    } else if spec.command.is_empty() {
        argv.extend(image.cmd.iter().cloned());
    }
    if argv.is_empty() || argv[0].is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(argv)
}

fn apparmor(spec: &ContainerSpec, host: &HostSecurity) -> Result<Option<String>, SpecError> {
    let profile = &spec.security.apparmor_profile;
    match profile.kind {
        ProfileKind::Unconfined => Ok(None),
        ProfileKind::RuntimeDefault => Ok(host.apparmor_default.clone()),
        ProfileKind::Localhost => match (&profile.localhost_profile, host.apparmor_enabled) {
            (Some(name), true) if !name.is_empty() => Ok(Some(name.clone())),
            (_, false) => Err(SpecError::UnsupportedProfile(
                "AppArmor localhost profile on a host without AppArmor".to_owned(),
            )),
            _ => Err(SpecError::UnsupportedProfile(
                "AppArmor localhost profile without a name".to_owned(),
            )),
        },
    }
}

/// Builds the hardened spec for `spec` in `ctx`.
pub fn build(spec: &ContainerSpec, ctx: &SpecContext) -> Result<Spec, SpecError> {
    let sec = &spec.security;
    let (uid, gid) = user::resolve(
        sec,
        ctx.image.user.as_deref(),
        ctx.accounts.as_ref(),
        &spec.image,
    )?;
    if sec.run_as_non_root && uid == 0 {
        return Err(SpecError::RunsAsRoot);
    }
    let caps = caps::effective_set(&sec.capabilities.add, &sec.capabilities.drop)
        .map_err(SpecError::UnknownCapability)?;
    let caps = caps::to_oci(&caps);
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(oci_spec::runtime::Capabilities::new())
        .ambient(oci_spec::runtime::Capabilities::new())
        .build()?;
    let cwd = spec
        .working_dir
        .clone()
        .or_else(|| ctx.image.working_dir.clone())
        .filter(|d| d.starts_with('/'))
        .unwrap_or_else(|| "/".to_owned());
    let mut process = ProcessBuilder::default()
        .terminal(false)
        .user(UserBuilder::default().uid(uid).gid(gid).build()?)
        .args(argv(spec, &ctx.image)?)
        .env(merge_env(spec, &ctx.image)?)
        .cwd(cwd)
        .capabilities(capabilities)
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .soft(NOFILE_LIMIT)
                .hard(NOFILE_LIMIT)
                .build()?,
        ])
        .no_new_privileges(true)
        .build()?;
    if let Some(profile) = apparmor(spec, &ctx.host)? {
        process.set_apparmor_profile(Some(profile));
    }

    let seccomp = match sec.seccomp_profile.kind {
        ProfileKind::RuntimeDefault => Some(seccomp::default_profile()),
        ProfileKind::Unconfined => None,
        ProfileKind::Localhost => {
            return Err(SpecError::UnsupportedProfile(
                "seccomp localhost profiles are not supported yet".to_owned(),
            ));
        }
    };

    let mut namespaces = Vec::new();
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        namespaces.push(LinuxNamespaceBuilder::default().typ(typ).build()?);
    }
    if ctx.network == NetworkMode::Isolated {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()?,
        );
    }

    let mut resources = LinuxResourcesBuilder::default().devices(vec![
        // Deny every device; runc adds its small default allow-list (null, zero, tty...).
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()?,
    ]);
    if let Some(cpu) = spec.limits.cpu {
        let quota = cpu.millis().saturating_mul(CPU_PERIOD_US) / 1000;
        let quota = i64::try_from(quota).unwrap_or(i64::MAX).max(1000);
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .quota(quota)
                .period(CPU_PERIOD_US)
                .build()?,
        );
    }
    if let Some(mem) = spec.limits.memory {
        let bytes = i64::try_from(mem.mib().saturating_mul(1 << 20)).unwrap_or(i64::MAX);
        resources = resources.memory(LinuxMemoryBuilder::default().limit(bytes).build()?);
    }
    if let Some(pids) = spec.limits.pids {
        resources = resources.pids(LinuxPidsBuilder::default().limit(i64::from(pids)).build()?);
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build()?)
        .cgroups_path(ctx.cgroups_path.clone())
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<_>>(),
        )
        .build()?;
    linux.set_seccomp(seccomp);

    let hostname: String = spec.id.as_str().chars().take(63).collect();
    Ok(SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(sec.read_only_root_filesystem)
                .build()?,
        )
        .process(process)
        .hostname(hostname)
        .mounts({
            let mut all = mounts::default_mounts(ctx.network)?;
            all.extend(mounts::volume_mounts(&spec.volumes, &ctx.volume_dirs)?);
            all
        })
        .linux(linux)
        .build()?)
}

#[cfg(test)]
mod tests;
