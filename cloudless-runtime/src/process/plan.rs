//! Which specs the process runtime takes, and the launch plan it derives from one: argv, env,
//! working directory, user, limits. Bad fields are refused with the field's name.

use std::path::{Path, PathBuf};

use cloudless_core::runtime::{ContainerSpec, RuntimeError, Support};
use cloudless_core::workload::ProfileKind;
use serde::{Deserialize, Serialize};

use super::cgroup::{CgroupSet, Limits};

/// Images the process runtime runs: `process://` alone (the spec's `command` names the program)
/// or `process:///abs/path/to/program` (the program when `command` is empty).
pub const IMAGE_SCHEME: &str = "process://";
/// The runtime class that names the process runtime (absent also selects it for `process://`
/// images).
pub const RUNTIME_CLASS: &str = "process";
/// `PATH` when the spec sets none.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Environment variable naming the replica's ephemeral directory.
pub const ENV_EPHEMERAL_DIR: &str = "CLOUDLESS_EPHEMERAL_DIR";
/// Prefix of the environment variables naming each ephemeral volume's directory
/// (`CLOUDLESS_VOLUME_<NAME>`, upper case, `-` → `_`).
pub const ENV_VOLUME_PREFIX: &str = "CLOUDLESS_VOLUME_";

/// Everything the shim needs to run one replica's process (`plan.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// The spec as given.
    pub(crate) spec: ContainerSpec,
    /// Program and arguments.
    pub(crate) argv: Vec<String>,
    /// The whole environment (nothing is inherited from the agent).
    pub(crate) env: Vec<(String, String)>,
    /// Working directory.
    pub(crate) cwd: PathBuf,
    /// The replica's ephemeral directory (shared by its attempts).
    pub(crate) work_dir: PathBuf,
    /// User and group to switch to.
    pub(crate) uid: Option<u32>,
    /// Group to switch to.
    pub(crate) gid: Option<u32>,
    /// Set no-new-privileges before executing.
    pub(crate) no_new_privs: bool,
    /// Limits asked for.
    pub(crate) limits: Limits,
    /// The replica's cgroup, when one could be made.
    pub(crate) cgroup: Option<CgroupSet>,
    /// Why requested limits are not applied, when they are not.
    pub(crate) limits_note: Option<String>,
    /// Log cap in bytes.
    pub(crate) log_max_bytes: u64,
    /// When `create` ran (ms since the Unix epoch).
    pub(crate) created_at_ms: u64,
}

/// The program a `process://` image names, if any; `Err` when `image` is not one.
pub(crate) fn image_program(image: &str) -> Result<Option<PathBuf>, String> {
    let Some(rest) = image.strip_prefix(IMAGE_SCHEME) else {
        return Err(format!(
            "image {image:?} is not a {IMAGE_SCHEME} image: the process runtime runs host \
             binaries only"
        ));
    };
    if rest.is_empty() {
        return Ok(None);
    }
    if !rest.starts_with('/') || rest.contains('\0') {
        return Err(format!(
            "image {image:?}: after {IMAGE_SCHEME} comes nothing or an absolute program path"
        ));
    }
    Ok(Some(PathBuf::from(rest)))
}

/// Whether the process runtime takes `spec`: a `process://` image, no other runtime class, and
/// no isolation it cannot give (it says `No` rather than silently running with less).
pub(crate) fn support(spec: &ContainerSpec) -> Support {
    let sec = &spec.security;
    if let Some(class) = &sec.runtime_class
        && class != RUNTIME_CLASS
    {
        return Support::No(format!(
            "runtime class {class} is not handled by the process runtime"
        ));
    }
    if let Err(reason) = image_program(&spec.image) {
        return Support::No(reason);
    }
    let refuse = |field: &str, why: &str| Support::No(format!("{field}: {why}"));
    if let Some(p) = spec
        .ports
        .iter()
        .find(|p| p.host_port.is_some_and(|h| h != p.container_port))
    {
        return Support::No(format!(
            "ports.{}.hostPort: a host process listens on the node's own ports and cannot be \
             published on another one",
            p.name
        ));
    }
    if sec.read_only_root_filesystem {
        return refuse(
            "security.readOnlyRootFilesystem",
            "a host process has no root filesystem of its own to make read-only",
        );
    }
    if !sec.capabilities.add.is_empty() {
        return refuse(
            "security.capabilities.add",
            "the process runtime does not manage capabilities",
        );
    }
    if sec.seccomp_profile.kind == ProfileKind::Localhost {
        return refuse(
            "security.seccompProfile",
            "the process runtime applies no seccomp profile",
        );
    }
    if sec.apparmor_profile.kind == ProfileKind::Localhost {
        return refuse(
            "security.apparmorProfile",
            "the process runtime applies no AppArmor profile",
        );
    }
    Support::Yes
}

fn invalid(field: &str, why: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::InvalidSpec(format!("{field}: {why}"))
}

fn no_nul(field: &str, s: &str) -> Result<(), RuntimeError> {
    if s.contains('\0') {
        return Err(invalid(field, "contains a NUL byte"));
    }
    Ok(())
}

