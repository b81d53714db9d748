//! Every port the coordinator and agent processes listen on refuses clients without a valid
//! certificate, and the ports are exactly those `docs/operations.md` documents.
//!
//! ```text
//!  /proc/<pid>/fd  ── socket:[inode] ──▶ /proc/<pid>/net/{tcp,tcp6,udp,udp6} (LISTEN / bound)
//!  TCP port  ── TLS without a client cert, with a cert of another CA ─▶ no h2 answer
//!            ── plain HTTP ─▶ no HTTP answer
//!  UDP port  ── QUIC without a client cert, with a cert of another CA ─▶ connection closed
//!            ── (controls: a coordinator cert of the cluster CA is accepted; enrollment takes a
//!               client without a cert by design but refuses an unknown token)
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::identity::enroll::{ENROLL_ALPN, EnrollParams, enroll};
use cloudless_net::identity::{ClusterCa, JoinToken, NodeCredentials, NodeKey, TokenRole};
use common::{AgentSpec, Lab};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    Tcp,
    Udp,
}

/// The TCP ports `pid` listens on and the UDP ports it has bound.
fn ports_of(pid: u32) -> BTreeSet<(Proto, u16)> {
    let proc_dir = format!("/proc/{pid}");
    let inodes: BTreeSet<u64> = std::fs::read_dir(format!("{proc_dir}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect();
    let mut out = BTreeSet::new();
    for (proto, file) in [
        (Proto::Tcp, "tcp"),
        (Proto::Tcp, "tcp6"),
        (Proto::Udp, "udp"),
        (Proto::Udp, "udp6"),
    ] {
        let Ok(text) = std::fs::read_to_string(format!("{proc_dir}/net/{file}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let Ok(inode) = inode.parse::<u64>() else {
                continue;
            };
            // TCP: LISTEN (0A) only; UDP: every bound socket (a QUIC endpoint serves on it).
            if !inodes.contains(&inode) || (proto == Proto::Tcp && *state != "0A") {
                continue;
            }
            let port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                .unwrap();
            out.insert((proto, port));
        }
    }
    out
}

/// The coordinator ports of the table in `docs/operations.md`: (proto, offset from P).
fn documented_coordinator_ports() -> BTreeSet<(Proto, u16)> {
    let doc = include_str!("../../docs/operations.md");
    let section = doc
        .split("## Ports")
        .nth(1)
        .expect("docs/operations.md has a Ports section");
    let mut out = BTreeSet::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(port), Some(proto)) = (cols.get(1), cols.get(2)) else {
            continue;
        };
        let offset = match port.strip_prefix('P') {
            Some("") => 0,
            Some(rest) => match rest.strip_prefix('+').and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => continue,
            },
            None => continue,
        };
        let proto = if proto.starts_with("UDP") {
            Proto::Udp
        } else if proto.starts_with("TCP") {
            Proto::Tcp
        } else {
            panic!("docs/operations.md: port {port}: unknown protocol {proto:?}");
        };
        out.insert((proto, offset));
    }
    assert!(!out.is_empty(), "no port rows in docs/operations.md");
    out
}

fn issue(ca: &ClusterCa, role: Role, node: u64) -> NodeCredentials {
    let key = NodeKey::generate().unwrap();
    let id = PeerIdentity {
        cluster: ca.cluster().to_owned(),
        role,
        node: NodeId(node),
    };
    let cert = ca
        .issue(
            &key.csr().unwrap(),
            &id,
            SystemTime::now(),
            Duration::from_secs(3600),
        )
        .unwrap();
    NodeCredentials::new(&key, cert, ca.cert().clone()).unwrap()
}

