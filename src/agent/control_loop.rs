//! The agent's control-plane task: heartbeats at the period the coordinators ask for, fetches
//! the assignment set when the acknowledged revision differs from the one held, and sends
//! batched replica reports. It never blocks supervision: the agent task only receives new
//! assignment sets from it and hands it reports through a shared map.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cloudless_core::ids::{NodeId, ReplicaId, Revision};
use cloudless_core::node::{NodeReport, Platform, Reliability};
use cloudless_core::resources::Resources;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::AgentSnapshot;
use super::config::AgentConfig;
use super::resources::ResourceProbe;
use crate::control::{AssignmentSet, ControlError, ControlPlane, ReplicaReport, StoppedReplica};

/// Reports waiting for the control plane: the latest per replica.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pending: Mutex<BTreeMap<ReplicaId, ReplicaReport>>,
    stops: Mutex<Stops>,
    notify: Notify,
}

/// Stop reports waiting for the control plane (see [`StoppedReplica`]).
#[derive(Debug, Default)]
struct Stops {
    pending: BTreeMap<ReplicaId, StoppedReplica>,
    /// Replicas of the batch being sent (taken by the last `take_stops`).
    sending: BTreeSet<ReplicaId>,
    /// Replicas of that batch a newer set holds again: a failed send must not bring them back.
    withdrawn: BTreeSet<ReplicaId>,
    /// The newest set revision seen by `restate_stops`.
    latest: Revision,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<ReplicaId, ReplicaReport>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_stops(&self) -> MutexGuard<'_, Stops> {
        self.stops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the report that `stop.replica` is gone from this node.
    pub(crate) fn push_stop(&self, stop: StoppedReplica) {
        let mut stops = self.lock_stops();
        stops.withdrawn.remove(&stop.replica);
        stops.pending.insert(stop.replica, stop);
        drop(stops);
        self.notify.notify_one();
    }

    /// A new set (revision `revision`) arrived: stop reports of replicas it holds again are
    /// withdrawn (also from a batch being sent), the others now speak for this newer set.
    pub(crate) fn restate_stops(&self, revision: Revision, kept: impl Fn(ReplicaId) -> bool) {
        let mut stops = self.lock_stops();
        stops.latest = stops.latest.max(revision);
        stops.pending.retain(|r, _| !kept(*r));
        for s in stops.pending.values_mut() {
            s.set_revision = s.set_revision.max(revision);
        }
        let back: Vec<ReplicaId> = stops.sending.iter().copied().filter(|r| kept(*r)).collect();
        stops.withdrawn.extend(back);
    }

    fn take_stops(&self) -> Vec<StoppedReplica> {
        let mut stops = self.lock_stops();
        let batch = std::mem::take(&mut stops.pending);
        stops.sending = batch.keys().copied().collect();
        stops.withdrawn.clear();
        batch.into_values().collect()
    }

    /// Puts back stop reports that failed to send, unless withdrawn meanwhile (or queued anew);
    /// they now speak for the newest set seen.
    fn put_back_stops(&self, failed: Vec<StoppedReplica>) {
        let mut stops = self.lock_stops();
        let latest = stops.latest;
        for mut s in failed {
            if !stops.withdrawn.contains(&s.replica) {
                s.set_revision = s.set_revision.max(latest);
                stops.pending.entry(s.replica).or_insert(s);
            }
        }
        stops.sending.clear();
        stops.withdrawn.clear();
    }

    /// The batch being sent is done with (delivered, or refused for good).
    fn sent_stops(&self) {
        let mut stops = self.lock_stops();
        stops.sending.clear();
        stops.withdrawn.clear();
    }

    pub(crate) fn stops_len(&self) -> usize {
        self.lock_stops().pending.len()
    }

    /// Queues `report`, replacing an unsent older one of the same replica.
    pub(crate) fn push(&self, report: ReplicaReport) {
        self.lock().insert(report.replica, report);
        self.notify.notify_one();
    }

