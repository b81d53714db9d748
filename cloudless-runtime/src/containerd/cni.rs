//! Container networking through the standard CNI plugins (Debian's
//! `containernetworking-plugins`): `bridge` with `host-local` IPAM on a per-agent bridge and
//! subnet, then `portmap` for published ports. Each container gets its own network namespace
//! (made by runc at task create); before the task starts, the bridge plugin puts a veth into it
//! with an address from the subnet, and the address goes into the container's labels for status,
//! probes and endpoints. Ports with a `hostPort` (recorded in the container's
//! [`LABEL_HOST_PORTS`] label at create) are published by `portmap` (DNAT from the node's
//! addresses, loopback included, to the container), after checking no other running container
//! of this runtime publishes the same port. Outbound NAT is one `MASQUERADE` rule per container
//! address (to anywhere outside the subnet), made here rather than by the bridge plugin's
//! `ipMasq`, whose rules cannot be removed once the container's namespace is gone (our `DEL`
//! runs after the exit); the address label says which rule to delete. On exit the port
//! mappings, the NAT rule and the address are released (`DEL`, portmap first).
//! Several agents on one host use different bridges and disjoint subnets.

use std::path::PathBuf;
use std::process::Stdio;

use cloudless_core::runtime::{ContainerId, RuntimeError};
use cloudless_core::workload::{ContainerPort, Protocol};
use containerd_client::services::v1::{GetContainerRequest, ListContainersRequest};
use containerd_client::tonic::Code;
use tokio::io::AsyncWriteExt;

use super::client::status_error;
use super::{Inner, LABEL_ADDRESS, LABEL_MANAGED, task};

/// Label with the container's published ports: `host:container/protocol`, comma-separated.
pub const LABEL_HOST_PORTS: &str = "cloudless.io/host-ports";

/// The per-agent bridge network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNetwork {
    /// Linux bridge name, e.g. `cld0` (at most 15 characters).
    pub bridge: String,
    /// IPv4 subnet in CIDR form, e.g. `10.88.0.0/24`; must not overlap another agent's.
    pub subnet: String,
    /// Directory with the CNI plugin binaries, e.g. `/usr/lib/cni`.
    pub plugin_dir: PathBuf,
    /// Masquerade traffic from the subnet to other networks (containers reach beyond the node).
    pub outbound_nat: bool,
}

impl BridgeNetwork {
    /// A bridge network with Debian's plugin directory.
    pub fn new(bridge: &str, subnet: &str) -> Self {
        Self {
            bridge: bridge.to_owned(),
            subnet: subnet.to_owned(),
            plugin_dir: PathBuf::from("/usr/lib/cni"),
            outbound_nat: true,
        }
    }

    /// The `iptables` arguments (after the `-C`/`-A`/`-D` verb) of the outbound NAT rule of the
    /// container at `address` known to CNI as `owner`: `MASQUERADE` from that address to
    /// anywhere outside the subnet.
    pub fn masquerade_rule(&self, address: &str, owner: &str) -> Vec<String> {
        [
            "POSTROUTING",
            "-s",
            &format!("{address}/32"),
            "!",
            "-d",
            &self.subnet,
            "-m",
            "comment",
            "--comment",
            &format!("cloudless {owner}"),
            "-j",
            "MASQUERADE",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// The bridge plugin's network configuration; `ipam_dir` holds host-local's leases.
    pub(crate) fn config(&self, network: &str, ipam_dir: &std::path::Path) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": network,
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": self.subnet }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": ipam_dir,
            },
        })
    }
}

fn cni_error(what: &str, detail: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Other(format!("CNI {what}: {detail}").into())
}

/// A published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PortMapping {
    pub(crate) host: u16,
    pub(crate) container: u16,
    pub(crate) udp: bool,
}

impl PortMapping {
    fn protocol(self) -> &'static str {
        if self.udp { "udp" } else { "tcp" }
    }
}

/// The [`LABEL_HOST_PORTS`] value for `ports` (none when nothing is published).
pub(crate) fn host_ports_label(ports: &[ContainerPort]) -> Option<String> {
    let v: Vec<String> = ports
        .iter()
        .filter_map(|p| {
            let host = p.host_port?;
            let proto = match p.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            };
            Some(format!("{host}:{}/{proto}", p.container_port))
        })
        .collect();
    (!v.is_empty()).then(|| v.join(","))
}

/// Parses a [`LABEL_HOST_PORTS`] value; malformed entries are skipped.
pub(crate) fn parse_host_ports(label: &str) -> Vec<PortMapping> {
    label
        .split(',')
        .filter_map(|entry| {
            let (ports, proto) = entry.trim().split_once('/')?;
            let (host, container) = ports.split_once(':')?;
            let udp = match proto {
                "tcp" => false,
                "udp" => true,
                _ => return None,
            };
            Some(PortMapping {
                host: host.parse().ok().filter(|&p| p > 0)?,
                container: container.parse().ok().filter(|&p| p > 0)?,
                udp,
            })
        })
        .collect()
}