/// Over TLS on TCP: `Ok(bytes)` when the server answered the h2 preface, else why not.
async fn tls_probe(addr: SocketAddr, tls: rustls::ClientConfig) -> Result<Vec<u8>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = rustls_pki_types::ServerName::try_from("cloudless").unwrap();
    let io = async {
        let mut s = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        // HTTP/2 preface + an empty SETTINGS frame: a gRPC server answers with SETTINGS.
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = vec![0u8; 64];
        let n = s.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed without an answer".to_owned());
        }
        buf.truncate(n);
        Ok(buf)
    };
    // Generous: the accepted probe must not time out on a loaded machine (a refusal is quick).
    tokio::time::timeout(Duration::from_secs(30), io)
        .await
        .map_err(|_| "no answer in 30 s".to_owned())?
}

/// Plain HTTP on a TLS port: what came back (must not be HTTP).
async fn plain_http(addr: SocketAddr) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s
        .write_all(b"GET /v1/nodes HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    buf
}

/// Over QUIC: `Ok(())` when a stream could be opened and the connection stayed up, else why
/// the server refused.
async fn quic_probe(addr: SocketAddr, tls: rustls::ClientConfig) -> Result<(), String> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| format!("quic tls: {e}"))?;
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let result = async {
        let conn = tokio::time::timeout(
            Duration::from_secs(30),
            endpoint.connect(addr, "cloudless").unwrap(),
        )
        .await
        .map_err(|_| "no handshake in 30 s".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| format!("open: {e}"))?;
        send.write_all(&[0u8; 8])
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = [0u8; 16];
        // The server closes a refused connection right after the handshake; a connection still
        // up after a wait that a loaded machine's server also gets its close done in counts as
        // kept.
        match tokio::time::timeout(Duration::from_secs(3), conn.closed()).await {
            Ok(reason) => {
                let read = recv.read(&mut buf).await;
                assert!(
                    !matches!(read, Ok(Some(n)) if n > 0),
                    "{addr}: data on a refused connection"
                );
                Err(format!("closed: {reason}"))
            }
            Err(_) => {
                conn.close(0u32.into(), b"probe done");
                Ok(())
            }
        }
    }
    .await;
    endpoint.close(0u32.into(), b"");
    result
}

fn client_tls(
    ca: &rustls_pki_types::CertificateDer<'static>,
    creds: Option<&NodeCredentials>,
    alpn: &[u8],
) -> rustls::ClientConfig {
    cloudless_net::identity::tls::client_config(ca, creds, alpn).unwrap()
}

