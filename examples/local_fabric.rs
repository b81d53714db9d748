//! A local Cloudless fabric in one process (the multi-process one, with the daemons, is
//! `scripts/run-local-fabric.sh`), on a real containerd: one coordinator (a
//! single-member `RaftConsensus` on redb) and three agents in three zones, each with its own
//! containerd namespace and CNI bridge. It deploys `examples/manifests/web.yaml` (busybox httpd,
//! 3 replicas spread over the zones), fetches the page from every replica, then loses one agent
//! (the agent stops and its containers are killed, as when a device disappears) and shows the
//! coordinator marking the node Down and the replacement serving on another agent.
//!
//! ```text
//!   containerd (private, from scripts/run-local-fabric-inprocess.sh: root/state/socket in a temp dir)
//!      ▲            ▲            ▲
//!   agent n2     agent n3     agent n4      namespaces <tag>-agent-{1,2,3}, bridges <tag>b{1,2,3}
//!   zone-a       zone-b       zone-c
//!      └── in-process ControlPlane ──▶ coordinator n1 ──▶ RaftConsensus (1 member, redb)
//! ```
//!
//! Run it through `./scripts/run-local-fabric-inprocess.sh`, which installs what is missing,
//! starts the private containerd, passes its socket, and removes everything afterwards (also on
//! Ctrl-C). By hand (as root, with a containerd already listening on SOCKET):
//!
//! ```text
//! cargo run --example local_fabric -- --socket SOCKET --work-dir DIR --cgroup-parent /NAME \
//!     --tag TAG --manifest examples/manifests/web.yaml
//! ```
//!
//! Exit code 0 only if every step succeeded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cloudless::agent::{Agent, AgentConfig, AgentDeps, AgentHandle, ProcResourceProbe};
use cloudless::coordinator::{Coordinator, CoordinatorConfig, CoordinatorDeps, CoordinatorHandle};
use cloudless_core::clock::{Clock, SystemClock};
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::{NodeId, ReplicaId, WorkloadId};
use cloudless_core::manifest::{ManifestSpec, parse_file};
use cloudless_core::node::Liveness;
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::runtime::Runtime;
use cloudless_core::state::{ClusterState, Command, CommandEnvelope, CommandResult};
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::mem::{MemNetwork, addr_of};
use cloudless_net::{Router, RpcConfig, RpcEndpoint};
use cloudless_runtime::containerd::BridgeNetwork;
use cloudless_runtime::{ContainerdConfig, ContainerdRuntime, busybox};
use cloudless_sched::{SchedulerConfig, WeightedScheduler};
use cloudless_store::{RaftConsensus, RaftConsensusConfig, RaftService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// The coordinator's node id (its raft member id).
const COORDINATOR: NodeId = NodeId(1);
/// Zones of the three agents (nodes 2, 3, 4).
const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
/// The port the workload serves on.
const PORT: u16 = 8080;
/// How long an HTTP GET of a replica may take.
const HTTP_PATIENCE: Duration = Duration::from_secs(3);
/// Raft cluster name.
const CLUSTER: &str = "local";

static START: OnceLock<Instant> = OnceLock::new();

fn elapsed() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

macro_rules! say {
    ($($arg:tt)*) => {
        println!("[{:>6.2}s] {}", elapsed(), format!($($arg)*))
    };
}

/// Command-line settings (all given by `scripts/run-local-fabric-inprocess.sh`).
struct Args {
    socket: PathBuf,
    work_dir: PathBuf,
    cgroup_parent: String,
    tag: String,
    manifest: PathBuf,
    subnet_octet: u8,
    timeout: Duration,
}

fn usage() -> String {
    "usage: local_fabric --socket PATH --work-dir DIR --cgroup-parent /NAME --tag TAG \
     --manifest FILE [--subnet-octet N (0..=252)] [--timeout-secs N]"
        .to_owned()
}

fn parse_args() -> Result<Args> {
    let mut flags = BTreeMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(name) = flag.strip_prefix("--") else {
            bail!("unexpected argument {flag:?}\n{}", usage());
        };
        let value = it
            .next()
            .ok_or_else(|| anyhow!("--{name} needs a value\n{}", usage()))?;
        flags.insert(name.to_owned(), value);
    }
    let mut take = |name: &str| {
        flags
            .remove(name)
            .ok_or_else(|| anyhow!("--{name} is required\n{}", usage()))
    };
    let tag = take("tag")?;
    if tag.is_empty()
        || tag.len() > 12
        || !tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        bail!(
            "--tag {tag:?}: 1 to 12 lowercase letters or digits (it names bridges and namespaces)"
        );
    }
    let cgroup_parent = take("cgroup-parent")?;
    if !cgroup_parent.starts_with('/') {
        bail!("--cgroup-parent {cgroup_parent:?} must start with '/'");
    }
    let args = Args {
        socket: take("socket")?.into(),
        work_dir: take("work-dir")?.into(),
        manifest: take("manifest")?.into(),
        cgroup_parent,
        tag,
        subnet_octet: match flags.remove("subnet-octet") {
            None => 0,
            Some(s) => match s.parse::<u8>() {
                Ok(n) if n <= 252 => n,
                _ => bail!("--subnet-octet {s:?}: a number 0..=252"),
            },
        },
        timeout: match flags.remove("timeout-secs") {
            None => Duration::from_secs(120),
            Some(s) => Duration::from_secs(
                s.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| anyhow!("--timeout-secs {s:?}: a positive number"))?,
            ),
        },
    };
    if let Some(unknown) = flags.keys().next() {
        bail!("unknown flag --{unknown}\n{}", usage());
    }
    Ok(args)
}