/// The labels of container `id` (none when it is gone).
async fn labels_of(
    inner: &Inner,
    id: &str,
) -> Result<std::collections::HashMap<String, String>, RuntimeError> {
    let client = &inner.client;
    let got = client
        .containers()
        .get(client.req(GetContainerRequest { id: id.to_owned() }))
        .await;
    match got {
        Ok(resp) => Ok(resp
            .into_inner()
            .container
            .map(|c| c.labels)
            .unwrap_or_default()),
        Err(s) if s.code() == Code::NotFound => Ok(Default::default()),
        Err(s) => Err(status_error(s, "container get")),
    }
}

/// Refuses ports another running container of this runtime publishes.
async fn check_free(inner: &Inner, id: &str, ports: &[PortMapping]) -> Result<(), RuntimeError> {
    let client = &inner.client;
    let containers = client
        .containers()
        .list(client.req(ListContainersRequest {
            filters: vec![format!("labels.\"{LABEL_MANAGED}\"==true")],
        }))
        .await
        .map_err(|s| status_error(s, "container list"))?
        .into_inner()
        .containers;
    for c in containers.iter().filter(|c| c.id != id) {
        let Some(label) = c.labels.get(LABEL_HOST_PORTS) else {
            continue;
        };
        let theirs = parse_host_ports(label);
        let Some(clash) = ports
            .iter()
            .find(|p| theirs.iter().any(|t| t.host == p.host && t.udp == p.udp))
        else {
            continue;
        };
        // Only a container with a live task holds its ports.
        let running = super::container::task_of(inner, &c.id)
            .await?
            .is_some_and(|t| {
                t.status == containerd_client::types::v1::Status::Running as i32
                    || t.status == containerd_client::types::v1::Status::Created as i32
            });
        if running {
            return Err(RuntimeError::InvalidState(format!(
                "host port {}/{} of {id} is already published by container {}",
                clash.host,
                clash.protocol(),
                ContainerId(c.id.clone())
            )));
        }
    }
    Ok(())
}

/// Runs `iptables -t nat <verb> <rule>`; whether it succeeded, and its stderr. It waits up to
/// 30 s for the xtables lock, which CNI plugins and host firewalls take too.
async fn iptables(verb: &str, rule: &[String]) -> Result<(bool, String), RuntimeError> {
    let out = tokio::process::Command::new("iptables")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .args(["-w", "30", "-t", "nat", verb])
        .args(rule)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| cni_error("iptables", e))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    ))
}

/// The `-D` arguments of rules in `listing` (`iptables -t nat -S POSTROUTING`) that masquerade
/// `address` for an owner other than `owner`: left by a container that vanished without its
/// `DEL` (killed with the agent away), now that host-local handed the address out again.
fn stale_rules(listing: &str, address: &str, owner: &str) -> Vec<Vec<String>> {
    let source = format!("-s {address}/32 ");
    let ours = format!("--comment \"cloudless {owner}\" ");
    listing
        .lines()
        .filter(|l| {
            l.starts_with("-A POSTROUTING ")
                && l.contains(&source)
                && l.contains("--comment \"cloudless ")
                && !l.contains(&ours)
                && l.ends_with("-j MASQUERADE")
        })
        .filter_map(|l| {
            // `-A POSTROUTING -s a/32 ! -d net -m comment --comment "cloudless x" -j MASQUERADE`
            let (head, rest) = l.strip_prefix("-A ")?.split_once("--comment \"")?;
            let (comment, tail) = rest.split_once('"')?;
            let mut args: Vec<String> = head.split_whitespace().map(str::to_owned).collect();
            args.push("--comment".to_owned());
            args.push(comment.to_owned());
            args.extend(tail.split_whitespace().map(str::to_owned));
            Some(args)
        })
        .collect()
}

