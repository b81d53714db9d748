//! Three coordinators as real processes: the second and third `join` with a coordinator token
//! (enrollment, CA hand-over, raft voter), and the API keeps answering through the others
//! after the first coordinator stops; a follower forwards API calls to the leader. Harness:
//! `tests/common/`.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{COORDINATOR, Lab};

#[test]
fn two_coordinators_join_and_the_api_survives_the_first_one_stopping() {
    let mut lab = Lab::init("ha", 3);
    assert!(
        lab.coordinator_token
            .as_deref()
            .is_some_and(|t| t.starts_with("CLD1-")),
        "init --coordinator-token prints a second token line"
    );
    let admin = lab.admin();
    for i in 0..3 {
        lab.start_coordinator(i);
        if i == 0 {
            continue;
        }
        // The CA was handed over (key 0600) and the member is a voter.
        let key = lab.coord_dir(i).join("ca/ca.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let meta = std::fs::read_to_string(lab.coord_dir(i).join("coordinator.json")).unwrap();
        assert!(meta.contains("\"voter\": true"), "{meta}");
    }

    // The first coordinator stops; the other two elect a leader and the API answers there.
    let stop = |lab: &mut Lab, i: usize| {
        let p = lab.coordinators[i].as_mut().unwrap();
        let code = p.sigterm(Duration::from_secs(30));
        assert_eq!(code, 0, "{}", p.log_text());
    };
    stop(&mut lab, 0);
    let api = format!("{},{}", lab.api(1), lab.api(2));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = common::command(COORDINATOR)
            .args(["status", "--json", "--api", &api, "--admin-credentials"])
            .arg(&admin)
            .output()
            .unwrap();
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
    stop(&mut lab, 1);
    stop(&mut lab, 2);
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

    let mut lab = Lab::init("fwd", 3);
    for i in 0..3 {
        lab.start_coordinator(i);
    }
    let client = lab.client(&lab.apis());
    let leader = lab.wait(
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
        // Calls on the follower's own channel: the client never follows a leader hint, so an
        // answer means the follower forwarded the call (one that does not forward answers
        // Unavailable every time, however often it is asked).
        let channel = lab.channel(&lab.api(f));
        let name = format!("via-coord-{f}");
        let created = lab.wait(
            "a follower forwards Create",
            Duration::from_secs(30),
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
        // (A linearizable read on a loaded machine may miss its quorum once: Unavailable,
        // which clients retry; so does this check.)
        let got = lab.wait(
            &format!("get {name} through follower {f}"),
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                let mut w = WorkloadsClient::new(channel.clone());
                lab.block_on(w.get(pb::GetWorkloadRequest {
                    workload: Some(pb::WorkloadRef {
                        namespace: String::new(),
                        name: name.clone(),
                    }),
                }))
                .map(tonic::Response::into_inner)
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
            },
        );
        assert_eq!(got.workload.unwrap().name, name);
        let info = lab.wait(
            &format!("cluster info through follower {f}"),
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                let mut c = pb::cluster_client::ClusterClient::new(channel.clone());
                lab.block_on(c.info(pb::InfoRequest {}))
                    .map(tonic::Response::into_inner)
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
            },
        );
        assert_eq!(info.member, lab.node_id(f));
        // The leader found above, unless an election on a loaded machine moved it meanwhile;
        // either way the follower names the current leader's API address.
        if info.leader != leader {
            eprintln!(
                "leadership moved from {leader} to {} during the test",
                info.leader
            );
        }
        let li = lab.coordinator_of(info.leader).unwrap();
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