/// One agent of the demo: its node, zone, runtime and (while it runs) its handle.
struct DemoAgent {
    node: NodeId,
    zone: &'static str,
    runtime: ContainerdRuntime,
    handle: Option<AgentHandle>,
}

/// Everything the demo started, so it can be stopped in order on success and on error.
struct Fabric {
    consensus: RaftConsensus,
    _raft_endpoint: RpcEndpoint,
    coordinator: Option<CoordinatorHandle>,
    agents: Vec<DemoAgent>,
    observer: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    START.get_or_init(Instant::now);
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("local_fabric: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut fabric: Option<Fabric> = None;
    let result = run(&args, &mut fabric).await;
    if let Err(e) = &result {
        say!("FAILED: {e:#}");
    }
    let clean = match fabric {
        Some(f) => teardown(f).await,
        None => true,
    };
    match (result, clean) {
        (Ok(()), true) => {
            say!("done: every step succeeded");
            ExitCode::SUCCESS
        }
        (Ok(()), false) => {
            say!("FAILED: the fabric did not shut down cleanly");
            ExitCode::FAILURE
        }
        (Err(_), _) => ExitCode::FAILURE,
    }
}

async fn run(args: &Args, slot: &mut Option<Fabric>) -> Result<()> {
    // The workload, through core's strict manifest parser.
    let manifests = parse_file(&args.manifest)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("parsing {}", args.manifest.display()))?;
    let [manifest] = manifests.as_slice() else {
        bail!(
            "{}: expected exactly one manifest, found {}",
            args.manifest.display(),
            manifests.len()
        );
    };
    let ManifestSpec::Workload(spec) = &manifest.spec else {
        bail!(
            "{}: expected a Workload, found a {}",
            args.manifest.display(),
            manifest.kind().as_str()
        );
    };
    let (namespace, name) = (&manifest.metadata.namespace, &manifest.metadata.name);
    if spec.replicas == 0 || spec.replicas as usize > ZONES.len() {
        bail!(
            "{}: the demo runs one replica per zone on {} zones; replicas must be 1..={}, not {}",
            args.manifest.display(),
            ZONES.len(),
            ZONES.len(),
            spec.replicas
        );
    }
    say!(
        "manifest {}: workload {namespace}/{name}, image {}, {} replicas",
        args.manifest.display(),
        spec.image,
        spec.replicas
    );

    // The image, from the host's static busybox.
    let bb = busybox::find_busybox()?;
    let archive = args.work_dir.join("busybox-oci.tar");
    busybox::write_oci_layout(&bb, &archive)?;
    say!(
        "built image {} from {} ({} KiB OCI layout, no network)",
        busybox::IMAGE,
        bb.display(),
        std::fs::metadata(&archive)
            .map(|m| m.len() / 1024)
            .unwrap_or(0)
    );

