//! Unit tests of the hardened spec's content.

use cloudless_core::ids::{ReplicaId, WorkloadId};
use cloudless_core::quantity::{Cpu, Memory};
use cloudless_core::runtime::{ContainerId, ContainerSpec};
use cloudless_core::workload::{EnvVar, EphemeralVolume, ProfileKind, VolumeMedium};
use serde_json::Value;

use super::*;

fn spec() -> ContainerSpec {
    ContainerSpec {
        id: ContainerId("r1-a0".into()),
        workload: WorkloadId(1),
        replica: ReplicaId(1),
        attempt: 0,
        image: "localhost/x:1".into(),
        platform: None,
        command: Vec::new(),
        args: Vec::new(),
        env: Vec::new(),
        working_dir: None,
        requests: Default::default(),
        limits: Default::default(),
        security: Default::default(),
        ports: Vec::new(),
        volumes: Vec::new(),
        labels: Default::default(),
    }
}

fn ctx() -> SpecContext {
    SpecContext {
        image: ImageDefaults {
            entrypoint: vec!["/bin/app".into()],
            cmd: vec!["--serve".into()],
            env: vec!["PATH=/bin".into(), "MODE=image".into()],
            working_dir: Some("/srv".into()),
            user: None,
        },
        cgroups_path: "/cloudless/ns/r1-a0".into(),
        network: NetworkMode::Isolated,
        host: HostSecurity::default(),
        volume_dirs: Default::default(),
        accounts: None,
    }
}

fn json(spec: &ContainerSpec, ctx: &SpecContext) -> Value {
    serde_json::to_value(build(spec, ctx).expect("spec builds")).expect("json")
}

