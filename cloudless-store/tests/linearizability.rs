//! Linearizability of the raft `Consensus` under faults: concurrent clients read, write and
//! compare-and-set registers through `propose` / `state()` on a 3-member cluster while a
//! seeded nemesis crashes, restarts and partitions members; the recorded history is checked
//! with `cloudless_store::linearizability`. A second test turns on the injected stale-read bug
//! and shows the checker catches it.
//!
//! Registers are workloads: the value is the number in the image name `reg:<n>`; a write is
//! `UpdateWorkload` without a precondition (every written value is unique, so every write
//! bumps the generation); a compare-and-set is `UpdateWorkload` with the generation the
//! client read together with the value it expects — since values are unique, "the generation
//! is still g" is exactly "the value is still the one read at g". A read is `state()`.
//!
//! `CLOUDLESS_LIN_RUNS` (default 200) and `CLOUDLESS_LIN_SEED` (default 0) choose the seeds;
//! `scripts/lin-check.sh N` runs N of them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap to fail loudly.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cloudless_core::consensus::{Consensus, ConsensusError};
use cloudless_core::ids::{Generation, NodeId, WorkloadId};
use cloudless_core::state::{ApplyError, ClusterState, Command, CommandEnvelope, CommandResult};
use cloudless_core::workload::WorkloadSpec;
use cloudless_store::linearizability::{
    Operation, Register, RegisterInput, RegisterOutput, Verdict, check,
};
use cloudless_store::{RaftConsensus, Timeouts};
use common::Cluster;
use common::commands::T0;
use futures::StreamExt;
use tempfile::TempDir;
use tokio::sync::Mutex;

const MEMBERS: u64 = 3;
const KEYS: u64 = 2;
const CLIENTS: u64 = 3;
const OPS_PER_CLIENT: u64 = 12;
const FAULTS: u64 = 3;
const PARALLEL_RUNS: usize = 4;

type Op = Operation<RegisterInput, RegisterOutput>;

/// xorshift64*: a small seeded generator for the schedule and the clients' choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Fast timings: elections in a few hundred ms so a run with crashes stays short.
fn fast_timeouts() -> Timeouts {
    Timeouts {
        heartbeat: Duration::from_millis(30),
        election_min: Duration::from_millis(200),
        election_max: Duration::from_millis(400),
        snapshot_chunk: Duration::from_secs(2),
    }
}

/// Data on tmpfs when there is one: the test is about ordering, not about the disk, and an
/// fsync there is nearly free, so hundreds of runs fit in CI time. The code path (redb files,
/// durable commits) is the same.
fn data_dir() -> TempDir {
    TempDir::new_in("/dev/shm").unwrap_or_else(|_| TempDir::new().unwrap())
}

struct Run {
    cluster: Mutex<Cluster>,
    clock: AtomicU64,
    history: std::sync::Mutex<Vec<Op>>,
    keys: Vec<WorkloadId>,
    stale_reads: bool,
    clients_done: AtomicBool,
}

impl Run {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    async fn handle(&self, id: u64) -> Option<RaftConsensus> {
        let c = self.cluster.lock().await;
        c.members.get(&id).map(|m| m.consensus.clone())
    }

    fn record(&self, op: Op) {
        self.history.lock().unwrap().push(op);
    }
}

/// A register as read from `state`: its generation and value, or `None` if the workload is
/// absent (a read from before its creation, which the clients never start before).
fn register_of(state: &ClusterState, id: WorkloadId) -> Option<(Generation, u64)> {
    let w = state.workloads.get(&id)?;
    let value = w
        .spec
        .image
        .strip_prefix("reg:")
        .and_then(|n| n.parse().ok())
        .expect("register image is reg:<n>");
    Some((w.generation, value))
}

/// The value recorded for a read that did not find the register: no write produces it, so
/// the checker rejects it like any other impossible read.
const ABSENT: u64 = u64::MAX;

fn update(id: WorkloadId, expected: Option<Generation>, value: u64) -> CommandEnvelope {
    CommandEnvelope::new(
        T0,
        Command::UpdateWorkload {
            workload: id,
            expected_generation: expected,
            spec: WorkloadSpec::new(format!("reg:{value}")),
        },
    )
}