    // Consensus: one raft member on redb.
    let (consensus, raft_endpoint) = start_consensus(&args.work_dir.join("coordinator")).await?;
    say!(
        "consensus: raft member {COORDINATOR} leads (redb in {})",
        args.work_dir.join("coordinator").display()
    );
    let fabric = slot.insert(Fabric {
        consensus: consensus.clone(),
        _raft_endpoint: raft_endpoint,
        coordinator: None,
        agents: Vec::new(),
        observer: None,
    });

    // The coordinator.
    let scheduler = WeightedScheduler::new(SchedulerConfig::default())
        .map_err(|e| anyhow!("scheduler: {e}"))?;
    let coordinator_config = CoordinatorConfig::default();
    let coordinator = Coordinator::start(
        coordinator_config.clone(),
        CoordinatorDeps {
            node: COORDINATOR,
            consensus: Arc::new(consensus.clone()),
            scheduler: Arc::new(scheduler),
            clock: Arc::new(SystemClock),
        },
    )
    .await
    .context("starting the coordinator")?;
    let control = coordinator.control_plane();
    wait_for(Duration::from_secs(20), "the coordinator to lead", || {
        coordinator.is_leader().then_some(())
    })
    .await?;
    fabric.coordinator = Some(coordinator);
    say!(
        "coordinator {COORDINATOR} started (node Down after {} ms of silence)",
        coordinator_config.down_after.as_millis()
    );

    // Three agents, one per zone, each with its own containerd namespace and bridge. They
    // register one after the other: node ids are claimed in increasing order.
    for (i, zone) in ZONES.iter().enumerate() {
        let n = i as u8 + 1;
        let node = NodeId(2 + i as u64);
        let ns = format!("{}-agent-{n}", args.tag);
        let bridge = format!("{}b{n}", args.tag);
        let subnet = format!("10.231.{}.0/24", args.subnet_octet + n);
        let dir = args.work_dir.join(format!("agent-{n}"));
        let mut cfg = ContainerdConfig::new(&args.socket, &ns, dir.join("runtime"));
        cfg.cgroup_parent = args.cgroup_parent.clone();
        cfg.bridge = Some(BridgeNetwork::new(&bridge, &subnet));
        let runtime = ContainerdRuntime::connect(cfg).await.with_context(|| {
            format!(
                "agent {n}: connecting to containerd at {}",
                args.socket.display()
            )
        })?;
        let images = runtime
            .import_image(&archive)
            .await
            .with_context(|| format!("agent {n}: importing {}", archive.display()))?;
        let digest = images.first().map(|i| i.digest.clone()).unwrap_or_default();
        say!(
            "agent {n} ({node}, {zone}): containerd namespace {ns}, bridge {bridge} {subnet}, image {}",
            short(&digest)
        );
        let mut config = AgentConfig::new(dir.join("state"));
        config.region = "local".into();
        config.zone = (*zone).into();
        let handle = Agent::start(
            config,
            AgentDeps {
                node,
                control: Arc::clone(&control),
                runtime: Arc::new(runtime.clone()),
                clock: Arc::new(SystemClock),
                resources: Arc::new(ProcResourceProbe),
            },
        )
        .await
        .with_context(|| format!("starting agent {n}"))?;
        fabric.agents.push(DemoAgent {
            node,
            zone,
            runtime,
            handle: Some(handle),
        });
        wait_for(
            Duration::from_secs(20),
            &format!("{node} to register"),
            || {
                let state = consensus.local_state();
                state
                    .nodes
                    .get(&node)
                    .filter(|n| n.liveness == Liveness::Ready)
                    .map(|_| ())
            },
        )
        .await?;
        say!("agent {n}: registered as {node}, Ready");
    }

    // From here on, every change of the workload's replicas and every cluster event is printed.
    let (stop_tx, stop_rx) = watch::channel(false);
    let observer = tokio::spawn(observe(consensus.clone(), stop_rx));
    fabric.observer = Some((stop_tx, observer));

