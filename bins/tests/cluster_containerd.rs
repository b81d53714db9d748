//! A real cluster on loopback: 3 coordinators (`init` + 2 `join`) and 3 agents on one private
//! containerd (each agent its own namespace, bridge, disjoint subnet and zone), all separate
//! processes. A 3-replica spread workload deployed through the public API really runs (the
//! containers are in containerd and answer HTTP at their addresses); `kill -9` of an agent gets
//! its replica replaced on another agent; `kill -9` of the raft leader leaves the API answering
//! through another coordinator within seconds (measured) without restarting any replica; the
//! killed coordinator, restarted, is a raft member again and serves the API.
//!
//! ```text
//!  containerd (private: own root/state/socket, supervisor cleans up on exit)
//!    ns t<pid>-0 ─ agent a<pid>-0 zone-0 bridge cld0t<pid> 10.213.x.y/28
//!    ns t<pid>-1 ─ agent a<pid>-1 zone-1 bridge cld1t<pid> 10.214.x.y/28
//!    ns t<pid>-2 ─ agent a<pid>-2 zone-2 bridge cld2t<pid> 10.215.x.y/28
//!  coord-0 (init) ── coord-1, coord-2 (join)      API: cloudless::Client + admin.pem
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

#[allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]
#[path = "../../cloudless-runtime/tests/common/ctd.rs"]
mod ctd;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use cloudless::api::pb;
use cloudless_core::runtime::{ContainerState, Runtime};
use cloudless_runtime::{ContainerdConfig, ContainerdRuntime};
use common::{AgentSpec, Lab};

const MANIFEST: &str = r#"apiVersion: cloudless.dev/v1
kind: Workload
metadata:
  name: web
spec:
  image: localhost/cloudless/busybox:latest
  command: ["/bin/sh", "-c"]
  args:
    - >-
      mkdir -p /tmp/www &&
      echo "hello from $(hostname)" > /tmp/www/index.html &&
      exec httpd -f -p 8080 -h /tmp/www
  resources:
    requests: {cpu: 50m, memory: 16Mi}
    limits: {cpu: 250m, memory: 64Mi, pids: 64}
  replicas: 3
  placement:
    strategy: spread
    spread: {topologyKey: zone, maxSkew: 1}
  restart: {policy: always}
  probes:
    readiness:
      http: {port: 8080, path: /}
      period: 1s
      timeout: 1s
  ports:
    - {name: http, containerPort: 8080}
"#;

fn namespace(n: usize) -> String {
    format!("t{}-{n}", std::process::id())
}

fn agent_name(n: usize) -> String {
    format!("a{}-{n}", std::process::id())
}

/// Kills what the agents' containers left in their cgroups (the containerd supervisor cleans
/// its own cgroup, not the agents'). Runs on drop, before the containerd instance goes.
struct AgentCgroups(Vec<String>);

impl Drop for AgentCgroups {
    fn drop(&mut self) {
        for name in &self.0 {
            let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
                continue;
            };
            for c in controllers.flatten() {
                let dir = c.path().join(format!("cloudless-agent-{name}"));
                if !dir.is_dir() {
                    continue;
                }
                let _ = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(
                        r#"find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null; sleep 0.2; find "$1" -depth -type d -exec rmdir {} + 2>/dev/null; true"#,
                    )
                    .arg("sh")
                    .arg(&dir)
                    .status();
            }
        }
    }
}

/// A running replica as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Replica {
    id: u64,
    node: u64,
    address: String,
    restarts: u32,
}

/// The Running and ready replicas of `web` on Ready nodes, or why not (yet) 3 of them. (The
/// ledger keeps a replica of a Down node as it last was until the node returns: it is
/// replaced, not forgotten.)
fn running(lab: &Lab, client: &cloudless::Client) -> Result<Vec<Replica>, String> {
    let ready_nodes: BTreeSet<u64> = lab
        .block_on(client.list_nodes())
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|n| n.liveness == "Ready")
        .map(|n| n.id)
        .collect();
    let s = lab
        .block_on(client.rollout_status("default", "web"))
        .map_err(|e| e.to_string())?;
    let reps: Vec<Replica> = s
        .replicas
        .iter()
        .filter(|r| {
            r.phase == "Running"
                && r.ready
                && !r.address.is_empty()
                && ready_nodes.contains(&r.node)
        })
        .map(|r| Replica {
            id: r.id,
            node: r.node,
            address: r.address.clone(),
            restarts: r.restarts,
        })
        .collect();
    if reps.len() == 3 {
        Ok(reps)
    } else {
        Err(format!(
            "ready nodes {ready_nodes:?}, replicas {:?}",
            s.replicas
        ))
    }
}