/// The directory of replica `spec.replica` of `spec.workload` under `work_root`.
pub(crate) fn work_dir(work_root: &Path, spec: &ContainerSpec) -> PathBuf {
    work_root.join(format!("{}-{}", spec.workload, spec.replica))
}

/// Inputs of [`build`] from the runtime's configuration.
pub(crate) struct Host<'a> {
    /// Root of the per-replica ephemeral directories.
    pub(crate) work_root: &'a Path,
    /// The agent's effective uid.
    pub(crate) euid: u32,
    /// Set no-new-privileges.
    pub(crate) no_new_privs: bool,
    /// Log cap.
    pub(crate) log_max_bytes: u64,
}

/// Checks `spec` and derives its launch plan (no cgroup yet).
pub(crate) fn build(host: &Host<'_>, spec: &ContainerSpec) -> Result<Plan, RuntimeError> {
    if let Support::No(reason) = support(spec) {
        return Err(RuntimeError::Unsupported(reason));
    }
    let program = image_program(&spec.image).map_err(|e| invalid("image", e))?;
    for (i, c) in spec.command.iter().enumerate() {
        no_nul(&format!("command[{i}]"), c)?;
    }
    for (i, a) in spec.args.iter().enumerate() {
        no_nul(&format!("args[{i}]"), a)?;
    }
    let mut argv: Vec<String> = if spec.command.is_empty() {
        program
            .map(|p| vec![p.to_string_lossy().into_owned()])
            .unwrap_or_default()
    } else {
        spec.command.clone()
    };
    argv.extend(spec.args.iter().cloned());
    match argv.first() {
        None => {
            return Err(invalid(
                "command",
                format!("empty, and image {:?} names no program", spec.image),
            ));
        }
        Some(p) if p.is_empty() => return Err(invalid("command[0]", "empty program name")),
        Some(_) => {}
    }

    let sec = &spec.security;
    if host.euid != 0 {
        for (field, id) in [
            ("security.runAsUser", sec.run_as_user),
            ("security.runAsGroup", sec.run_as_group),
        ] {
            if let Some(id) = id
                && id != host.euid
            {
                return Err(invalid(
                    field,
                    format!("switching to {id} needs the agent to run as root"),
                ));
            }
        }
    }
    let uid = sec.run_as_user;
    // Without a group the user's own number is used, never the agent's group 0.
    let gid = sec.run_as_group.or(sec.run_as_user);
    if sec.run_as_non_root && uid.unwrap_or(host.euid) == 0 {
        return Err(invalid(
            "security.runAsNonRoot",
            "the process would run as uid 0 (set security.runAsUser)",
        ));
    }

    let work_dir = work_dir(host.work_root, spec);
    let cwd = match &spec.working_dir {
        Some(d) if !d.starts_with('/') => {
            return Err(invalid(
                "working_dir",
                format!("must be an absolute path, got {d:?}"),
            ));
        }
        Some(d) => {
            no_nul("working_dir", d)?;
            PathBuf::from(d)
        }
        None => work_dir.clone(),
    };

    let mut env: Vec<(String, String)> = Vec::new();
    for (i, var) in spec.env.iter().enumerate() {
        let field = format!("env[{i}].name");
        if var.name.is_empty() || var.name.contains('=') {
            return Err(invalid(
                &field,
                format!("{:?} is not a variable name", var.name),
            ));
        }
        no_nul(&field, &var.name)?;
        no_nul(&format!("env[{i}].value"), &var.value)?;
        env.retain(|(k, _)| k != &var.name);
        env.push((var.name.clone(), var.value.clone()));
    }
    let mut defaults = vec![
        ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
        ("HOME".to_owned(), work_dir.to_string_lossy().into_owned()),
        (
            ENV_EPHEMERAL_DIR.to_owned(),
            work_dir.to_string_lossy().into_owned(),
        ),
    ];
    for (i, v) in spec.volumes.iter().enumerate() {
        let ok = !v.name.is_empty()
            && v.name.len() <= 63
            && v.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(invalid(
                &format!("volumes[{i}].name"),
                format!("{:?} is not a DNS label", v.name),
            ));
        }
        let dir = work_dir.join("volumes").join(&v.name);
        let name = v.name.to_ascii_uppercase().replace('-', "_");
        defaults.push((
            format!("{ENV_VOLUME_PREFIX}{name}"),
            dir.to_string_lossy().into_owned(),
        ));
    }
    for (k, v) in defaults {
        if !env.iter().any(|(name, _)| name == &k) {
            env.push((k, v));
        }
    }

    let limits = Limits::from_spec(&spec.limits);
    if spec.limits.pids == Some(0) {
        return Err(invalid("limits.pids", "must be at least 1"));
    }
    Ok(Plan {
        spec: spec.clone(),
        argv,
        env,
        cwd,
        work_dir,
        uid,
        gid,
        no_new_privs: host.no_new_privs,
        limits,
        cgroup: None,
        limits_note: None,
        log_max_bytes: host.log_max_bytes,
        created_at_ms: super::record::now_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudless_core::runtime::ContainerId;
    use cloudless_core::testing::runtime::basic_spec;
    use cloudless_core::workload::{EnvVar, EphemeralVolume};

    fn host(euid: u32) -> Host<'static> {
        Host {
            work_root: Path::new("/w"),
            euid,
            no_new_privs: true,
            log_max_bytes: 100,
        }
    }

    fn spec(image: &str) -> ContainerSpec {
        basic_spec(ContainerId("c".into()), image)
    }

    fn err(h: &Host<'_>, s: &ContainerSpec) -> String {
        build(h, s).expect_err("refused").to_string()
    }

    #[test]
    fn image_rule() {
        assert_eq!(image_program("process://"), Ok(None));
        assert_eq!(
            image_program("process:///bin/sh"),
            Ok(Some(PathBuf::from("/bin/sh")))
        );
        assert!(image_program("process://sh").is_err());
        assert!(image_program("docker.io/library/busybox").is_err());
        assert_eq!(support(&spec("process:///bin/true")), Support::Yes);
        assert!(matches!(support(&spec("busybox")), Support::No(r) if r.contains("host binaries")));
        let mut s = spec("process://");
        s.security.runtime_class = Some("kata".into());
        assert!(matches!(support(&s), Support::No(r) if r.contains("kata")));
        s.security.runtime_class = Some(RUNTIME_CLASS.into());
        assert_eq!(support(&s), Support::Yes);
        let mut port = cloudless_core::workload::ContainerPort {
            name: "http".into(),
            container_port: 8080,
            protocol: cloudless_core::workload::Protocol::Tcp,
            host_port: Some(8080),
        };
        s.ports = vec![port.clone()];
        assert_eq!(
            support(&s),
            Support::Yes,
            "the same port is the node's port"
        );
        port.host_port = Some(80);
        s.ports = vec![port];
        assert!(matches!(support(&s), Support::No(r) if r.contains("hostPort")));
        s.ports.clear();
        s.security.read_only_root_filesystem = true;
        assert!(matches!(support(&s), Support::No(r) if r.contains("readOnlyRootFilesystem")));
    }

    #[test]
    fn argv_env_and_cwd() {
        let mut s = spec("process:///bin/echo");
        s.args = vec!["hi".into()];
        s.env = vec![
            EnvVar {
                name: "A".into(),
                value: "1".into(),
            },
            EnvVar {
                name: "PATH".into(),
                value: "/opt".into(),
            },
        ];
        s.volumes = vec![EphemeralVolume {
            name: "scratch-1".into(),
            mount_path: "/scratch".into(),
            size_limit: None,
            medium: Default::default(),
        }];
        let p = build(&host(0), &s).expect("plan");
        assert_eq!(p.argv, vec!["/bin/echo", "hi"]);
        assert_eq!(p.cwd, PathBuf::from("/w/w1-r1"));
        let get = |k: &str| p.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("A").as_deref(), Some("1"));
        assert_eq!(get("PATH").as_deref(), Some("/opt"), "the spec's PATH wins");
        assert_eq!(get(ENV_EPHEMERAL_DIR).as_deref(), Some("/w/w1-r1"));
        assert_eq!(
            get("CLOUDLESS_VOLUME_SCRATCH_1").as_deref(),
            Some("/w/w1-r1/volumes/scratch-1")
        );
        s.command = vec!["/bin/sh".into(), "-c".into()];
        assert_eq!(
            build(&host(0), &s).expect("plan").argv,
            vec!["/bin/sh", "-c", "hi"]
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let h = host(0);
        let s = spec("process://");
        assert!(err(&h, &s).contains("command"), "{}", err(&h, &s));
        let mut s = spec("process:///bin/true");
        s.working_dir = Some("rel".into());
        assert!(err(&h, &s).contains("working_dir"));
        let mut s = spec("process:///bin/true");
        s.env = vec![EnvVar {
            name: "A=B".into(),
            value: String::new(),
        }];
        assert!(err(&h, &s).contains("env[0].name"));
        let mut s = spec("process:///bin/true");
        s.args = vec!["ok".into(), "a\0b".into()];
        assert!(err(&h, &s).contains("args[1]"));
        let mut s = spec("process:///bin/true");
        s.security.run_as_non_root = true;
        assert!(err(&h, &s).contains("security.runAsNonRoot"));
        s.security.run_as_user = Some(1000);
        let p = build(&h, &s).expect("non-root user");
        assert_eq!((p.uid, p.gid), (Some(1000), Some(1000)));
        assert!(
            err(&host(1000), &{
                let mut s = spec("process:///bin/true");
                s.security.run_as_user = Some(1001);
                s
            })
            .contains("security.runAsUser")
        );
        let mut s = spec("process:///bin/true");
        s.limits.pids = Some(0);
        assert!(err(&h, &s).contains("limits.pids"));
        let s = spec("busybox:latest");
        assert!(matches!(build(&h, &s), Err(RuntimeError::Unsupported(_))));
    }
}
