//! An application that embeds a whole Cloudless node: coordinator and agent roles in one
//! process, backed by a single-member raft cluster on a temporary directory.
//!
//! The example creates a workload through consensus, waits until its replica runs on the
//! embedded agent (a `FakeRuntime`, so nothing is pulled or started on the host), prints its
//! status and shuts the node down. It fails if the replica does not reach Running.
//!
//! `cargo run --example embed_node`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cloudless::agent::{AgentConfig, FixedResourceProbe, HostResources};
use cloudless::coordinator::CoordinatorConfig;
use cloudless::core::clock::{Clock, SystemClock};
use cloudless::core::consensus::Consensus;
use cloudless::core::ids::{NodeId, WorkloadId};
use cloudless::core::node::PowerSource;
use cloudless::core::replica::ReplicaPhase;
use cloudless::core::runtime::{ContainerState, Runtime};
use cloudless::core::state::{Command, CommandEnvelope, CommandResult};
use cloudless::core::transport::{PeerIdentity, Role};
use cloudless::core::workload::WorkloadSpec;
use cloudless::fabric::Fabric;
use cloudless::net::mem::addr_of;
use cloudless::net::{MemNetwork, Router};
use cloudless::runtime::FakeRuntime;
use cloudless::store::{RaftConsensus, RaftConsensusConfig, RaftService};

const CLUSTER: &str = "embedded";
const NODE: NodeId = NodeId(1);

/// Creates a one-replica workload by proposing the command to consensus, as the API would.
async fn create_workload(consensus: &dyn Consensus, name: &str) -> anyhow::Result<WorkloadId> {
    let applied = consensus
        .propose(CommandEnvelope::new(
            SystemClock.now_ms(),
            Command::CreateWorkload {
                namespace: "default".into(),
                name: name.into(),
                labels: BTreeMap::new(),
                spec: WorkloadSpec::new("docker.io/library/nginx:1.27"),
            },
        ))
        .await
        .context("proposing CreateWorkload")?;
    match applied.result {
        CommandResult::WorkloadCreated { workload } => Ok(workload),
        other => bail!("CreateWorkload answered {other:?}"),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let raft_dir = dir.path().join("raft");

    // The node's transport: in-memory here; a real deployment passes its QUIC endpoint.
    let net = MemNetwork::new(1);
    let identity = PeerIdentity {
        cluster: CLUSTER.into(),
        role: Role::Coordinator,
        node: NODE,
    };
    // Raft traffic rides on the Fabric's own router.
    let service = RaftService::new(CLUSTER);
    let mut router = Router::new();
    service.register(&mut router);

    let mut agent = AgentConfig::new(dir.path().join("agent"));
    agent.heartbeat_interval = Duration::from_millis(200);
    agent.zone = "home-1".into();

    let runtime = FakeRuntime::new();
    let fabric = Fabric::builder()
        .coordinator(CoordinatorConfig::default())
        .router(router)
        .consensus_with(move |transport, client| async move {
            let config = RaftConsensusConfig::new(NODE, CLUSTER, raft_dir);
            let raft = RaftConsensus::start(config, transport, client, &service).await?;
            raft.initialize(BTreeMap::from([(NODE, addr_of(NODE))]))
                .await?;
            // A fresh single-member cluster elects itself; wait for that before serving.
            let mut metrics = raft.raft().metrics();
            tokio::time::timeout(
                Duration::from_secs(30),
                metrics.wait_for(|m| m.current_leader == Some(NODE.0)),
            )
            .await??;
            Ok(Arc::new(raft) as Arc<dyn Consensus>)
        })
        .transport(net.endpoint(identity))
        .agent(agent)
        .runtime(runtime.clone())
        .resources(FixedResourceProbe(HostResources {
            cpu_millis: 4000,
            memory_mib: 8192,
            storage_gib: 64,
            power: Some(PowerSource::Mains),
        }))
        .build()
        .context("building the fabric")?
        .start()
        .await
        .context("starting the fabric")?;
    println!(
        "[{:>5} ms] node {} started: coordinator={} agent={}",
        started.elapsed().as_millis(),
        fabric.node().0,
        fabric.coordinator().is_some(),
        fabric.agent().is_some()
    );

    let consensus = fabric
        .consensus()
        .context("the coordinator role has consensus")?;
    let workload = create_workload(consensus.as_ref(), "web").await?;
    println!(
        "[{:>5} ms] created workload {workload:?} through raft",
        started.elapsed().as_millis()
    );

    // Generous: CI runs this on a loaded 2-core machine; it usually takes well under a second.
    let deadline = Instant::now() + Duration::from_secs(60);
    let replica = loop {
        let state = consensus.state().await.context("reading cluster state")?;
        if let Some(r) = state
            .replicas
            .values()
            .find(|r| r.workload == workload && r.phase == ReplicaPhase::Running && r.ready)
        {
            break r.clone();
        }
        if Instant::now() > deadline {
            bail!("no replica of {workload:?} became Running within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "[{:>5} ms] replica on node {} is {:?} (ready={})",
        started.elapsed().as_millis(),
        replica.node.0,
        replica.phase,
        replica.ready
    );

    let running = runtime
        .list()
        .await
        .context("listing containers")?
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .count();
    println!("           runtime reports {running} running container(s)");
    if running != 1 {
        bail!("expected 1 running container, the runtime has {running}");
    }
    if let Some(s) = fabric.agent_snapshot() {
        println!(
            "           agent: control reachable={}, heartbeats acked={}",
            s.control_reachable, s.heartbeats_acked
        );
    }

    fabric.shutdown().await;
    println!(
        "[{:>5} ms] node shut down gracefully (containers are left running by design)",
        started.elapsed().as_millis()
    );
    Ok(())
}