#[test]
fn hardened_defaults() {
    let j = json(&spec(), &ctx());
    assert_eq!(j["process"]["noNewPrivileges"], true);
    assert_eq!(j["process"]["user"]["uid"], 0);
    assert_eq!(j["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(j["linux"]["cgroupsPath"], "/cloudless/ns/r1-a0");
    assert_eq!(j["hostname"], "r1-a0");
    assert_eq!(j["root"]["path"], "rootfs");
    assert_eq!(j["root"]["readonly"], false);
    let masked = j["linux"]["maskedPaths"].as_array().expect("masked");
    assert!(masked.iter().any(|p| p == "/proc/kcore"));
    let ro = j["linux"]["readonlyPaths"].as_array().expect("ro");
    assert!(ro.iter().any(|p| p == "/proc/sys"));
    let eff = j["process"]["capabilities"]["effective"]
        .as_array()
        .expect("caps");
    assert_eq!(eff.len(), caps::DEFAULT_CAPABILITIES.len());
    assert!(!eff.iter().any(|c| c == "CAP_SYS_ADMIN"));
    assert_eq!(
        j["process"]["capabilities"]["ambient"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    let ns: Vec<&str> = j["linux"]["namespaces"]
        .as_array()
        .expect("ns")
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert_eq!(ns, ["pid", "ipc", "uts", "mount", "network"]);
    assert!(j["process"].get("apparmorProfile").is_none());
    let shm = j["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["destination"] == "/dev/shm")
        .expect("shm");
    assert!(
        shm["options"]
            .as_array()
            .expect("opts")
            .iter()
            .any(|o| o == "noexec")
    );
}

#[test]
fn args_env_and_cwd_follow_image_then_workload() {
    let j = json(&spec(), &ctx());
    assert_eq!(
        j["process"]["args"],
        serde_json::json!(["/bin/app", "--serve"])
    );
    assert_eq!(j["process"]["cwd"], "/srv");
    let mut s = spec();
    s.command = vec!["/bin/sh".into()];
    s.args = vec!["-c".into(), "true".into()];
    s.working_dir = Some("/tmp".into());
    s.env = vec![EnvVar {
        name: "MODE".into(),
        value: "workload".into(),
    }];
    let j = json(&s, &ctx());
    assert_eq!(
        j["process"]["args"],
        serde_json::json!(["/bin/sh", "-c", "true"])
    );
    assert_eq!(j["process"]["cwd"], "/tmp");
    assert_eq!(
        j["process"]["env"],
        serde_json::json!(["MODE=workload", "PATH=/bin"])
    );
    // A command without args drops the image's Cmd.
    let mut s = spec();
    s.command = vec!["/bin/true".into()];
    assert_eq!(
        json(&s, &ctx())["process"]["args"],
        serde_json::json!(["/bin/true"])
    );
}

#[test]
fn no_command_and_bad_env_are_refused() {
    let mut c = ctx();
    c.image.entrypoint.clear();
    c.image.cmd.clear();
    assert!(matches!(build(&spec(), &c), Err(SpecError::NoCommand)));
    let mut s = spec();
    s.env = vec![EnvVar {
        name: "A=B".into(),
        value: String::new(),
    }];
    assert!(matches!(build(&s, &ctx()), Err(SpecError::BadEnv(_))));
}

#[test]
fn cgroup_limits_from_the_fragment() {
    let mut s = spec();
    s.limits.cpu = Some(Cpu::parse("250m").expect("cpu"));
    s.limits.memory = Some(Memory::parse("64Mi").expect("mem"));
    s.limits.pids = Some(100);
    let r = &json(&s, &ctx())["linux"]["resources"];
    assert_eq!(r["cpu"]["quota"], 25_000);
    assert_eq!(r["cpu"]["period"], 100_000);
    assert_eq!(r["memory"]["limit"], 64 << 20);
    assert_eq!(r["pids"]["limit"], 100);
    assert_eq!(r["devices"][0]["allow"], false);
}

#[test]
fn run_as_user_and_non_root() {
    let mut s = spec();
    s.security.run_as_non_root = true;
    assert!(matches!(build(&s, &ctx()), Err(SpecError::RunsAsRoot)));
    let mut c = ctx();
    c.image.user = Some("1000:1001".into());
    let j = json(&s, &c);
    assert_eq!(j["process"]["user"]["uid"], 1000);
    assert_eq!(j["process"]["user"]["gid"], 1001);
    c.image.user = Some("root".into());
    assert!(matches!(build(&s, &c), Err(SpecError::RunsAsRoot)));
    c.image.user = Some("nobody".into());
    assert!(matches!(build(&s, &c), Err(SpecError::NamedUser(_))));
    s.security.run_as_user = Some(65534);
    assert_eq!(json(&s, &c)["process"]["user"]["uid"], 65534);
    assert_eq!(json(&s, &c)["process"]["user"]["gid"], 65534);
}

#[test]
fn named_image_users_resolve_and_root_by_another_name_is_refused() {
    let mut s = spec();
    let mut c = ctx();
    c.accounts = Some(super::Accounts::parse(
        "toor:x:0:0::/:\nnobody:x:65534:65534::/:\n",
        "nogroup:x:65534:\nstaff:x:50:\n",
    ));
    c.image.user = Some("nobody:staff".into());
    s.security.run_as_non_root = true;
    let j = json(&s, &c);
    assert_eq!(j["process"]["user"]["uid"], 65534);
    assert_eq!(j["process"]["user"]["gid"], 50);
    c.image.user = Some("toor".into());
    assert!(
        matches!(build(&s, &c), Err(SpecError::RunsAsRoot)),
        "a name for uid 0 is root"
    );
    c.image.user = Some("ghost".into());
    let e = build(&s, &c).expect_err("unknown").to_string();
    assert!(e.contains("\"ghost\"") && e.contains(&s.image), "{e}");
}

#[test]
fn read_only_root_and_unconfined_seccomp() {
    let mut s = spec();
    s.security.read_only_root_filesystem = true;
    s.security.seccomp_profile.kind = ProfileKind::Unconfined;
    let j = json(&s, &ctx());
    assert_eq!(j["root"]["readonly"], true);
    assert!(j["linux"].get("seccomp").is_none());
    s.security.seccomp_profile.kind = ProfileKind::Localhost;
    assert!(matches!(
        build(&s, &ctx()),
        Err(SpecError::UnsupportedProfile(_))
    ));
}

#[test]
fn apparmor_field_follows_host_support() {
    // This machine's kernel has no AppArmor: the default profile is simply absent.
    let j = json(&spec(), &ctx());
    assert!(j["process"].get("apparmorProfile").is_none());
    let mut c = ctx();
    c.host = HostSecurity {
        apparmor_default: Some("cloudless-default".into()),
        apparmor_enabled: true,
    };
    assert_eq!(
        json(&spec(), &c)["process"]["apparmorProfile"],
        "cloudless-default"
    );
    let mut s = spec();
    s.security.apparmor_profile.kind = ProfileKind::Localhost;
    s.security.apparmor_profile.localhost_profile = Some("mine".into());
    assert_eq!(json(&s, &c)["process"]["apparmorProfile"], "mine");
    assert!(matches!(
        build(&s, &ctx()),
        Err(SpecError::UnsupportedProfile(_))
    ));
    s.security.apparmor_profile.kind = ProfileKind::Unconfined;
    assert!(json(&s, &c)["process"].get("apparmorProfile").is_none());
}

#[test]
fn capability_changes_apply_and_unknown_ones_fail() {
    let mut s = spec();
    s.security.capabilities.drop = vec!["ALL".into()];
    s.security.capabilities.add = vec!["NET_RAW".into()];
    let j = json(&s, &ctx());
    assert_eq!(
        j["process"]["capabilities"]["effective"],
        serde_json::json!(["CAP_NET_RAW"])
    );
    s.security.capabilities.add = vec!["WINGS".into()];
    assert!(matches!(
        build(&s, &ctx()),
        Err(SpecError::UnknownCapability(_))
    ));
}

#[test]
fn host_network_shares_the_namespace_and_binds_sys() {
    let mut c = ctx();
    c.network = NetworkMode::Host;
    let j = json(&spec(), &c);
    let ns = j["linux"]["namespaces"].as_array().expect("ns");
    assert!(!ns.iter().any(|n| n["type"] == "network"));
    let sys = j["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["destination"] == "/sys")
        .expect("sys");
    assert_eq!(sys["type"], "bind");
}

fn volume(name: &str, path: &str, medium: VolumeMedium) -> EphemeralVolume {
    EphemeralVolume {
        name: name.into(),
        mount_path: path.into(),
        size_limit: Some(Memory::parse("16Mi").expect("size")),
        medium,
    }
}

#[test]
fn ephemeral_volumes_mount_the_private_dir_or_a_sized_tmpfs() {
    let mut s = spec();
    s.volumes = vec![
        volume("scratch", "/data", VolumeMedium::Disk),
        volume("cache", "/cache", VolumeMedium::Memory),
    ];
    let mut c = ctx();
    c.volume_dirs.insert(
        "scratch".into(),
        "/var/lib/cloudless/volumes/ns/w1-r1/scratch".into(),
    );
    let j = json(&s, &c);
    let mounts = j["mounts"].as_array().expect("mounts");
    let data = mounts
        .iter()
        .find(|m| m["destination"] == "/data")
        .expect("data");
    assert_eq!(
        data["source"],
        "/var/lib/cloudless/volumes/ns/w1-r1/scratch"
    );
    assert_eq!(data["type"], "bind");
    let cache = mounts
        .iter()
        .find(|m| m["destination"] == "/cache")
        .expect("cache");
    assert_eq!(cache["type"], "tmpfs");
    assert!(
        cache["options"]
            .as_array()
            .expect("opts")
            .iter()
            .any(|o| o == "size=16m")
    );
    // A disk volume without a host directory, and bad mount paths, are refused.
    assert!(matches!(build(&s, &ctx()), Err(SpecError::BadVolume(_))));
    for bad in ["relative", "/", "/a/../etc", "/a//b"] {
        let mut s = spec();
        s.volumes = vec![volume("cache", bad, VolumeMedium::Memory)];
        assert!(
            matches!(build(&s, &ctx()), Err(SpecError::BadVolume(_))),
            "{bad}"
        );
    }
}