/// GET / from `addr:8080`; the body.
fn http_get(addr: &str) -> Result<String, String> {
    let target = format!("{addr}:8080");
    let sock: std::net::SocketAddr = target.parse().map_err(|e| format!("{target}: {e}"))?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(10))
        .map_err(|e| format!("{target}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Containers of namespace `ns`: id -> (state, started_at_ms).
fn containers(
    lab: &Lab,
    runtimes: &[ContainerdRuntime],
    n: usize,
) -> BTreeMap<String, (ContainerState, Option<u64>)> {
    lab.block_on(runtimes[n].list())
        .unwrap()
        .into_iter()
        .map(|c| (c.id.0.clone(), (c.state, c.started_at_ms)))
        .collect()
}

fn running_ids(
    lab: &Lab,
    runtimes: &[ContainerdRuntime],
    n: usize,
) -> BTreeMap<String, Option<u64>> {
    containers(lab, runtimes, n)
        .into_iter()
        .filter(|(_, (s, _))| *s == ContainerState::Running)
        .map(|(id, (_, at))| (id, at))
        .collect()
}

#[test]
fn three_coordinators_three_containerd_agents_survive_agent_and_leader_kills() {
    let started = Instant::now();
    let Some(ctd) = ctd::Containerd::start("cluster") else {
        return;
    };
    let archive = ctd.dir().join("busybox-oci.tar");
    let busybox = cloudless_runtime::busybox::find_busybox().unwrap_or_else(|e| {
        panic!("the busybox image needs a static busybox (scripts/ensure-deps.sh): {e}")
    });
    cloudless_runtime::busybox::write_oci_layout(&busybox, &archive).unwrap();
    let _cgroups = AgentCgroups((0..3).map(agent_name).collect());

    let mut lab = Lab::init("ctd", 3);
    for i in 0..3 {
        lab.start_coordinator(i);
    }
    eprintln!(
        "[{:>5.1}s] 3 coordinators running",
        started.elapsed().as_secs_f64()
    );

    // The image goes into each agent's namespace through the runtime library; the harness's
    // runtimes also list the containers later.
    let runtimes: Vec<ContainerdRuntime> = (0..3)
        .map(|n| {
            let cfg = ContainerdConfig::new(
                ctd.socket(),
                &namespace(n),
                ctd.dir().join(format!("harness-{n}")),
            );
            lab.block_on(async {
                let rt = ContainerdRuntime::connect(cfg).await.unwrap();
                rt.import_image(&archive).await.unwrap();
                rt
            })
        })
        .collect();
    for n in 0..3 {
        let mut spec = AgentSpec::process(&agent_name(n), &format!("zone-{n}"));
        spec.runtime = vec![
            "--runtime".into(),
            "containerd".into(),
            "--containerd-socket".into(),
            ctd.socket().display().to_string(),
            "--namespace".into(),
            namespace(n),
            "--subnet".into(),
            ctd::bridge_subnet(u8::try_from(n).unwrap()),
            "--bridge".into(),
            ctd::bridge_name(u8::try_from(n).unwrap()),
            "--process-shim".into(),
            common::SHIM.into(),
        ];
        lab.start_agent(spec);
    }
    let client = lab.client(&lab.apis());
    let node_names: BTreeMap<u64, String> = lab.wait(
        "3 agents Ready",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let nodes = lab
                .block_on(client.list_nodes())
                .map_err(|e| e.to_string())?;
            let ready: BTreeMap<u64, String> = nodes
                .iter()
                .filter(|n| n.liveness == "Ready" && n.name.starts_with('a'))
                .map(|n| (n.id, n.name.clone()))
                .collect();
            if ready.len() == 3 {
                Ok(ready)
            } else {
                Err(format!("{nodes:?}"))
            }
        },
    );
    let agent_of = |node: u64| -> usize {
        let name = &node_names[&node];
        (0..3).find(|&n| agent_name(n) == *name).unwrap()
    };
    eprintln!("[{:>5.1}s] 3 agents Ready", started.elapsed().as_secs_f64());

    // Deploy through the API; 3 replicas, one per zone, really running and serving.
    let w = lab.block_on(client.create_workload(MANIFEST)).unwrap();
    assert_eq!(w.replicas, 3);
    let reps = lab.wait(
        "3 replicas Running and ready",
        Duration::from_secs(40),
        Duration::from_millis(300),
        || running(&lab, &client),
    );
    let agents: BTreeSet<usize> = reps.iter().map(|r| agent_of(r.node)).collect();
    assert_eq!(agents.len(), 3, "spread over the zones: {reps:?}");
    for r in &reps {
        let body = http_get(&r.address).unwrap();
        assert!(body.contains("hello from"), "{}: {body}", r.address);
        let n = agent_of(r.node);
        assert!(
            ctd::in_subnet(&r.address, &ctd::bridge_subnet(u8::try_from(n).unwrap())),
            "{} not in agent {n}'s subnet",
            r.address
        );
        assert_eq!(running_ids(&lab, &runtimes, n).len(), 1, "agent {n}");
    }
    eprintln!(
        "[{:>5.1}s] 3 replicas Running, serving HTTP: {:?}",
        started.elapsed().as_secs_f64(),
        reps.iter().map(|r| &r.address).collect::<Vec<_>>()
    );

    // kill -9 of agent 0: its replica is replaced on another agent.
    let killed_node = reps.iter().find(|r| agent_of(r.node) == 0).unwrap().node;
    let t = Instant::now();
    lab.kill_agent(0);
    let reps = lab.wait(
        "a replacement replica Running on another agent",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let reps = running(&lab, &client)?;
            if reps.iter().any(|r| r.node == killed_node) {
                let nodes: Vec<(String, String)> = lab
                    .block_on(client.list_nodes())
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|n| (n.name, n.liveness))
                    .collect();
                let w = lab
                    .block_on(client.rollout_status("default", "web"))
                    .map_err(|e| e.to_string())?;
                return Err(format!(
                    "still on the killed node: {reps:?}; nodes {nodes:?}; conditions {:?}; replicas {:?}",
                    w.conditions, w.replicas
                ));
            }
            Ok(reps)
        },
    );
    let replaced_after = t.elapsed();
    for r in &reps {
        let body = http_get(&r.address).unwrap();
        assert!(body.contains("hello from"), "{}: {body}", r.address);
    }
    let on_live: usize = (1..3).map(|n| running_ids(&lab, &runtimes, n).len()).sum();
    assert_eq!(on_live, 3, "3 containers run on agents 1 and 2");
    eprintln!(
        "[{:>5.1}s] agent 0 killed: replacement Running after {:.1}s",
        started.elapsed().as_secs_f64(),
        replaced_after.as_secs_f64()
    );

    // kill -9 of the raft leader: the API answers again through another coordinator and no
    // replica restarts.
    let before: Vec<BTreeMap<String, Option<u64>>> =
        (1..3).map(|n| running_ids(&lab, &runtimes, n)).collect();
    let leader = lab.block_on(client.info()).unwrap().leader;
    let li = lab.coordinator_of(leader).unwrap();
    let others: Vec<String> = (0..3).filter(|&i| i != li).map(|i| lab.api(i)).collect();
    let survivors = lab.client(&others);
    let t = Instant::now();
    lab.kill_coordinator(li);
    let after_kill = lab.wait(
        "the API through the other coordinators",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let info = lab.block_on(survivors.info()).map_err(|e| e.to_string())?;
            if info.leader == 0 || info.leader == leader {
                return Err(format!("leader {}", info.leader));
            }
            // A call that needs the leader.
            lab.block_on(survivors.rollout_status("default", "web"))
                .map_err(|e| e.to_string())
        },
    );
    let api_back = t.elapsed();
    eprintln!(
        "[{:>5.1}s] leader coord-{li} killed: API answered via another coordinator after {} ms",
        started.elapsed().as_secs_f64(),
        api_back.as_millis()
    );
    // (How fast is printed above, not asserted: the wait's deadline bounds it, and a loaded CI
    // machine must not fail a wall-clock bound; benchmarks measure failover speed.)
    assert!(after_kill.replicas.len() >= 3);
    // Watch a while longer: the new leader must not restart or move anything. Right after the
    // leader change a read may miss its quorum or a node's liveness may lag, so the replicas are
    // read until all three are seen Running again; a restart or move would show in their keys.
    std::thread::sleep(Duration::from_secs(3));
    let reps_after = lab.wait(
        "3 replicas Running after the leader change",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || running(&lab, &survivors),
    );
    let key = |v: &[Replica]| -> BTreeSet<(u64, u64, u32)> {
        v.iter().map(|r| (r.id, r.node, r.restarts)).collect()
    };
    assert_eq!(key(&reps), key(&reps_after), "replicas changed");
    let after: Vec<BTreeMap<String, Option<u64>>> =
        (1..3).map(|n| running_ids(&lab, &runtimes, n)).collect();
    assert_eq!(
        before, after,
        "containers (ids, start times) changed after the leader died"
    );

    // The killed coordinator restarts from its data dir and is a member again.
    lab.start_coordinator(li);
    let own = lab.channel(&lab.api(li));
    let me = lab.node_id(li);
    lab.wait(
        "the restarted coordinator answers as a raft member",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let mut c = pb::cluster_client::ClusterClient::new(own.clone());
            let info = lab
                .block_on(c.info(pb::InfoRequest {}))
                .map_err(|s| s.to_string())?
                .into_inner();
            if info.member == me && info.voters.contains(&me) && info.leader != 0 {
                Ok(())
            } else {
                Err(format!("{info:?}"))
            }
        },
    );
    // A call needing the leader, on the restarted coordinator alone (forwarded if it follows).
    let mut wc = pb::workloads_client::WorkloadsClient::new(own);
    let st = lab.wait(
        "rollout status through the restarted coordinator",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            lab.block_on(wc.rollout_status(pb::RolloutStatusRequest {
                workload: Some(pb::WorkloadRef {
                    namespace: "default".into(),
                    name: "web".into(),
                }),
            }))
            .map(tonic::Response::into_inner)
            .map_err(|s| s.to_string())
        },
    );
    assert_eq!(st.desired, 3);
    assert_eq!(
        (1..3)
            .map(|n| running_ids(&lab, &runtimes, n))
            .collect::<Vec<_>>(),
        before,
        "containers changed after the coordinator rejoined"
    );
    eprintln!(
        "[{:>5.1}s] coord-{li} restarted and rejoined (member {me})",
        started.elapsed().as_secs_f64()
    );
    drop(runtimes);
    drop(lab);
}
