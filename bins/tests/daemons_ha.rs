//! Three coordinators as real processes: the second and third `join` with a coordinator token
//! (enrollment, CA hand-over, raft voter), and the API keeps answering through the others
//! after the first coordinator stops.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const COORDINATOR: &str = env!("CARGO_BIN_EXE_cloudless-coordinator");

/// Three base ports P with P..P+3 free for UDP and TCP on loopback, 10 apart.
fn free_bases() -> [u16; 3] {
    let seed = u64::from(std::process::id()) * 6151
        + u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        );
    for i in 0..500u64 {
        let base = 20_000 + ((seed + i * 104_729) % 40_000) as u16;
        let all_free = (0..24).all(|o| {
            let a = SocketAddr::from(([127, 0, 0, 1], base + o));
            UdpSocket::bind(a).is_ok() && TcpListener::bind(a).is_ok()
        });
        if all_free {
            return [base, base + 10, base + 20];
        }
    }
    panic!("no free port range");
}

fn clean_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("CLOUDLESS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLOUDLESS_LOG", "info,openraft=warn")
}

fn run(args: &[&str]) -> Output {
    clean_env(&mut Command::new(COORDINATOR))
        .args(args)
        .output()
        .unwrap()
}

/// A child process killed when dropped (a failing test leaves nothing running).
struct Guard(Child);

impl std::ops::Deref for Guard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn(args: &[&str], log: &Path) -> Guard {
    let f = std::fs::File::create(log).unwrap();
    clean_env(&mut Command::new(COORDINATOR))
        .args(args)
        .stdout(Stdio::null())
        .stderr(f)
        .spawn()
        .map(Guard)
        .unwrap()
}

fn wait_log(log: &Path, needle: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(child: &mut Child, log: &Path) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert_eq!(
                s.code(),
                Some(0),
                "{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} did not stop", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_coordinators_join_and_the_api_survives_the_first_one_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_bases();
    let listen = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let data = |i: usize| dir.path().join(format!("c{i}"));
    let log = |name: &str| dir.path().join(name);

    let out = run(&[
        "init",
        "--data-dir",
        data(0).to_str().unwrap(),
        "--cluster",
        "ha",
        "--name",
        "coord-0",
        "--listen",
        &listen(0),
        "--coordinator-token",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let coord_token = lines[1].to_owned();
    assert!(coord_token.starts_with("CLD1-"));
    let admin = data(0).join("admin.pem");

    let mut procs = vec![spawn(
        &[
            "run",
            "--data-dir",
            data(0).to_str().unwrap(),
            "--listen",
            &listen(0),
        ],
        &log("c0.log"),
    )];
    wait_log(
        &log("c0.log"),
        "coordinator running",
        Duration::from_secs(20),
    );
    for i in 1..3 {
        let name = format!("coord-{i}");
        procs.push(spawn(
            &[
                "join",
                "--token",
                &coord_token,
                "--peer",
                &listen(0),
                "--data-dir",
                data(i).to_str().unwrap(),
                "--name",
                &name,
                "--listen",
                &listen(i),
            ],
            &log(&format!("c{i}.log")),
        ));
        wait_log(
            &log(&format!("c{i}.log")),
            "coordinator running",
            Duration::from_secs(30),
        );
        // The CA was handed over (key 0600) and the member is a voter.
        let key = data(i).join("ca/ca.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let meta = std::fs::read_to_string(data(i).join("coordinator.json")).unwrap();
        assert!(meta.contains("\"voter\": true"), "{meta}");
    }

    // The first coordinator stops; the other two elect a leader and the API answers there.
    stop(&mut procs[0], &log("c0.log"));
    let api = format!("127.0.0.1:{},127.0.0.1:{}", ports[1] + 3, ports[2] + 3);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(&[
            "status",
            "--json",
            "--api",
            &api,
            "--admin-credentials",
            admin.to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && text.contains("coord-1") && text.contains("coord-2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "API not answering after the first coordinator stopped: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    stop(&mut procs[1], &log("c1.log"));
    stop(&mut procs[2], &log("c2.log"));
}

/// A workload manifest named `name`.
fn manifest(name: &str) -> String {
    format!(
        "apiVersion: cloudless.dev/v1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  image: busybox:1\n  replicas: 1\n"
    )
}

#[test]
fn followers_forward_api_calls_to_the_leader() {
    use cloudless::api::pb;
    use cloudless::api::pb::workloads_client::WorkloadsClient;

    let mut lab = common::Lab::init("fwd", 3);
    for i in 0..3 {
        lab.start_coordinator(i);
    }
    let client = lab.client(&lab.apis());
    let leader = common::wait_for(
        "a leader of 3 voters",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let info = lab.block_on(client.info()).map_err(|e| e.to_string())?;
            if info.leader != 0 && info.voters.len() == 3 {
                Ok(info.leader)
            } else {
                Err(format!("{info:?}"))
            }
        },
    );
    let followers: Vec<usize> = (0..3).filter(|&i| lab.node_id(i) != leader).collect();
    assert_eq!(followers.len(), 2);

    for &f in &followers {
        // One gRPC call on the follower's own channel: the client neither retries nor follows
        // a hint, so an answer means the follower forwarded the call.
        let channel = lab.channel(&lab.api(f));
        let name = format!("via-coord-{f}");
        let created = common::wait_for(
            "a follower forwards Create",
            Duration::from_secs(10),
            Duration::from_millis(200),
            || {
                let mut w = WorkloadsClient::new(channel.clone());
                lab.block_on(w.create(pb::CreateWorkloadRequest {
                    manifest: manifest(&name),
                    idempotency_key: format!("fwd-{f}"),
                }))
                .map(tonic::Response::into_inner)
                .map_err(|s| format!("{:?}: {} {:?}", s.code(), s.message(), s.metadata()))
            },
        );
        assert_eq!(created.workload.unwrap().name, name);
        // Reads are forwarded too, and the follower names the leader's API address.
        let mut w = WorkloadsClient::new(channel.clone());
        let got = lab
            .block_on(w.get(pb::GetWorkloadRequest {
                workload: Some(pb::WorkloadRef {
                    namespace: String::new(),
                    name: name.clone(),
                }),
            }))
            .unwrap()
            .into_inner();
        assert_eq!(got.workload.unwrap().name, name);
        let mut c = pb::cluster_client::ClusterClient::new(channel);
        let info = lab
            .block_on(c.info(pb::InfoRequest {}))
            .unwrap()
            .into_inner();
        assert_eq!(info.member, lab.node_id(f));
        assert_eq!(info.leader, leader);
        let li = lab.coordinator_of(leader).unwrap();
        assert_eq!(info.leader_address, lab.api(li), "{info:?}");
    }
    // Both workloads were created once, on the leader.
    let names: Vec<String> = lab
        .block_on(client.list_workloads(""))
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    for &f in &followers {
        assert_eq!(
            names
                .iter()
                .filter(|n| **n == format!("via-coord-{f}"))
                .count(),
            1,
            "{names:?}"
        );
    }
}
