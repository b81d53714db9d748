//! Host ports are a per-node resource: a replica may not go where a replica already publishes
//! one of its `(hostPort, protocol)` pairs — existing replicas holding reservations, of any
//! workload including its own, and the replicas this batch has placed so far.

use cloudless_core::node::Node;
use cloudless_core::scheduler::{Filter, PlacementContext, PlacementRequest, Volatility};

/// Rejects nodes where one of the replica's host ports is taken; the reason names the first
/// such port in declaration order, e.g. "host port 8080/TCP in use".
///
/// Two replicas of one workload with a host port therefore never share a node. The answer comes
/// from [`PlacementContext::host_ports`] (built once per request), so a check is a map lookup;
/// a replica without host ports — the common case — passes at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostPortFilter;

impl Filter for HostPortFilter {
    fn name(&self) -> &str {
        "host_port"
    }

    fn check(&self, ctx: &PlacementContext<'_>, node: &Node) -> Result<(), String> {
        if ctx.host_ports.wanted().is_empty() {
            return Ok(());
        }
        match ctx.host_ports.conflict(node.id) {
            None => Ok(()),
            Some(port) => Err(format!("host port {port} in use")),
        }
    }

    fn volatility(&self, request: &PlacementRequest) -> Volatility {
        // Each replica of the batch takes the request's ports on its own node only.
        if request.workload.spec.host_ports().next().is_some() {
            Volatility::OnNode
        } else {
            Volatility::Fixed
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cloudless_core::ids::{Generation, NodeId, ReplicaId, WorkloadId};
    use cloudless_core::replica::{Replica, ReplicaPhase};
    use cloudless_core::resources::Resources;
    use cloudless_core::scheduler::{ClusterSnapshot, HostPortsInUse, TopologyCounts};
    use cloudless_core::workload::{ContainerPort, Protocol, Workload};

    use super::*;
    use crate::pipeline::synthetic::{SyntheticCluster, request, workload};

    fn port(name: &str, host: Option<u16>, protocol: Protocol) -> ContainerPort {
        ContainerPort {
            name: name.into(),
            container_port: 80,
            protocol,
            host_port: host,
        }
    }

    fn with_ports(id: u64, name: &str, ports: Vec<ContainerPort>) -> Workload {
        let mut w = workload(id, name, 100, 64);
        w.spec.ports = ports;
        w
    }

    fn add(snap: &mut ClusterSnapshot, w: &Workload, replica: u64, node: u64, phase: ReplicaPhase) {
        snap.workloads.insert(w.id, w.clone());
        snap.replicas.insert(
            ReplicaId(replica),
            Replica {
                id: ReplicaId(replica),
                workload: w.id,
                generation: Generation(1),
                node: NodeId(node),
                resources: Resources::ZERO,
                phase,
                ready: true,
                restarts: 0,
                address: None,
                assigned_at_ms: 0,
                message: String::new(),
                host_ports: None,
            },
        );
    }

    /// The filter's answer for every node of `snap`, in node order, after the batch placed
    /// replicas on `batch`.
    fn answers(snap: &ClusterSnapshot, w: &Workload, batch: &[u64]) -> Vec<Result<(), String>> {
        let req = request(w.clone(), 1, 7);
        let mut host_ports = HostPortsInUse::for_request(snap, &req);
        for n in batch {
            host_ports.record(NodeId(*n));
        }
        let batch: Vec<NodeId> = batch.iter().map(|n| NodeId(*n)).collect();
        let batch_free = BTreeMap::new();
        let topology = TopologyCounts::default();
        snap.nodes
            .values()
            .map(|node| {
                let ctx = PlacementContext {
                    snapshot: snap,
                    request: &req,
                    batch: &batch,
                    batch_free: &batch_free,
                    node_free: snap.free_on(node.id),
                    topology: &topology,
                    host_ports: &host_ports,
                };
                HostPortFilter.check(&ctx, node)
            })
            .collect()
    }

    fn cluster(nodes: usize) -> ClusterSnapshot {
        SyntheticCluster::new(nodes, 1).snapshot()
    }

    #[test]
    fn without_host_ports_every_node_passes_and_nothing_changes_in_a_batch() {
        let mut snap = cluster(3);
        let holder = with_ports(2, "proxy", vec![port("http", Some(8080), Protocol::Tcp)]);
        add(&mut snap, &holder, 1, 1, ReplicaPhase::Running);
        // A container port without hostPort is not a node resource.
        let w = with_ports(1, "web", vec![port("http", None, Protocol::Tcp)]);
        assert!(answers(&snap, &w, &[1, 2]).iter().all(Result::is_ok));
        let req = request(w, 1, 7);
        assert_eq!(HostPortFilter.volatility(&req), Volatility::Fixed);
        assert!(HostPortsInUse::for_request(&snap, &req).wanted().is_empty());
    }

    #[test]
    fn a_node_where_another_workload_holds_the_port_is_rejected() {
        let mut snap = cluster(3);
        let holder = with_ports(2, "proxy", vec![port("http", Some(8080), Protocol::Tcp)]);
        add(&mut snap, &holder, 1, 2, ReplicaPhase::Running);
        let w = with_ports(1, "web", vec![port("http", Some(8080), Protocol::Tcp)]);
        assert_eq!(
            answers(&snap, &w, &[]),
            vec![Ok(()), Err("host port 8080/TCP in use".to_owned()), Ok(())]
        );
        assert_eq!(
            HostPortFilter.volatility(&request(w, 1, 7)),
            Volatility::OnNode
        );
    }

    #[test]
    fn the_protocol_is_part_of_the_port() {
        let mut snap = cluster(2);
        let holder = with_ports(2, "dns", vec![port("dns", Some(53), Protocol::Udp)]);
        add(&mut snap, &holder, 1, 1, ReplicaPhase::Running);
        let tcp = with_ports(1, "web", vec![port("dns-tcp", Some(53), Protocol::Tcp)]);
        assert!(answers(&snap, &tcp, &[]).iter().all(Result::is_ok));
        let udp = with_ports(1, "web", vec![port("dns", Some(53), Protocol::Udp)]);
        assert_eq!(
            answers(&snap, &udp, &[])[0],
            Err("host port 53/UDP in use".to_owned())
        );
    }

    #[test]
    fn terminal_replicas_hold_nothing_and_running_or_stopping_ones_do() {
        let mut snap = cluster(4);
        let holder = with_ports(2, "proxy", vec![port("http", Some(8080), Protocol::Tcp)]);
        add(&mut snap, &holder, 1, 1, ReplicaPhase::Failed);
        add(&mut snap, &holder, 2, 2, ReplicaPhase::Succeeded);
        add(&mut snap, &holder, 3, 3, ReplicaPhase::Stopping);
        add(&mut snap, &holder, 4, 4, ReplicaPhase::Pending);
        let w = with_ports(1, "web", vec![port("http", Some(8080), Protocol::Tcp)]);
        let got = answers(&snap, &w, &[]);
        let busy = Err("host port 8080/TCP in use".to_owned());
        assert_eq!(got, vec![Ok(()), Ok(()), busy.clone(), busy]);
    }

    #[test]
    fn replicas_of_the_same_workload_and_of_the_batch_count() {
        let mut snap = cluster(3);
        let w = with_ports(1, "web", vec![port("http", Some(8080), Protocol::Tcp)]);
        add(&mut snap, &w, 1, 1, ReplicaPhase::Running);
        let busy = Err("host port 8080/TCP in use".to_owned());
        assert_eq!(answers(&snap, &w, &[]), vec![busy.clone(), Ok(()), Ok(())]);
        // The batch has placed one on node 3.
        assert_eq!(answers(&snap, &w, &[3]), vec![busy.clone(), Ok(()), busy]);
    }

    #[test]
    fn the_reason_names_the_first_taken_port_in_declaration_order() {
        let mut snap = cluster(1);
        let holder = with_ports(
            2,
            "proxy",
            vec![
                port("a", Some(9000), Protocol::Tcp),
                port("b", Some(8443), Protocol::Tcp),
                port("c", Some(7000), Protocol::Tcp),
            ],
        );
        add(&mut snap, &holder, 1, 1, ReplicaPhase::Running);
        let w = with_ports(
            1,
            "web",
            vec![
                port("x", Some(8080), Protocol::Tcp),
                port("y", Some(8443), Protocol::Tcp),
                port("z", Some(9000), Protocol::Tcp),
            ],
        );
        assert_eq!(
            answers(&snap, &w, &[])[0],
            Err("host port 8443/TCP in use".to_owned())
        );
    }

    #[test]
    fn the_own_workload_counts_under_the_request_s_id_even_when_missing_from_the_snapshot() {
        let mut snap = cluster(2);
        let w = with_ports(7, "web", vec![port("http", Some(80), Protocol::Tcp)]);
        add(&mut snap, &w, 1, 2, ReplicaPhase::Running);
        snap.workloads.remove(&WorkloadId(7));
        assert_eq!(
            answers(&snap, &w, &[]),
            vec![Ok(()), Err("host port 80/TCP in use".to_owned())]
        );
    }
}