/// Deletes stale rules for `address` (see [`stale_rules`]); best effort.
async fn delete_stale_masquerade(address: &str, owner: &str) {
    let Ok(out) = tokio::process::Command::new("iptables")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .args(["-w", "30", "-t", "nat", "-S", "POSTROUTING"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
    else {
        return;
    };
    for rule in stale_rules(&String::from_utf8_lossy(&out.stdout), address, owner) {
        let _ = iptables("-D", &rule).await;
    }
}

/// Adds the container's outbound NAT rule unless it is there.
async fn add_masquerade(rule: &[String]) -> Result<(), RuntimeError> {
    if iptables("-C", rule).await?.0 {
        return Ok(());
    }
    match iptables("-A", rule).await? {
        (true, _) => Ok(()),
        (false, err) => Err(cni_error("outbound NAT rule", err)),
    }
}

/// Deletes the container's outbound NAT rule (every copy; none is fine).
async fn delete_masquerade(rule: &[String]) -> Result<(), RuntimeError> {
    for _ in 0..8 {
        if !iptables("-D", rule).await?.0 {
            break;
        }
    }
    Ok(())
}

/// The portmap plugin's configuration for `ports`, chained after the bridge's `prev` result.
fn portmap_config(
    network: &str,
    ports: &[PortMapping],
    prev: Option<serde_json::Value>,
) -> serde_json::Value {
    let mappings: Vec<serde_json::Value> = ports
        .iter()
        .map(|p| {
            serde_json::json!({
                "hostPort": p.host,
                "containerPort": p.container,
                "protocol": p.protocol(),
            })
        })
        .collect();
    let mut config = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": network,
        "type": "portmap",
        "capabilities": { "portMappings": true },
        "snat": true,
        "runtimeConfig": { "portMappings": mappings },
    });
    if let Some(prev) = prev {
        config["prevResult"] = prev;
    }
    config
}

/// Attaches (`pid` given: `ADD` in its network namespace) or detaches (`DEL`) container `id`:
/// bridge address, outbound NAT, published ports. Returns the address on attach.
pub(crate) async fn attach_or_detach(
    inner: &Inner,
    net: &BridgeNetwork,
    config: &serde_json::Value,
    cni_id: &str,
    id: &str,
    pid: Option<u32>,
) -> Result<Option<String>, RuntimeError> {
    let network = config["name"].as_str().unwrap_or("cloudless").to_owned();
    let labels = labels_of(inner, id).await?;
    let ports = labels
        .get(LABEL_HOST_PORTS)
        .map(|l| parse_host_ports(l))
        .unwrap_or_default();
    let Some(pid) = pid else {
        let mut result = Ok(());
        if !ports.is_empty() {
            let pm = portmap_config(&network, &ports, None);
            result = run(net, "portmap", &pm, "DEL", cni_id, "")
                .await
                .map(|_| ());
        }
        if let Some(address) = labels.get(LABEL_ADDRESS) {
            let unmasked = delete_masquerade(&net.masquerade_rule(address, cni_id)).await;
            result = result.and(unmasked);
        }
        run(net, "bridge", config, "DEL", cni_id, "").await?;
        return result.map(|()| None);
    };
    if !ports.is_empty() {
        check_free(inner, id, &ports).await?;
    }
    let netns = format!("/proc/{pid}/ns/net");
    let out = run(net, "bridge", config, "ADD", cni_id, &netns).await?;
    let address = first_address(&out);
    let rest = async {
        let address = match &address {
            Ok(a) => a.clone(),
            Err(e) => return Err(cni_error("result", e)),
        };
        // Recorded at once, so a detach after a failed start finds the NAT rule to delete.
        task::set_labels(&inner.client, id, &[(LABEL_ADDRESS, address.clone())])
            .await
            .map_err(|s| status_error(s, "container update"))?;
        if net.outbound_nat {
            delete_stale_masquerade(&address, cni_id).await;
            add_masquerade(&net.masquerade_rule(&address, cni_id)).await?;
        }
        if !ports.is_empty() {
            let prev: serde_json::Value =
                serde_json::from_slice(&out).map_err(|e| cni_error("result", e))?;
            let pm = portmap_config(&network, &ports, Some(prev));
            run(net, "portmap", &pm, "ADD", cni_id, &netns).await?;
        }
        Ok::<_, RuntimeError>(address)
    }
    .await;
    match rest {
        Ok(address) => Ok(Some(address)),
        Err(e) => {
            if !ports.is_empty() {
                let pm = portmap_config(&network, &ports, None);
                let _ = run(net, "portmap", &pm, "DEL", cni_id, "").await;
            }
            if let Ok(address) = &address {
                let _ = delete_masquerade(&net.masquerade_rule(address, cni_id)).await;
            }
            let _ = run(net, "bridge", config, "DEL", cni_id, "").await;
            Err(e)
        }
    }
}