    // Deploy.
    let deployed_at = Instant::now();
    let applied = consensus
        .propose(CommandEnvelope::new(
            SystemClock.now_ms(),
            Command::CreateWorkload {
                namespace: namespace.clone(),
                name: name.clone(),
                labels: manifest.metadata.labels.clone(),
                spec: spec.clone(),
            },
        ))
        .await
        .context("creating the workload")?;
    let workload = match applied.result {
        CommandResult::WorkloadCreated { workload } => workload,
        other => bail!("creating the workload: unexpected result {other:?}"),
    };
    say!(
        "deployed {namespace}/{name} as {workload} at {}",
        applied.revision
    );

    let want = spec.replicas as usize;
    let zones: BTreeMap<NodeId, &str> = fabric.agents.iter().map(|a| (a.node, a.zone)).collect();
    let zone_of = |node: NodeId| zones.get(&node).copied().unwrap_or("?");
    let serving = wait_for(
        args.timeout,
        &format!("{want} replicas Running and ready, one per zone"),
        || {
            let state = consensus.local_state();
            let ready = ready_replicas(&state, workload);
            let zones: BTreeSet<&str> = ready.iter().map(|r| zone_of(r.node)).collect();
            (ready.len() == want && zones.len() == want).then_some(ready)
        },
    )
    .await
    .map_err(|e| {
        anyhow!(
            "{e:#}\n{}",
            replica_table(&consensus.local_state(), workload)
        )
    })?;
    say!(
        "{want} replicas Running and ready, one per zone, {:.2} s after the deploy",
        deployed_at.elapsed().as_secs_f64()
    );
    for r in &serving {
        let addr = r
            .address
            .clone()
            .ok_or_else(|| anyhow!("{} has no address", r.id))?;
        let page = http_get(&addr, PORT, HTTP_PATIENCE)
            .await
            .with_context(|| format!("GET http://{addr}:{PORT}/ ({})", r.id))?;
        say!(
            "GET http://{addr}:{PORT}/  ({}, {} {}) -> {}",
            r.id,
            r.node,
            zone_of(r.node),
            page.trim()
        );
    }

    // Lose the agent of the last zone: the agent stops and its containers are killed.
    // The agent holding the replica with the highest node id (zone-c with 3 replicas).
    let lost_replica = serving
        .iter()
        .max_by_key(|r| r.node)
        .cloned()
        .ok_or_else(|| anyhow!("no serving replica"))?;
    let lost = fabric
        .agents
        .iter_mut()
        .find(|a| a.node == lost_replica.node)
        .ok_or_else(|| anyhow!("{} is not one of the demo's agents", lost_replica.node))?;
    let (lost_node, lost_zone) = (lost.node, lost.zone);
    say!(
        "--- losing agent {lost_node} ({lost_zone}): stopping the agent and killing its containers ---"
    );
    let lost_at = Instant::now();
    if let Some(h) = lost.handle.take() {
        h.shutdown().await;
    }
    let killed = remove_all(&lost.runtime).await?;
    say!("{lost_node}: agent stopped, {killed} container(s) killed");
    wait_for(
        args.timeout,
        &format!("{lost_node} to be marked Down"),
        || {
            let state = consensus.local_state();
            (state.nodes.get(&lost_node).map(|n| n.liveness) == Some(Liveness::Down)).then_some(())
        },
    )
    .await?;
    let down_after = lost_at.elapsed();
    say!(
        "coordinator marked {lost_node} Down {:.2} s after the agent was lost",
        down_after.as_secs_f64()
    );
    let original: BTreeSet<ReplicaId> = serving.iter().map(|r| r.id).collect();
    let replacement = wait_for(
        args.timeout,
        "the replacement replica to be Running and ready",
        || {
            let state = consensus.local_state();
            ready_replicas(&state, workload)
                .into_iter()
                .find(|r| !original.contains(&r.id) && r.node != lost_node)
        },
    )
    .await
    .map_err(|e| {
        anyhow!(
            "{e:#}\n{}",
            replica_table(&consensus.local_state(), workload)
        )
    })?;
    let ready_after = lost_at.elapsed();
    let addr = replacement
        .address
        .clone()
        .ok_or_else(|| anyhow!("{} has no address", replacement.id))?;
    let page = http_get(&addr, PORT, HTTP_PATIENCE)
        .await
        .with_context(|| format!("GET http://{addr}:{PORT}/ ({})", replacement.id))?;
    let serving_after = lost_at.elapsed();
    say!(
        "GET http://{addr}:{PORT}/  ({}, {} {}) -> {}",
        replacement.id,
        replacement.node,
        zone_of(replacement.node),
        page.trim()
    );
    say!(
        "replacement {} on {} ({}): ready {:.2} s and serving {:.2} s after the agent was lost \
         ({lost_node} Down at {:.2} s)",
        replacement.id,
        replacement.node,
        zone_of(replacement.node),
        ready_after.as_secs_f64(),
        serving_after.as_secs_f64(),
        down_after.as_secs_f64()
    );

