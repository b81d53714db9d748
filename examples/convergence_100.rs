//! Convergence with 100 agents in one process, on the real clock: P50/P95 of
//! - join visible cluster-wide (agent registered + started → Ready on every coordinator),
//! - node loss detected (node powered off → marked Down in the ledger),
//! - node loss → replacement replica Running (in the ledger and in a runtime),
//! - container crash → restarted (kill → a new attempt of the replica running).
//!
//! Three coordinators on raft (`MemTransport`, redb on tmpfs), 100 agents on `FakeRuntime`,
//! default coordinator and agent settings (heartbeat 500 ms, Down after 1.8 s, default restart
//! backoff 500 ms). Run: `cargo run --release --features sim --example convergence_100`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cloudless::core::ids::NodeId;
use cloudless::core::node::Liveness;
use cloudless::core::replica::ReplicaPhase;
use cloudless::core::runtime::{ContainerState, Runtime};
use cloudless::core::workload::{PlacementStrategy, SpreadConstraint, TopologyKey, WorkloadSpec};
use cloudless::sim::{AgentSpec, Fault, SimCluster, SimError};

const AGENTS: usize = 100;
const SAMPLES: usize = 20;
const POLL: Duration = Duration::from_millis(5);

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn report(what: &str, samples: &mut [Duration]) {
    let p50 = percentile(samples, 50.0);
    let p95 = percentile(samples, 95.0);
    println!(
        "{what:<40} n={:<3} P50 {:>8.1} ms  P95 {:>8.1} ms  max {:>8.1} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
}

async fn wait(
    what: &str,
    limit: Duration,
    mut f: impl AsyncFnMut() -> bool,
) -> Result<Duration, SimError> {
    let t0 = Instant::now();
    loop {
        if f().await {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return Err(SimError::Timeout {
                what: what.into(),
                waited: limit,
                seed: 0,
                step: 0,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn ready_everywhere(sim: &SimCluster, node: NodeId) -> bool {
    let states = sim.member_states().await;
    !states.is_empty()
        && states.iter().all(|s| {
            s.nodes
                .get(&node)
                .is_some_and(|n| n.liveness == Liveness::Ready)
        })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sim = SimCluster::builder(7)
        .coordinators(3)
        .real_time(true)
        .invariants(None)
        .build()
        .await?;
    println!("3 coordinators (raft), leader #{:?}", sim.leader());

    // 1. Joins, one at a time while the earlier agents keep heartbeating.
    let zones = ["zone-a", "zone-b", "zone-c", "zone-d"];
    let mut join = Vec::new();
    for i in 0..AGENTS {
        let t0 = Instant::now();
        let idx = sim
            .add_agent(AgentSpec::new(format!("n{i:03}")).zone(zones[i % zones.len()]))
            .await?;
        let node = sim.node(idx).ok_or("agent without a node")?;
        let s = &sim;
        wait("join", Duration::from_secs(10), async || {
            ready_everywhere(s, node).await
        })
        .await?;
        join.push(t0.elapsed());
    }
    println!("{AGENTS} agents joined");

    // A workload with one replica on each of 40 nodes (spread by node).
    let mut spec = WorkloadSpec::new("app:1");
    spec.replicas = 40;
    spec.placement.strategy = PlacementStrategy::Spread;
    spec.placement.spread = Some(SpreadConstraint {
        topology_key: TopologyKey::Node,
        max_skew: 1,
    });
    let app = sim.create_workload("default", "app", spec).await?;
    let s = &sim;
    wait("40 replicas running", Duration::from_secs(60), async || {
        s.member_states().await.first().is_some_and(|st| {
            st.replicas_of(app)
                .filter(|r| r.phase == ReplicaPhase::Running)
                .count()
                == 40
        })
    })
    .await?;
    println!("40 replicas running");

    // 2 + 3. Node loss: detection and replacement, one node at a time.
    let mut detected = Vec::new();
    let mut replaced = Vec::new();
    for k in 0..SAMPLES {
        let state = sim
            .member_states()
            .await
            .into_iter()
            .next()
            .ok_or("no state")?;
        let live: BTreeSet<_> = state
            .replicas_of(app)
            .filter(|r| r.phase == ReplicaPhase::Running)
            .map(|r| r.id)
            .collect();
        let victim = state
            .replicas_of(app)
            .filter(|r| r.phase == ReplicaPhase::Running)
            .nth(k % live.len().max(1))
            .ok_or("no running replica")?
            .clone();
        let agent = sim.agent_index(victim.node).ok_or("victim agent")?;
        let t0 = Instant::now();
        sim.apply(Fault::PowerOffAgent(agent)).await?;
        let node = victim.node;
        let s = &sim;
        let mut down_at = None;
        let mut running_at = None;
        wait(
            "loss detected and replaced",
            Duration::from_secs(30),
            async || {
                let st = match s.member_states().await.into_iter().next() {
                    Some(st) => st,
                    None => return false,
                };
                if down_at.is_none()
                    && st
                        .nodes
                        .get(&node)
                        .is_some_and(|n| n.liveness == Liveness::Down)
                {
                    down_at = Some(t0.elapsed());
                }
                if running_at.is_none() {
                    let replacement = st
                        .replicas_of(app)
                        .find(|r| !live.contains(&r.id) && r.phase == ReplicaPhase::Running);
                    if replacement.is_some() {
                        running_at = Some(t0.elapsed());
                    }
                }
                down_at.is_some() && running_at.is_some()
            },
        )
        .await?;
        detected.extend(down_at);
        replaced.extend(running_at);
        // Bring it back and let it rejoin before the next sample.
        sim.apply(Fault::RestartAgent(agent)).await?;
        let s = &sim;
        wait("rejoin", Duration::from_secs(30), async || {
            ready_everywhere(s, node).await
        })
        .await?;
    }

    report("join visible cluster-wide", &mut join);
    report("node loss detected (Down)", &mut detected);
    report("node loss -> replacement Running", &mut replaced);

    // 4. Container crash → restarted by the agent.
    let mut restarted = Vec::new();
    for k in 0..SAMPLES {
        let view = sim.observe().await;
        let running = view.running_of(app);
        let victim = running[k % running.len().max(1)];
        let agent = sim.agent_index(victim.node).ok_or("agent")?;
        let runtime = sim.runtime(agent).ok_or("runtime")?.clone();
        let t0 = Instant::now();
        sim.kill_replica(victim.replica).await?;
        let replica = victim.replica;
        let attempt = victim.attempt;
        let rt = &runtime;
        let outcome = wait("restart", Duration::from_secs(30), async || {
            rt.list().await.unwrap_or_default().iter().any(|c| {
                c.state == ContainerState::Running
                    && cloudless::runtime::supervisor::parse_container_id(&c.id)
                        .is_some_and(|(r, a)| r == replica && a > attempt)
            })
        })
        .await;
        match outcome {
            Ok(_) => restarted.push(t0.elapsed()),
            Err(e) => println!("container crash sample {k}: {e}"),
        }
    }

    report("container crash -> restarted", &mut restarted);
    println!("\nlink stats: {:?}", sim.net().stats());
    sim.shutdown().await;
    Ok(())
}