#[test]
fn every_listening_port_refuses_clients_without_a_valid_certificate() {
    let mut lab = Lab::init("scan", 1);
    lab.start_coordinator(0);
    let agent_port = common::free_udp_port();
    let mut spec = AgentSpec::process("edge-scan", "zone-a");
    spec.listen = format!("127.0.0.1:{agent_port}");
    lab.start_agent(spec);
    let base = lab.bases[0];
    let coord_pid = lab.coordinators[0].as_ref().unwrap().pid();
    let agent_pid = lab.agents[0].as_ref().unwrap().pid();

    // The processes' ports are what the documentation says.
    let coord_ports = ports_of(coord_pid);
    let documented: BTreeSet<(Proto, u16)> = documented_coordinator_ports()
        .into_iter()
        .map(|(p, o)| (p, base + o))
        .collect();
    assert_eq!(
        coord_ports, documented,
        "coordinator ports (listen base {base}) vs docs/operations.md"
    );
    let agent_ports = ports_of(agent_pid);
    assert_eq!(
        agent_ports,
        BTreeSet::from([(Proto::Udp, agent_port)]),
        "agent ports (--listen 127.0.0.1:{agent_port}) vs docs/operations.md"
    );
    eprintln!("coordinator {coord_pid}: {coord_ports:?}; agent {agent_pid}: {agent_ports:?}");

    let admin = cloudless_bins::common::load_admin_credentials(&lab.admin()).unwrap();
    let ca_cert = admin.ca().clone();
    let real_ca = ClusterCa::load(&lab.coord_dir(0).join("ca")).unwrap();
    // The same cluster name and the first coordinator's identity, from another CA.
    let foreign_ca = ClusterCa::init("scan", SystemTime::now()).unwrap();
    let foreign = issue(&foreign_ca, Role::Coordinator, lab.node_id(0));
    let foreign_admin = issue(&foreign_ca, Role::Admin, 0);
    let valid = issue(&real_ca, Role::Coordinator, 999);

    let mut findings: BTreeMap<(Proto, u16), Vec<String>> = BTreeMap::new();
    let all: BTreeSet<(Proto, u16)> = coord_ports.union(&agent_ports).copied().collect();
    for &(proto, port) in &all {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let notes = findings.entry((proto, port)).or_default();
        match proto {
            Proto::Tcp => {
                let alpn = cloudless::api::ALPN;
                // Control: the admin certificate gets an h2 answer.
                let ok = lab.block_on(tls_probe(addr, client_tls(&ca_cert, Some(&admin), alpn)));
                assert!(ok.is_ok(), "{addr}: the admin cert was refused: {ok:?}");
                for (what, creds) in [
                    ("no client cert", None),
                    ("coordinator cert of another CA", Some(&foreign)),
                    ("admin cert of another CA", Some(&foreign_admin)),
                ] {
                    let r = lab.block_on(tls_probe(addr, client_tls(&ca_cert, creds, alpn)));
                    assert!(r.is_err(), "{addr} answered a client with {what}: {r:?}");
                    notes.push(format!("refused {what}: {}", r.unwrap_err()));
                }
                let plain = lab.block_on(plain_http(addr));
                assert!(
                    !String::from_utf8_lossy(&plain).contains("HTTP/"),
                    "{addr} answered plain HTTP: {:?}",
                    String::from_utf8_lossy(&plain)
                );
                notes.push(format!(
                    "refused plain HTTP: {} bytes back, no HTTP",
                    plain.len()
                ));
            }
            Proto::Udp => {
                let quic_alpn = cloudless_net::quic::ALPN;
                let is_enroll = port == base + 2;
                if is_enroll {
                    // Enrollment takes clients without a certificate (they hold a token), on
                    // its own ALPN; an unknown token is refused.
                    let token = JoinToken::generate(real_ca.digest()).unwrap();
                    let r = lab.block_on(enroll(
                        addr,
                        &token,
                        &NodeKey::generate().unwrap(),
                        EnrollParams {
                            name: "intruder".into(),
                            role: TokenRole::Agent,
                            report: cloudless_bins::common::node_report(
                                lab.dir.path(),
                                "",
                                "",
                                &BTreeMap::new(),
                            ),
                        },
                        Duration::from_secs(5),
                    ));
                    assert!(r.is_err(), "{addr} enrolled with an unknown token");
                    notes.push(format!("refused an unknown join token: {}", r.unwrap_err()));
                    let r = lab.block_on(quic_probe(addr, client_tls(&ca_cert, None, ENROLL_ALPN)));
                    notes.push(format!(
                        "accepted by design: no cert on the enrollment ALPN ({r:?}); the token decides"
                    ));
                } else {
                    let r = lab.block_on(quic_probe(
                        addr,
                        client_tls(&ca_cert, Some(&valid), quic_alpn),
                    ));
                    assert!(
                        r.is_ok(),
                        "{addr}: a valid coordinator cert was refused: {r:?}"
                    );
                }
                for (what, creds) in [
                    ("no client cert", None),
                    ("coordinator cert of another CA", Some(&foreign)),
                ] {
                    let r = lab.block_on(quic_probe(addr, client_tls(&ca_cert, creds, quic_alpn)));
                    assert!(r.is_err(), "{addr} kept a QUIC connection with {what}");
                    notes.push(format!("refused {what}: {}", r.unwrap_err()));
                }
            }
        }
    }
    for ((proto, port), notes) in &findings {
        eprintln!("{proto:?} {port}:");
        for n in notes {
            eprintln!("    {n}");
        }
    }
    // Both processes are still up.
    assert!(lab.coordinators[0].as_mut().unwrap().running());
    assert!(lab.agents[0].as_mut().unwrap().running());
}