    // The lost copy: its address is gone, and it is no longer counted (its node is Down; the
    // ledger keeps its last report in case the node comes back, when the surplus is stopped).
    if let Some(old_addr) = &lost_replica.address {
        match http_get(old_addr, PORT, Duration::from_secs(1)).await {
            Ok(_) => bail!("{old_addr} still answers after its container was killed"),
            Err(_) => say!(
                "http://{old_addr}:{PORT}/ ({} on lost {lost_node}) no longer answers",
                lost_replica.id
            ),
        }
    }
    let state = consensus.local_state();
    let live = live_ready_replicas(&state, workload);
    let live_zones: BTreeSet<&str> = live.iter().map(|r| zone_of(r.node)).collect();
    if live.len() != want {
        bail!(
            "{} of {want} replicas ready on live nodes after the replacement\n{}",
            live.len(),
            replica_table(&state, workload)
        );
    }
    say!(
        "{want} replicas ready again on live nodes in {} ({}); {} on Down {lost_node} is not counted",
        live_zones.into_iter().collect::<Vec<_>>().join(", "),
        live.iter()
            .map(|r| format!("{} on {}", r.id, r.node))
            .collect::<Vec<_>>()
            .join(", "),
        lost_replica.id,
    );
    Ok(())
}

/// Stops everything the demo started: observer, agents, their containers, coordinator,
/// consensus. True if every step worked.
async fn teardown(mut f: Fabric) -> bool {
    say!("--- shutting down ---");
    let mut clean = true;
    if let Some((stop, task)) = f.observer.take() {
        let _ = stop.send(true);
        let _ = task.await;
    }
    for a in &mut f.agents {
        if let Some(h) = a.handle.take() {
            h.shutdown().await;
        }
    }
    let mut removed = 0;
    for a in &f.agents {
        match remove_all(&a.runtime).await {
            Ok(n) => removed += n,
            Err(e) => {
                say!("removing the containers of {}: {e:#}", a.node);
                clean = false;
            }
        }
    }
    if let Some(c) = f.coordinator.take() {
        c.shutdown().await;
    }
    f.consensus.shutdown().await;
    say!("agents and coordinator stopped, {removed} container(s) removed, raft member stopped");
    clean
}