    /// Drops unsent reports of replicas not in `keep`.
    pub(crate) fn retain(&self, keep: impl Fn(ReplicaId) -> bool) {
        self.lock().retain(|r, _| keep(*r));
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn take(&self) -> Vec<ReplicaReport> {
        std::mem::take(&mut *self.lock()).into_values().collect()
    }

    /// Puts back reports that failed to send, unless a newer one was queued meanwhile.
    fn put_back(&self, reports: Vec<ReplicaReport>) {
        let mut pending = self.lock();
        for r in reports {
            pending.entry(r.replica).or_insert(r);
        }
    }
}

pub(crate) struct ControlLoop {
    pub(crate) node: NodeId,
    pub(crate) config: AgentConfig,
    pub(crate) control: Arc<dyn ControlPlane>,
    pub(crate) resources: Arc<dyn ResourceProbe>,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) held: Option<Revision>,
    pub(crate) assignments_tx: mpsc::Sender<AssignmentSet>,
    pub(crate) snapshot: Arc<watch::Sender<AgentSnapshot>>,
    pub(crate) started: Instant,
}

impl ControlLoop {
    pub(crate) async fn run(mut self) {
        let mut retry = self.config.control_retry_initial;
        let mut failures: u64 = 0;
        let mut next_heartbeat = Instant::now();
        let mut reachable = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next_heartbeat) => {}
                () = self.outbox.notify.notified(), if reachable => {
                    reachable = self.flush().await;
                    continue;
                }
            }
            match self.beat().await {
                Ok(interval) => {
                    retry = self.config.control_retry_initial;
                    failures = 0;
                    reachable = self.flush().await;
                    next_heartbeat = Instant::now() + interval;
                }
                Err(e) => {
                    reachable = false;
                    tracing::debug!(node = %self.node, error = %e, retry_ms = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX), "control plane call failed");
                    if !e.is_retryable() {
                        tracing::warn!(node = %self.node, error = %e, "control plane refused the agent; supervising the held assignments");
                        retry = self.config.control_retry_max;
                    }
                    failures += 1;
                    next_heartbeat = Instant::now() + with_jitter(retry, self.node, failures);
                    retry = (retry * 2).min(self.config.control_retry_max);
                }
            }
            self.publish(reachable, false);
        }
    }

    /// One heartbeat, and an assignment fetch if the revision moved. Returns the next period.
    async fn beat(&mut self) -> Result<Duration, ControlError> {
        let report = self.node_report();
        let ack = self.control.heartbeat(self.node, &report).await?;
        self.publish(true, true);
        if self.held != Some(ack.assignments_revision) {
            let set = self.control.assignments(self.node).await?;
            self.held = Some(set.revision);
            // The agent task is gone only during shutdown.
            let _ = self.assignments_tx.send(set).await;
        }
        Ok(ack.interval.max(Duration::from_millis(10)))
    }

    /// Sends every pending status report in one call, then every pending stop report in
    /// another; true if the control plane took them.
    async fn flush(&self) -> bool {
        let reports = self.outbox.take();
        if !reports.is_empty() {
            if let Err(e) = self.control.report(self.node, reports.clone()).await {
                tracing::debug!(node = %self.node, error = %e, "report failed; kept for later");
                self.outbox.put_back(reports);
                self.publish(false, false);
                return false;
            }
            self.publish(true, false);
        }
        let stops = self.outbox.take_stops();
        if stops.is_empty() {
            return true;
        }
        match self.control.report_stopped(self.node, stops.clone()).await {
            Ok(()) => {
                self.outbox.sent_stops();
                true
            }
            Err(e) if e.is_retryable() => {
                tracing::debug!(node = %self.node, error = %e, "stop report failed; kept for later");
                self.outbox.put_back_stops(stops);
                self.publish(false, false);
                false
            }
            Err(e) => {
                self.outbox.sent_stops();
                // E.g. a coordinator that does not take stop reports: its stop grace finishes
                // these replicas.
                tracing::debug!(node = %self.node, error = %e, replicas = stops.len(), "stop report refused; left to the coordinator's stop grace");
                true
            }
        }
    }

    fn publish(&self, reachable: bool, acked: bool) {
        let unsent = self.outbox.len() + self.outbox.stops_len();
        self.snapshot.send_modify(|s| {
            s.control_reachable = reachable;
            s.unsent_reports = unsent;
            if acked {
                s.heartbeats_acked += 1;
            }
        });
    }

    fn node_report(&self) -> NodeReport {
        build_report(&self.config, &*self.resources, self.started.elapsed())
    }
}

