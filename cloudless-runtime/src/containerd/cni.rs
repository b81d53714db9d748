//! Container networking through the standard CNI plugins (Debian's
//! `containernetworking-plugins`): `bridge` with `host-local` IPAM on a per-agent bridge and
//! subnet. Each container gets its own network namespace (made by runc at task create); before
//! the task starts, the bridge plugin puts a veth into it with an address from the subnet, and
//! the address goes into the container's labels for status, probes and endpoints. On exit the
//! address is released (`DEL`). Several agents on one host use different bridges and disjoint
//! subnets. No outbound NAT and no port mapping yet.

use std::path::PathBuf;
use std::process::Stdio;

use cloudless_core::runtime::RuntimeError;
use tokio::io::AsyncWriteExt;

/// The per-agent bridge network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNetwork {
    /// Linux bridge name, e.g. `cld0` (at most 15 characters).
    pub bridge: String,
    /// IPv4 subnet in CIDR form, e.g. `10.88.0.0/24`; must not overlap another agent's.
    pub subnet: String,
    /// Directory with the CNI plugin binaries, e.g. `/usr/lib/cni`.
    pub plugin_dir: PathBuf,
}

impl BridgeNetwork {
    /// A bridge network with Debian's plugin directory.
    pub fn new(bridge: &str, subnet: &str) -> Self {
        Self {
            bridge: bridge.to_owned(),
            subnet: subnet.to_owned(),
            plugin_dir: PathBuf::from("/usr/lib/cni"),
        }
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

/// Runs the bridge plugin with `command` (`ADD` or `DEL`); returns its stdout.
pub(crate) async fn run(
    net: &BridgeNetwork,
    config: &serde_json::Value,
    command: &str,
    container_id: &str,
    netns: &str,
) -> Result<Vec<u8>, RuntimeError> {
    let mut child = tokio::process::Command::new(net.plugin_dir.join("bridge"))
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
        .map_err(|e| cni_error("bridge plugin", e))?;
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
        .map_err(|e| cni_error("bridge plugin", e))?;
    if !out.status.success() {
        return Err(cni_error(
            command,
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
    fn config_names_bridge_subnet_and_lease_dir() {
        let net = BridgeNetwork::new("cld0", "10.88.0.0/24");
        let c = net.config("cloudless-ns", std::path::Path::new("/var/lib/x"));
        assert_eq!(c["bridge"], "cld0");
        assert_eq!(c["ipam"]["ranges"][0][0]["subnet"], "10.88.0.0/24");
        assert_eq!(c["ipam"]["dataDir"], "/var/lib/x");
        assert_eq!(c["type"], "bridge");
    }
}