/// Runs CNI plugin `plugin` with `command` (`ADD` or `DEL`); returns its stdout.
pub(crate) async fn run(
    net: &BridgeNetwork,
    plugin: &str,
    config: &serde_json::Value,
    command: &str,
    container_id: &str,
    netns: &str,
) -> Result<Vec<u8>, RuntimeError> {
    let mut child = tokio::process::Command::new(net.plugin_dir.join(plugin))
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", &net.plugin_dir)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| cni_error(&format!("{plugin} plugin"), e))?;
    let input = serde_json::to_vec(config).map_err(|e| cni_error("config", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&input)
            .await
            .map_err(|e| cni_error("plugin stdin", e))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| cni_error(&format!("{plugin} plugin"), e))?;
    if !out.status.success() {
        return Err(cni_error(
            &format!("{plugin} {command}"),
            format!(
                "{} {}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(out.stdout)
}

/// The first IP address of a CNI result, without its prefix length.
pub(crate) fn first_address(result: &[u8]) -> Result<String, RuntimeError> {
    let v: serde_json::Value =
        serde_json::from_slice(result).map_err(|e| cni_error("result", e))?;
    v["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .map(str::to_owned)
        .ok_or_else(|| cni_error("result", "no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_address_of_a_result() {
        let result =
            br#"{"cniVersion":"1.0.0","ips":[{"address":"10.88.0.5/24","gateway":"10.88.0.1"}]}"#;
        assert_eq!(first_address(result).expect("address"), "10.88.0.5");
        assert!(first_address(b"{}").is_err());
        assert!(first_address(b"not json").is_err());
    }

    #[test]
    fn host_ports_round_trip_through_the_label() {
        let port = |host: Option<u16>, container: u16, protocol: Protocol| ContainerPort {
            name: format!("p{container}"),
            container_port: container,
            protocol,
            host_port: host,
        };
        assert_eq!(host_ports_label(&[port(None, 80, Protocol::Tcp)]), None);
        let label = host_ports_label(&[
            port(Some(8080), 80, Protocol::Tcp),
            port(None, 81, Protocol::Tcp),
            port(Some(5353), 53, Protocol::Udp),
        ])
        .expect("label");
        assert_eq!(label, "8080:80/tcp,5353:53/udp");
        assert_eq!(
            parse_host_ports(&label),
            [
                PortMapping {
                    host: 8080,
                    container: 80,
                    udp: false
                },
                PortMapping {
                    host: 5353,
                    container: 53,
                    udp: true
                },
            ]
        );
        for junk in [
            "",
            "8080",
            "8080:80",
            "8080:80/sctp",
            "0:80/tcp",
            "x:80/tcp",
            "70000:1/tcp",
        ] {
            assert!(parse_host_ports(junk).is_empty(), "{junk:?}");
        }
        let pm = portmap_config(
            "net",
            &parse_host_ports(&label),
            Some(serde_json::json!({"ips": []})),
        );
        assert_eq!(pm["type"], "portmap");
        assert_eq!(pm["runtimeConfig"]["portMappings"][1]["protocol"], "udp");
        assert_eq!(pm["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert_eq!(pm["prevResult"]["ips"], serde_json::json!([]));
    }

    #[test]
    fn stale_rules_for_a_reused_address() {
        let listing = "-P POSTROUTING ACCEPT\n\
            -A POSTROUTING -s 10.1.0.2/32 ! -d 10.1.0.0/28 -m comment --comment \"cloudless ns-old\" -j MASQUERADE\n\
            -A POSTROUTING -s 10.1.0.2/32 ! -d 10.1.0.0/28 -m comment --comment \"cloudless ns-new\" -j MASQUERADE\n\
            -A POSTROUTING -s 10.1.0.20/32 ! -d 10.1.0.0/28 -m comment --comment \"cloudless ns-x\" -j MASQUERADE\n\
            -A POSTROUTING -s 10.1.0.2/32 -m comment --comment \"someone else\" -j MASQUERADE\n";
        let stale = stale_rules(listing, "10.1.0.2", "ns-new");
        assert_eq!(stale.len(), 1);
        assert_eq!(
            stale[0],
            BridgeNetwork::new("b", "10.1.0.0/28").masquerade_rule("10.1.0.2", "ns-old")
        );
        assert!(stale_rules("garbage\n-A POSTROUTING", "10.1.0.2", "x").is_empty());
    }

    #[test]
    fn masquerade_rule_covers_one_address_leaving_the_subnet() {
        let net = BridgeNetwork::new("cld0", "10.88.0.0/24");
        assert_eq!(
            net.masquerade_rule("10.88.0.5", "ns-c1").join(" "),
            "POSTROUTING -s 10.88.0.5/32 ! -d 10.88.0.0/24 -m comment --comment cloudless ns-c1 -j MASQUERADE"
        );
        assert!(net.outbound_nat);
    }

    #[test]
    fn config_names_bridge_subnet_and_lease_dir() {
        let net = BridgeNetwork::new("cld0", "10.88.0.0/24");
        let c = net.config("cloudless-ns", std::path::Path::new("/var/lib/x"));
        assert_eq!(c["bridge"], "cld0");
        assert_eq!(c["ipam"]["ranges"][0][0]["subnet"], "10.88.0.0/24");
        assert_eq!(c["ipam"]["dataDir"], "/var/lib/x");
        assert_eq!(c["type"], "bridge");
    }
}