/// `delay` plus up to 20 % more, derived from the node and the attempt (splitmix64), so agents
/// that lost the coordinators together do not all retry in the same instant, yet every run of
/// one node is reproducible.
pub(crate) fn with_jitter(delay: Duration, node: NodeId, attempt: u64) -> Duration {
    let mut z = node
        .get()
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(attempt);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let max_extra = u64::try_from(delay.as_micros() / 5).unwrap_or(u64::MAX);
    let extra = if max_extra == 0 { 0 } else { z % max_extra };
    delay + Duration::from_micros(extra)
}

/// The heartbeat's resource report: detected capacity (config overrides win) minus the reserve.
pub(crate) fn build_report(
    config: &AgentConfig,
    probe: &dyn ResourceProbe,
    uptime: Duration,
) -> NodeReport {
    let host = match probe.probe(&config.data_dir) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "resource probe failed; reporting configured values only");
            Default::default()
        }
    };
    let capacity = Resources {
        cpu_millis: config.cpu_millis.unwrap_or(host.cpu_millis),
        memory_mib: config.memory_mib.unwrap_or(host.memory_mib),
        storage_gib: config.storage_gib.unwrap_or(host.storage_gib),
        storage_iops: config.storage_iops,
        egress_mbps: config.egress_mbps,
        gpus: 0,
    };
    NodeReport {
        platform: config.platform.clone().unwrap_or_else(host_platform),
        region: config.region.clone(),
        zone: config.zone.clone(),
        labels: config.labels.clone(),
        capacity,
        allocatable: capacity.saturating_sub(&config.reserved),
        power: config.power.or(host.power).unwrap_or_default(),
        reliability: Reliability {
            uptime_secs: uptime.as_secs(),
            recent_failures: 0,
        },
    }
}

/// The platform this agent was built for, in OCI terms.
pub(crate) fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        architecture: architecture.to_owned(),
        os: std::env::consts::OS.to_owned(),
        variant: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reports_are_restated_by_newer_sets_and_withdrawn_when_held_again() {
        let outbox = Outbox::default();
        let stop = |r: u64, rev: u64| StoppedReplica {
            replica: ReplicaId(r),
            set_revision: Revision(rev),
        };
        outbox.push_stop(stop(1, 5));
        outbox.push_stop(stop(2, 5));
        // A newer set leaves 1 out still and holds 2 again.
        outbox.restate_stops(Revision(7), |r| r == ReplicaId(2));
        assert_eq!(outbox.stops_len(), 1);
        let batch = outbox.take_stops();
        assert_eq!(batch, vec![stop(1, 7)]);
        // While the batch is in flight a set holds 1 again: a failed send does not bring it back.
        outbox.restate_stops(Revision(8), |r| r == ReplicaId(1));
        outbox.put_back_stops(batch);
        assert_eq!(outbox.stops_len(), 0);
        // Otherwise a failed batch is kept.
        outbox.push_stop(stop(3, 9));
        let batch = outbox.take_stops();
        outbox.put_back_stops(batch);
        assert_eq!(outbox.take_stops(), vec![stop(3, 9)]);
    }

    #[test]
    fn jitter_is_bounded_deterministic_and_differs_between_nodes() {
        let d = Duration::from_secs(10);
        let a: Vec<Duration> = (1..50).map(|i| with_jitter(d, NodeId(1), i)).collect();
        assert!(a.iter().all(|x| *x >= d && *x <= d + d / 5));
        assert_eq!(
            a,
            (1..50)
                .map(|i| with_jitter(d, NodeId(1), i))
                .collect::<Vec<_>>()
        );
        assert_ne!(with_jitter(d, NodeId(1), 1), with_jitter(d, NodeId(2), 1));
        assert_eq!(with_jitter(Duration::ZERO, NodeId(1), 1), Duration::ZERO);
    }
}
