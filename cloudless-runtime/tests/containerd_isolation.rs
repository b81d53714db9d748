//! The hardened spec really applies inside containers run by `ContainerdRuntime`: seccomp,
//! capabilities, cgroup limits, users, read-only rootfs, stop grace.

mod common;

use std::time::Instant;

use cloudless_core::quantity::{Cpu, Memory};
use cloudless_core::runtime::{ContainerState, Runtime, RuntimeError};
use cloudless_core::workload::ProfileKind;
use cloudless_runtime::oci::NetworkMode;

use common::{run_to_exit, sh};

/// Bits of CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
/// NET_BIND_SERVICE.
const DEFAULT_CAP_MASK: u64 = (1 << 0)
    | (1 << 1)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 7)
    | (1 << 8)
    | (1 << 10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seccomp_filter_is_on_and_blocks_new_namespaces() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime(ctd, NetworkMode::Isolated).await;
    let (code, log) = run_to_exit(&rt, &sh("seccomp", "grep Seccomp: /proc/self/status")).await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("Seccomp:\t2"), "{log}");

    // unshare(CLONE_NEWUSER) needs no capability, only the profile forbids it.
    let script = "unshare -U true 2>/dev/null && echo allowed || echo denied";
    let (_, log) = run_to_exit(&rt, &sh("unshare-default", script)).await;
    assert_eq!(log.trim(), "denied");
    let mut control = sh("unshare-unconfined", script);
    control.security.seccomp_profile.kind = ProfileKind::Unconfined;
    let (_, log) = run_to_exit(&rt, &control).await;
    assert_eq!(
        log.trim(),
        "allowed",
        "the control run without the profile succeeds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_default_capabilities_are_effective() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime(ctd, NetworkMode::Isolated).await;
    let (_, log) = run_to_exit(
        &rt,
        &sh("caps", "grep -E '^Cap(Eff|Bnd):' /proc/self/status"),
    )
    .await;
    for line in log.lines() {
        let hex = line.split_whitespace().nth(1).expect("mask");
        let mask = u64::from_str_radix(hex, 16).expect("hex mask");
        assert_eq!(mask, DEFAULT_CAP_MASK, "{line}");
    }
    assert_eq!(log.lines().count(), 2, "{log}");
    let (_, log) = run_to_exit(&rt, &sh("nnp", "grep NoNewPrivs: /proc/self/status")).await;
    assert!(log.contains("NoNewPrivs:\t1"), "{log}");
}