/// One client: `OPS_PER_CLIENT` operations, each sent to the member it believes leads
/// (reads go to a random member when stale reads are injected).
async fn client(run: Arc<Run>, id: u64, seed: u64) {
    let mut rng = Rng::new(seed ^ (id << 32));
    let mut target = 1 + rng.below(MEMBERS);
    // The (generation, value) this client last read per key, for compare-and-set.
    let mut seen: BTreeMap<u64, (Generation, u64)> = BTreeMap::new();
    let mut serial = 0;
    let mut done = 0;
    let mut attempts = 0;
    while done < OPS_PER_CLIENT && attempts < 20 * OPS_PER_CLIENT {
        attempts += 1;
        let key = rng.below(KEYS);
        let wid = run.keys[usize::try_from(key).unwrap()];
        let kind = rng.below(3);
        let to = if kind == 0 && run.stale_reads {
            1 + rng.below(MEMBERS)
        } else {
            target
        };
        let Some(member) = run.handle(to).await else {
            target = 1 + rng.below(MEMBERS);
            continue;
        };
        let call = run.tick();
        let cas = if kind == 2 {
            seen.get(&key).copied()
        } else {
            None
        };
        let (input, outcome) = match (kind, cas) {
            (1, _) => {
                serial += 1;
                let value = id * 1_000_000 + serial;
                let written = member.propose(update(wid, None, value)).await;
                let ret = run.tick();
                let outcome = match written {
                    Ok(_) => Ok(Some((ret, RegisterOutput::Written))),
                    Err(ConsensusError::Rejected(e)) => panic!("write rejected: {e}"),
                    Err(e) => Err(e),
                };
                (RegisterInput::Write(value), outcome)
            }
            (_, Some((generation, expected))) => {
                serial += 1;
                let new = id * 1_000_000 + serial;
                seen.remove(&key);
                let swapped = member.propose(update(wid, Some(generation), new)).await;
                let ret = run.tick();
                let outcome = match swapped {
                    Ok(_) => Ok(Some((ret, RegisterOutput::Swapped(true)))),
                    Err(ConsensusError::Rejected(ApplyError::GenerationConflict { .. })) => {
                        Ok(Some((ret, RegisterOutput::Swapped(false))))
                    }
                    Err(ConsensusError::Rejected(e)) => panic!("CAS rejected oddly: {e}"),
                    Err(e) => Err(e),
                };
                (RegisterInput::Cas { expected, new }, outcome)
            }
            _ => {
                let read = member.state().await;
                let ret = run.tick();
                match read {
                    Ok(state) => {
                        let value = match register_of(&state, wid) {
                            Some((generation, value)) => {
                                seen.insert(key, (generation, value));
                                value
                            }
                            None => ABSENT,
                        };
                        (
                            RegisterInput::Read,
                            Ok(Some((ret, RegisterOutput::Value(value)))),
                        )
                    }
                    Err(e) => (RegisterInput::Read, Err(e)),
                }
            }
        };
        let response = match outcome {
            Ok(response) => response,
            // Not the leader: nothing was proposed (or it was truncated); retry at the hint.
            Err(ConsensusError::NotLeader { leader }) => {
                target = leader.map_or_else(|| 1 + rng.below(MEMBERS), |l| l.0);
                continue;
            }
            // A failed read has no effect and is simply not recorded.
            Err(_) if input == RegisterInput::Read => {
                target = 1 + rng.below(MEMBERS);
                continue;
            }
            // Timed out, shut down: the write may or may not have taken effect.
            Err(_) => {
                target = 1 + rng.below(MEMBERS);
                None
            }
        };
        run.record(Operation {
            client: id,
            key,
            input,
            call,
            response,
        });
        done += 1;
    }
}

/// The nemesis: up to `FAULTS` times while the clients run, after a seeded pause, crash a
/// member or cut one off from the others, then after another pause restart or heal it. At
/// most one member is faulty at a time, so a majority can always make progress.
async fn nemesis(run: Arc<Run>, seed: u64) -> u64 {
    let mut rng = Rng::new(seed ^ 0xfa17);
    let mut faults = 0;
    for _ in 0..FAULTS {
        tokio::time::sleep(Duration::from_millis(5 + rng.below(40))).await;
        if run.clients_done.load(Ordering::SeqCst) {
            return faults;
        }
        faults += 1;
        let victim = 1 + rng.below(MEMBERS);
        let crash = rng.below(2) == 0;
        {
            let mut c = run.cluster.lock().await;
            if crash {
                c.crash(victim).await;
            } else {
                let others: Vec<NodeId> =
                    (1..=MEMBERS).filter(|&n| n != victim).map(NodeId).collect();
                c.net.partition(&[NodeId(victim)], &others);
            }
        }
        tokio::time::sleep(Duration::from_millis(30 + rng.below(200))).await;
        let mut c = run.cluster.lock().await;
        if crash {
            c.start_member(victim).await;
            if run.stale_reads {
                c.member(victim).inject_stale_reads(true);
            }
        } else {
            c.net.heal();
        }
    }
    faults
}