/// Starts the single raft member with its data in `dir` and waits until it leads.
async fn start_consensus(dir: &std::path::Path) -> Result<(RaftConsensus, RpcEndpoint)> {
    let net = MemNetwork::new(1);
    let transport = Arc::new(net.endpoint(PeerIdentity {
        cluster: CLUSTER.into(),
        role: Role::Coordinator,
        node: COORDINATOR,
    }));
    let service = RaftService::new(CLUSTER);
    let mut router = Router::new();
    service.register(&mut router);
    let endpoint = RpcEndpoint::start(transport.clone(), router, RpcConfig::default())
        .context("raft RPC endpoint")?;
    let consensus = RaftConsensus::start(
        RaftConsensusConfig::new(COORDINATOR, CLUSTER, dir.join("raft")),
        transport,
        endpoint.client(),
        &service,
    )
    .await
    .context("starting the raft member")?;
    consensus
        .initialize(BTreeMap::from([(COORDINATOR, addr_of(COORDINATOR))]))
        .await
        .context("initializing the raft cluster")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = consensus.status().await;
        if matches!(&status, Ok(s) if s.leader == Some(COORDINATOR)) {
            return Ok((consensus, endpoint));
        }
        if Instant::now() > deadline {
            consensus.shutdown().await;
            bail!("the raft member did not become leader in 20 s (last status: {status:?})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 50 ms until it yields a value; an error naming `what` after `limit`.
async fn wait_for<T>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {} s waiting for {what}", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The workload's replicas that are Running and ready, by id.
fn ready_replicas(state: &ClusterState, workload: WorkloadId) -> Vec<Replica> {
    state
        .replicas
        .values()
        .filter(|r| r.workload == workload && r.phase == ReplicaPhase::Running && r.ready)
        .cloned()
        .collect()
}

/// The workload's ready replicas on nodes that count (Ready or Suspect; a Down node's last
/// report stays in the ledger but its replicas are replaced).
fn live_ready_replicas(state: &ClusterState, workload: WorkloadId) -> Vec<Replica> {
    ready_replicas(state, workload)
        .into_iter()
        .filter(|r| {
            state
                .nodes
                .get(&r.node)
                .is_some_and(|n| matches!(n.liveness, Liveness::Ready | Liveness::Suspect))
        })
        .collect()
}

/// The workload's replicas, one line each (for timeout errors).
fn replica_table(state: &ClusterState, workload: WorkloadId) -> String {
    let mut out = String::from("replicas now:");
    for r in state.replicas.values().filter(|r| r.workload == workload) {
        out.push_str(&format!(
            "\n  {} on {}: {:?} ready={} address={} {}",
            r.id,
            r.node,
            r.phase,
            r.ready,
            r.address.as_deref().unwrap_or("-"),
            r.message
        ));
    }
    out
}

/// Stops and removes every container of `runtime`'s namespace; returns how many.
async fn remove_all(runtime: &ContainerdRuntime) -> Result<usize> {
    let containers = runtime.list().await.context("listing containers")?;
    for c in &containers {
        runtime
            .remove(&c.id)
            .await
            .with_context(|| format!("removing container {}", c.id.as_str()))?;
    }
    Ok(containers.len())
}

/// GET / from `addr:port` over HTTP/1.0 within `patience`; the body of a 200 answer.
async fn http_get(addr: &str, port: u16, patience: Duration) -> Result<String> {
    let ip: std::net::IpAddr = addr
        .parse()
        .with_context(|| format!("address {addr:?} is not an IP"))?;
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect((ip, port)).await?;
        s.write_all(format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.take(64 * 1024).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(patience, exchange)
        .await
        .map_err(|_| anyhow!("no answer in {} ms", patience.as_millis()))??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP answer: {text:?}"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        bail!("answered {status:?}");
    }
    Ok(body.to_owned())
}

/// `sha256:0123456789ab…` → `sha256:0123456789ab`.
fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

/// Prints every new cluster event and every change of a replica (phase, readiness, address)
/// or a node's liveness, until `stop`.
async fn observe(consensus: RaftConsensus, mut stop: watch::Receiver<bool>) {
    let mut last_event = consensus.local_state().events.back().map(|e| e.revision);
    let mut replicas: BTreeMap<ReplicaId, (ReplicaPhase, bool, Option<String>, NodeId)> =
        BTreeMap::new();
    let mut nodes: BTreeMap<NodeId, Liveness> = BTreeMap::new();
    loop {
        let state = consensus.local_state();
        for e in &state.events {
            if last_event.is_some_and(|l| e.revision <= l) {
                continue;
            }
            say!("  event {:<18} {:<22} {}", e.reason, e.subject, e.message);
            last_event = Some(e.revision);
        }
        for n in state.nodes.values() {
            if nodes.insert(n.id, n.liveness) != Some(n.liveness) {
                say!("  node  {} ({}) is {:?}", n.id, n.report.zone, n.liveness);
            }
        }
        for r in state.replicas.values() {
            let now = (r.phase, r.ready, r.address.clone(), r.node);
            if replicas.get(&r.id) != Some(&now) {
                let ready = if r.ready { ", ready" } else { "" };
                let addr = r
                    .address
                    .as_deref()
                    .map(|a| format!(" at {a}"))
                    .unwrap_or_default();
                say!(
                    "  replica {} on {}: {:?}{ready}{addr}",
                    r.id,
                    r.node,
                    r.phase
                );
                replicas.insert(r.id, now);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => return,
        }
    }
}