fn cgroup_file(ctd: &common::ctd::Containerd, controller: &str, id: &str, file: &str) -> String {
    let ns_dirs = std::fs::read_dir(format!(
        "/sys/fs/cgroup/{controller}{}",
        ctd.cgroup_parent()
    ))
    .expect("cgroup parent");
    for ns in ns_dirs.flatten() {
        let path = ns.path().join(id).join(file);
        if let Ok(v) = std::fs::read_to_string(&path) {
            return v.trim().to_owned();
        }
    }
    panic!("no {controller}/{file} for {id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_limits_apply_and_memory_limit_kills() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime(ctd, NetworkMode::Isolated).await;
    let mut spec = sh("limited", "sleep 100000 & wait");
    spec.limits.cpu = Some(Cpu::parse("250m").expect("cpu"));
    spec.limits.memory = Some(Memory::parse("32Mi").expect("memory"));
    spec.limits.pids = Some(50);
    rt.create(&spec).await.expect("create");
    rt.start(&spec.id).await.expect("start");
    assert_eq!(
        cgroup_file(ctd, "memory", "limited", "memory.limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    assert_eq!(
        cgroup_file(ctd, "cpu", "limited", "cpu.cfs_quota_us"),
        "25000"
    );
    assert_eq!(
        cgroup_file(ctd, "cpu", "limited", "cpu.cfs_period_us"),
        "100000"
    );
    assert_eq!(cgroup_file(ctd, "pids", "limited", "pids.max"), "50");
    let stats = rt.stats(&spec.id).await.expect("stats");
    assert!(stats.memory_bytes > 0 && stats.pids >= 1, "{stats:?}");
    rt.stop(&spec.id, 0).await.expect("stop");
    assert!(
        !rt.oom_killed(&spec.id).await.expect("oom"),
        "killed by stop, not OOM"
    );
    assert!(!rt.status(&spec.id).await.expect("status").oom_killed);
    rt.remove(&spec.id).await.expect("remove");

    // A 64 MiB buffer in a 32 MiB cgroup (no swap here): the OOM killer ends it with SIGKILL.
    let mut hog = common::sh("hog", "");
    hog.limits.memory = Some(Memory::parse("32Mi").expect("memory"));
    hog.command = vec![
        "/bin/dd".into(),
        "if=/dev/zero".into(),
        "of=/dev/null".into(),
        "bs=64M".into(),
        "count=1".into(),
    ];
    let mut events = rt.events().await.expect("events");
    rt.create(&hog).await.expect("create");
    rt.start(&hog.id).await.expect("start");
    assert_eq!(common::exit_of(&mut events, &hog.id).await, 137);
    assert!(
        rt.oom_killed(&hog.id).await.expect("oom"),
        "the OOM kill is reported"
    );
    let st = rt.status(&hog.id).await.expect("status");
    assert_eq!(st.state, ContainerState::Exited { code: 137 });
    assert!(st.oom_killed, "the status says OOM: {st:?}");
    assert!(
        rt.list()
            .await
            .expect("list")
            .iter()
            .any(|c| c.id == hog.id && c.oom_killed),
        "listed as OOM-killed too"
    );
    rt.remove(&hog.id).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_non_root_refuses_root_and_run_as_user_applies() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime(ctd, NetworkMode::Isolated).await;
    let mut spec = sh("nonroot", "id -u; id -g");
    spec.security.run_as_non_root = true;
    let err = rt
        .create(&spec)
        .await
        .expect_err("the busybox image runs as root");
    assert!(
        matches!(err, RuntimeError::InvalidSpec(ref m) if m.contains("runAsNonRoot")),
        "{err}"
    );
    spec.security.run_as_user = Some(1000);
    spec.security.run_as_group = Some(1001);
    let (code, log) = run_to_exit(&rt, &spec).await;
    assert_eq!((code, log.as_str()), (0, "1000\n1001\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_rootfs_and_masked_paths() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime(ctd, NetworkMode::Isolated).await;
    let mut spec = sh(
        "ro",
        "touch /file 2>/dev/null && echo wrote || echo refused; wc -c </proc/timer_list",
    );
    spec.security.read_only_root_filesystem = true;
    let (_, log) = run_to_exit(&rt, &spec).await;
    assert_eq!(log.split_whitespace().collect::<Vec<_>>(), ["refused", "0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_honours_the_grace_period() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime(ctd, NetworkMode::Isolated).await;
    let mut events = rt.events().await.expect("events");
    // Handles SIGTERM: exits 0 within the grace period, after writing to its log.
    let polite = sh(
        "polite",
        "trap 'echo term; exit 0' TERM; echo up; sleep 100000 & wait",
    );
    rt.create(&polite).await.expect("create");
    rt.start(&polite.id).await.expect("start");
    wait_for_log(&rt, &polite.id, "up").await;
    rt.stop(&polite.id, 10_000).await.expect("stop");
    assert_eq!(common::exit_of(&mut events, &polite.id).await, 0);
    assert_eq!(common::log_text(&rt, &polite.id).await, "up\nterm\n");
    let log_dir = rt.log_path(&polite.id);
    let mode = std::fs::metadata(log_dir.parent().expect("log dir"))
        .expect("log dir")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o700,
        "logs are root-only"
    );

    // Ignores SIGTERM: killed once the grace period is over.
    let stubborn = sh("stubborn", "trap '' TERM; echo up; sleep 100000 & wait");
    rt.create(&stubborn).await.expect("create");
    rt.start(&stubborn.id).await.expect("start");
    wait_for_log(&rt, &stubborn.id, "up").await;
    let t0 = Instant::now();
    rt.stop(&stubborn.id, 300).await.expect("stop");
    assert!(
        t0.elapsed().as_millis() >= 300,
        "SIGKILL only after the grace period"
    );
    assert_eq!(common::exit_of(&mut events, &stubborn.id).await, 137);
    let st = rt.status(&stubborn.id).await.expect("status");
    assert_eq!(st.state, ContainerState::Exited { code: 137 });
    rt.remove(&polite.id).await.expect("remove");
    rt.remove(&stubborn.id).await.expect("remove");
}

/// Follows the log of `id` until it holds `text` (the container has set its traps by then).
async fn wait_for_log(rt: &impl Runtime, id: &cloudless_core::runtime::ContainerId, text: &str) {
    use futures::StreamExt;
    let mut stream = rt.logs(id, 0, true).await.expect("logs");
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(text) {
        let chunk = tokio::time::timeout(common::PATIENCE, stream.next())
            .await
            .expect("log in time")
            .expect("log open")
            .expect("chunk");
        seen.extend_from_slice(&chunk.data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runtime_instance_finds_running_containers() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let first = common::runtime(ctd, NetworkMode::Isolated).await;
    let spec = sh("survivor", "trap 'exit 0' TERM; sleep 100000 & wait");
    first.create(&spec).await.expect("create");
    first.start(&spec.id).await.expect("start");
    let before = first.status(&spec.id).await.expect("status");
    let cfg = first.config().clone();
    drop(first);

    let second = cloudless_runtime::ContainerdRuntime::connect(cfg)
        .await
        .expect("connect");
    let listed = second.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, ContainerState::Running);
    assert_eq!(
        listed[0].started_at_ms, before.started_at_ms,
        "not restarted"
    );
    let mut events = second.events().await.expect("events");
    second.stop(&spec.id, 5_000).await.expect("stop");
    assert_eq!(common::exit_of(&mut events, &spec.id).await, 0);
    second.remove(&spec.id).await.expect("remove");
}

fn with_volume(
    mut spec: cloudless_core::runtime::ContainerSpec,
    replica: u64,
    attempt: u32,
) -> cloudless_core::runtime::ContainerSpec {
    spec.replica = cloudless_core::ids::ReplicaId(replica);
    spec.attempt = attempt;
    spec.security.run_as_user = Some(1000);
    spec.volumes = vec![cloudless_core::workload::EphemeralVolume {
        name: "scratch".into(),
        mount_path: "/data".into(),
        size_limit: None,
        medium: cloudless_core::workload::VolumeMedium::Disk,
    }];
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_volumes_are_private_to_their_replica() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime(ctd, NetworkMode::Isolated).await;
    let mut events = rt.events().await.expect("events");
    // Replica 1, attempt 0 writes as a non-root user into its volume.
    let writer = with_volume(
        sh("vol-r1-a0", "echo secret >/data/file && echo wrote"),
        1,
        0,
    );
    rt.create(&writer).await.expect("create");
    rt.start(&writer.id).await.expect("start");
    assert_eq!(
        common::exit_of(&mut events, &writer.id).await,
        0,
        "{}",
        common::log_text(&rt, &writer.id).await
    );
    // Another replica of the same workload sees an empty volume.
    let other = with_volume(sh("vol-r2-a0", "ls -A /data | wc -l"), 2, 0);
    let (code, log) = run_to_exit(&rt, &other).await;
    assert_eq!(
        (code, log.trim()),
        (0, "0"),
        "another replica must not see the file"
    );
    // The next attempt of replica 1 keeps the scratch data.
    let next = with_volume(sh("vol-r1-a1", "cat /data/file"), 1, 1);
    let (code, log) = run_to_exit(&rt, &next).await;
    assert_eq!((code, log.as_str()), (0, "secret\n"));
    // Once the replica's last container is gone, so is its volume.
    rt.remove(&writer.id).await.expect("remove");
    let again = with_volume(sh("vol-r1-a2", "ls -A /data | wc -l"), 1, 2);
    let (_, log) = run_to_exit(&rt, &again).await;
    assert_eq!(log.trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_used_images_and_frees_unused_ones() {
    // Its own containerd, so the snapshot directory holds only this test's image.
    let Some(ctd) = common::ctd::Containerd::start("prune") else {
        return;
    };
    let rt = common::runtime(&ctd, NetworkMode::Isolated).await;
    let snapshots = ctd
        .dir()
        .join("root/io.containerd.snapshotter.v1.overlayfs/snapshots");
    let count = || std::fs::read_dir(&snapshots).map_or(0, |d| d.count());
    let spec = sh("user", "true");
    rt.create(&spec).await.expect("create");
    assert!(
        rt.prune_images().await.expect("prune").is_empty(),
        "the image is in use"
    );
    rt.pull_image(common::image::IMAGE, None)
        .await
        .expect("still present");
    rt.remove(&spec.id).await.expect("remove");
    assert!(count() > 0, "the unpacked layer is there");
    let removed = rt.prune_images().await.expect("prune");
    assert_eq!(removed, vec![common::image::IMAGE.to_owned()]);
    assert!(matches!(
        rt.pull_image(common::image::IMAGE, None).await,
        Err(RuntimeError::ImageUnavailable { .. })
    ));
    assert_eq!(count(), 0, "the collector removed the layer snapshot");
}

/// An OCI layout with one image per `(name, User)`: the busybox layer plus a layer with its own
/// `/etc/passwd` and `/etc/group` (app = 1234:2345, toor = 0:0, group staff = 3456).
fn named_user_images(dir: &std::path::Path, images: &[(&str, &str)]) -> std::path::PathBuf {
    use cloudless_runtime::busybox::digest;
    let base = common::image::parts();
    let mut accounts = tar::Builder::new(Vec::new());
    for (name, content) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\napp:x:1234:2345::/:/bin/sh\n",
        ),
        ("etc/group", "root:x:0:\nstaff:x:3456:app\n"),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        h.set_cksum();
        accounts
            .append_data(&mut h, name, content.as_bytes())
            .expect("tar entry");
    }
    let layer = accounts.into_inner().expect("tar");
    let mut blobs = vec![base.layer.clone(), layer.clone()];
    let mut manifests = Vec::new();
    for (name, user) in images {
        let mut config: serde_json::Value = serde_json::from_slice(&base.config).expect("config");
        config["config"]["User"] = (*user).into();
        config["rootfs"]["diff_ids"]
            .as_array_mut()
            .expect("diff ids")
            .push(digest(&layer).into());
        let config = serde_json::to_vec(&config).expect("json");
        let layers: Vec<serde_json::Value> = [&base.layer, &layer]
            .iter()
            .map(|l| {
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(l), "size": l.len(),
                })
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest(&config), "size": config.len(),
            },
            "layers": layers,
        }))
        .expect("json");
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest), "size": manifest.len(),
            "annotations": { "io.containerd.image.name": name },
        }));
        blobs.push(config);
        blobs.push(manifest);
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .expect("json");
    let path = dir.join("named-users.tar");
    let mut out = tar::Builder::new(std::fs::File::create(&path).expect("archive"));
    let mut add = |name: String, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.append_data(&mut h, name, data).expect("tar entry");
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json".into(), &index);
    for blob in &blobs {
        let hex = digest(blob).trim_start_matches("sha256:").to_owned();
        add(format!("blobs/sha256/{hex}"), blob);
    }
    out.into_inner().expect("archive");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_users_given_by_name_resolve_from_the_image() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime(ctd, NetworkMode::Isolated).await;
    let images = [
        ("localhost/test/user-app:1", "app"),
        ("localhost/test/user-app-staff:1", "app:staff"),
        ("localhost/test/user-toor:1", "toor"),
        ("localhost/test/user-ghost:1", "ghost"),
    ];
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = named_user_images(tmp.path(), &images);
    let imported = rt.import_image(&archive).await.expect("import");
    assert_eq!(imported.len(), images.len());
    let with_image = |id: &str, image: &str| {
        let mut spec = sh(id, "id -u; id -g");
        spec.image = image.to_owned();
        spec.security.run_as_non_root = true;
        spec
    };
    let (code, log) = run_to_exit(&rt, &with_image("named", images[0].0)).await;
    assert_eq!((code, log.as_str()), (0, "1234\n2345\n"), "primary group");
    let (code, log) = run_to_exit(&rt, &with_image("named-group", images[1].0)).await;
    assert_eq!((code, log.as_str()), (0, "1234\n3456\n"));
    let err = rt
        .create(&with_image("toor", images[2].0))
        .await
        .expect_err("toor is uid 0");
    assert!(
        matches!(err, RuntimeError::InvalidSpec(ref m) if m.contains("runAsNonRoot")),
        "{err}"
    );
    let err = rt
        .create(&with_image("ghost", images[3].0))
        .await
        .expect_err("no such user");
    let msg = err.to_string();
    assert!(
        matches!(err, RuntimeError::InvalidSpec(_))
            && msg.contains("\"ghost\"")
            && msg.contains(images[3].0),
        "{msg}"
    );
    assert!(
        rt.list().await.expect("list").is_empty(),
        "nothing left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_volume_size_limit_stops_writes_past_it() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime(ctd, NetworkMode::Isolated).await;
    let limited = |id: &str, script: &str, attempt: u32| {
        let mut spec = with_volume(sh(id, script), 7, attempt);
        spec.volumes[0].size_limit = Some(Memory::parse("4Mi").expect("size"));
        spec
    };
    // 1 MiB fits; 8 MiB more does not: ENOSPC inside the container, as the non-root user.
    let script = "dd if=/dev/zero of=/data/small bs=1M count=1 2>/dev/null && echo small-ok; \
                  ls -A /data; \
                  dd if=/dev/zero of=/data/big bs=1M count=8 2>&1 | grep -o 'No space left on device'; \
                  id -u";
    let first = limited("vol-limit-a0", script, 0);
    let (code, log) = run_to_exit(&rt, &first).await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["small-ok", "small", "No space left on device", "1000"],
        "{log}"
    );
    // run_to_exit removed the container: the replica's volume is unmounted and gone.
    let data = rt
        .config()
        .data_dir
        .join("volumes")
        .join(&rt.config().namespace);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&data.to_string_lossy().into_owned()),
        "no volume left mounted"
    );

    // Attempts of one replica share the limited volume while one of them exists.
    let keep = limited("vol-limit-b0", "echo kept >/data/f", 0);
    let mut events = rt.events().await.expect("events");
    rt.create(&keep).await.expect("create");
    rt.start(&keep.id).await.expect("start");
    assert_eq!(common::exit_of(&mut events, &keep.id).await, 0);
    let (code, log) = run_to_exit(&rt, &limited("vol-limit-b1", "cat /data/f", 1)).await;
    assert_eq!((code, log.as_str()), (0, "kept\n"));
    rt.remove(&keep.id).await.expect("remove");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&data.to_string_lossy().into_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_leaves_no_volume_mounted() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime(ctd, NetworkMode::Isolated).await;
    // "a" (4 MiB) is mounted first; "b" has a zero-byte image that mkfs refuses, so the create
    // fails after a volume of it was mounted.
    let mut spec = with_volume(sh("vol-fail-a0", "true"), 9, 0);
    spec.volumes[0].name = "a".into();
    spec.volumes[0].size_limit = Some(Memory::parse("4Mi").expect("size"));
    let mut second = spec.volumes[0].clone();
    second.name = "b".into();
    second.mount_path = "/b".into();
    second.size_limit = Some(Memory::parse("0").expect("size"));
    spec.volumes.push(second);
    let err = rt.create(&spec).await.expect_err("mkfs fails on volume b");
    assert!(err.to_string().contains("mkfs.ext4"), "{err}");
    let data = rt
        .config()
        .data_dir
        .join("volumes")
        .join(&rt.config().namespace);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&data.to_string_lossy().into_owned()),
        "no volume left mounted: {mounts}"
    );
    assert!(
        !data.join(format!("w{}-r9", spec.workload.0)).exists(),
        "the replica's volumes are gone"
    );
    assert!(rt.list().await.expect("list").is_empty(), "no container");
}