/// Creates register `k` (a workload `lin/reg-<k>` holding 0) before the clients start, as a
/// client would: at the current leader, again after a leader change or a timeout (the fast
/// election timeouts depose leaders readily on a loaded machine), and looked up by name when an
/// earlier attempt whose outcome was unknown created it after all.
async fn create_register(cluster: &Cluster, k: u64) -> WorkloadId {
    let name = format!("reg-{k}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let leader = cluster.member(cluster.wait_leader(&[]).await).clone();
        if let Ok(state) = leader.state().await
            && let Some(w) = state
                .workloads
                .values()
                .find(|w| w.namespace == "lin" && w.name == name)
        {
            return w.id;
        }
        let created = leader
            .propose(CommandEnvelope::new(
                T0,
                Command::CreateWorkload {
                    namespace: "lin".into(),
                    name: name.clone(),
                    labels: BTreeMap::new(),
                    spec: WorkloadSpec::new("reg:0"),
                },
            ))
            .await;
        match created {
            Ok(applied) => match applied.result {
                CommandResult::WorkloadCreated { workload } => return workload,
                other => panic!("unexpected result {other:?}"),
            },
            // Created by an earlier attempt: the read above finds it next time.
            Err(ConsensusError::Rejected(ApplyError::AlreadyExists { .. })) => {}
            Err(e @ ConsensusError::Rejected(_)) => panic!("creating {name}: {e}"),
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "creating {name}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Runs one seeded workload and returns its history.
async fn run_once(seed: u64, stale_reads: bool) -> (Vec<Op>, u64) {
    let tweak: common::Tweak = Arc::new(|c| {
        c.with_timeouts(fast_timeouts())
            .with_propose_timeout(Duration::from_millis(600))
    });
    let cluster = Cluster::start_in(MEMBERS, seed, tweak, data_dir()).await;
    let mut keys = Vec::new();
    for k in 0..KEYS {
        keys.push(create_register(&cluster, k).await);
    }
    if stale_reads {
        for m in cluster.members.values() {
            m.consensus.inject_stale_reads(true);
        }
    }
    let run = Arc::new(Run {
        cluster: Mutex::new(cluster),
        clock: AtomicU64::new(0),
        history: std::sync::Mutex::new(Vec::new()),
        keys,
        stale_reads,
        clients_done: AtomicBool::new(false),
    });
    let mut tasks = Vec::new();
    for id in 1..=CLIENTS {
        tasks.push(tokio::spawn(client(Arc::clone(&run), id, seed)));
    }
    let faults = tokio::spawn(nemesis(Arc::clone(&run), seed));
    for t in tasks {
        t.await.unwrap();
    }
    run.clients_done.store(true, Ordering::SeqCst);
    let faults = faults.await.unwrap();
    run.cluster.lock().await.shutdown().await;
    let history = std::mem::take(&mut *run.history.lock().unwrap());
    (history, faults)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn describe(history: &[Op], key: u64) -> String {
    let mut ops: Vec<&Op> = history.iter().filter(|o| o.key == key).collect();
    ops.sort_by_key(|o| o.call);
    ops.iter()
        .map(|o| format!("  {o:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_runs_under_crashes_and_partitions_are_linearizable() {
    let runs = env_u64("CLOUDLESS_LIN_RUNS", 200);
    let first = env_u64("CLOUDLESS_LIN_SEED", 0);
    let started = std::time::Instant::now();
    let (mut ops, mut unknown, mut faults) = (0, 0, 0);
    // Runs are independent (own network, own files); a few at a time keep both cores busy
    // while members wait on timers.
    let mut results = futures::stream::iter(first..first + runs)
        .map(|seed| async move { (seed, run_once(seed, false).await) })
        .buffer_unordered(PARALLEL_RUNS);
    while let Some((seed, (history, f))) = results.next().await {
        faults += f;
        ops += history.len();
        unknown += history.iter().filter(|o| o.response.is_none()).count();
        match check(&Register::default(), &history) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable { key, .. } => panic!(
                "seed {seed}: history of key {key} is not linearizable:\n{}",
                describe(&history, key)
            ),
            other => panic!("seed {seed}: {other:?}"),
        }
    }
    eprintln!(
        "{runs} seeded runs, {faults} faults, {ops} operations ({unknown} with unknown \
         outcome), all linearizable, in {:?}",
        started.elapsed()
    );
    assert!(ops > 0 && faults > 0);
}

/// With reads served from any member's local state (no read-index), some seed yields a
/// history the checker rejects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_catches_injected_stale_reads() {
    const SEEDS: u64 = 20;
    for seed in 0..SEEDS {
        let (history, _) = run_once(seed, true).await;
        if let Verdict::NotLinearizable { key, .. } = check(&Register::default(), &history) {
            eprintln!(
                "seed {seed}: stale read caught on key {key}:\n{}",
                describe(&history, key)
            );
            return;
        }
    }
    panic!("no stale read caught in {SEEDS} seeds");
}
