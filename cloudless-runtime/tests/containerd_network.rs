//! Bridge networking through CNI: each container has its own address on the agent's subnet,
//! reachable from the host, shown in its status, released when it exits.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cloudless_core::runtime::{ContainerState, Runtime};
use cloudless_runtime::ContainerdRuntime;
use cloudless_runtime::containerd::BridgeNetwork;
use cloudless_runtime::oci::NetworkMode;

const SERVER: &str = "mkdir -p /tmp/www && echo \"hello from $(hostname)\" >/tmp/www/index.html \
                      && exec httpd -f -p 8080 -h /tmp/www";

/// Whether the CNI plugins are installed; their absence fails the test under `CI=true`.
fn cni_plugins_present() -> bool {
    if std::path::Path::new("/usr/lib/cni/bridge").exists() {
        return true;
    }
    let msg = "network tests need the CNI plugins (apt-get install containernetworking-plugins)";
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("SKIPPED outside CI: {msg}");
    false
}

/// GET / from `addr`, retrying connection refusals until the server listens (30 s deadline).
fn http_get(addr: SocketAddr) -> String {
    let deadline = Instant::now() + common::PATIENCE;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(mut s) => {
                s.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("send");
                let mut body = String::new();
                s.read_to_string(&mut body).expect("read");
                return body;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "{addr} never answered: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_get_distinct_addresses_reachable_from_the_host() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    if !cni_plugins_present() {
        return;
    }
    let base = common::runtime(ctd, NetworkMode::Isolated).await;
    let mut cfg = base.config().clone();
    cfg.bridge = Some(BridgeNetwork::new(
        &common::ctd::bridge_name(0),
        &common::ctd::bridge_subnet(0),
    ));
    let rt = ContainerdRuntime::connect(cfg.clone())
        .await
        .expect("connect");

    let mut addrs = Vec::new();
    for id in ["web-a", "web-b"] {
        let spec = common::sh(id, SERVER);
        rt.create(&spec).await.expect("create");
        rt.start(&spec.id).await.expect("start");
        let st = rt.status(&spec.id).await.expect("status");
        assert_eq!(st.state, ContainerState::Running);
        let addr = st.address.expect("a bridge address");
        let subnet = common::ctd::bridge_subnet(0);
        assert!(
            common::ctd::in_subnet(&addr, &subnet),
            "{addr} is in {subnet}"
        );
        let ip: std::net::IpAddr = addr.parse().expect("an IP");
        let body = tokio::task::spawn_blocking(move || http_get(SocketAddr::new(ip, 8080)))
            .await
            .expect("http");
        assert!(body.contains(&format!("hello from {id}")), "{body}");
        addrs.push(addr);
    }
    assert_ne!(addrs[0], addrs[1], "two containers, two addresses");

    // Exit releases the address (host-local keeps one lease file per address).
    let leases = cfg
        .data_dir
        .join("cni")
        .join(common::ctd::bridge_name(0))
        .join(format!("cloudless-{}", common::ctd::bridge_name(0)));
    assert!(leases.join(&addrs[0]).exists(), "lease of {}", addrs[0]);
    rt.remove(&cloudless_core::runtime::ContainerId("web-a".into()))
        .await
        .expect("remove");
    assert!(!leases.join(&addrs[0]).exists(), "released {}", addrs[0]);
    rt.remove(&cloudless_core::runtime::ContainerId("web-b".into()))
        .await
        .expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_on_one_host_use_disjoint_subnets() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    if !cni_plugins_present() {
        return;
    }
    let mut served = Vec::new();
    for n in [1u8, 2] {
        let rt = common::runtime_with(ctd, NetworkMode::Isolated, |cfg| {
            cfg.bridge = Some(BridgeNetwork::new(
                &common::ctd::bridge_name(n),
                &common::ctd::bridge_subnet(n),
            ));
        })
        .await;
        let id = format!("agent{n}-web");
        let spec = common::sh(&id, SERVER);
        rt.create(&spec).await.expect("create");
        rt.start(&spec.id).await.expect("start");
        let addr = rt
            .status(&spec.id)
            .await
            .expect("status")
            .address
            .expect("address");
        let subnet = common::ctd::bridge_subnet(n);
        assert!(
            common::ctd::in_subnet(&addr, &subnet),
            "agent {n}: {addr} is in {subnet}"
        );
        let ip: std::net::IpAddr = addr.parse().expect("an IP");
        let body = tokio::task::spawn_blocking(move || http_get(SocketAddr::new(ip, 8080)))
            .await
            .expect("http");
        assert!(body.contains(&format!("hello from {id}")), "{body}");
        let other = common::ctd::bridge_subnet(3 - n);
        assert!(
            !common::ctd::in_subnet(&addr, &other),
            "agent {n}: {addr} is outside the other agent's {other}"
        );
        served.push((rt, spec.id));
    }
    for (rt, id) in served {
        rt.remove(&id).await.expect("remove");
    }
}

/// The host's first global IPv4 address.
fn host_ipv4() -> std::net::Ipv4Addr {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .expect("ip addr");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next()?.parse().ok())
        .expect("a global IPv4 address on this host")
}

/// Whether `iptables -t nat -C <rule>` finds the rule.
fn nat_rule_present(rule: &[String]) -> bool {
    std::process::Command::new("iptables")
        .args(["-w", "5", "-t", "nat", "-C"])
        .args(rule)
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_ports_and_outbound_connections() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    if !cni_plugins_present() {
        return;
    }
    let net = BridgeNetwork::new(&common::ctd::bridge_name(2), &common::ctd::bridge_subnet(2));
    let rt = common::runtime_with(ctd, NetworkMode::Isolated, |cfg| {
        cfg.bridge = Some(net.clone());
    })
    .await;
    // Below the ephemeral range (32768+), and free on the host right now.
    let host_port = (0..12_000u16)
        .map(|i| 20_000 + (std::process::id() as u16 % 12_000 + i) % 12_000)
        .find(|p| std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok())
        .expect("a free TCP port in 20000..32000");
    let published = |id: &str| {
        let mut spec = common::sh(id, SERVER);
        spec.ports = vec![cloudless_core::workload::ContainerPort {
            name: "http".into(),
            container_port: 8080,
            protocol: cloudless_core::workload::Protocol::Tcp,
            host_port: Some(host_port),
        }];
        spec
    };
    let web = published("pub-web");
    rt.create(&web).await.expect("create");
    rt.start(&web.id).await.expect("start");
    let host_ip = host_ipv4();
    for ip in [std::net::Ipv4Addr::LOCALHOST, host_ip] {
        let addr = SocketAddr::new(ip.into(), host_port);
        let body = tokio::task::spawn_blocking(move || http_get(addr))
            .await
            .expect("http");
        assert!(body.contains("hello from pub-web"), "{addr}: {body}");
    }
    let st = rt.status(&web.id).await.expect("status");
    let nat_rule = net.masquerade_rule(
        st.address.as_deref().expect("address"),
        &format!("{}-{}", rt.config().namespace, web.id),
    );
    assert!(
        nat_rule_present(&nat_rule),
        "the container's outbound NAT rule"
    );

    // The port is taken while the first container runs.
    let second = published("pub-second");
    rt.create(&second).await.expect("create");
    let err = rt.start(&second.id).await.expect_err("port taken");
    assert!(
        matches!(err, cloudless_core::runtime::RuntimeError::InvalidState(ref m)
            if m.contains(&host_port.to_string()) && m.contains("pub-web")),
        "{err}"
    );
    rt.remove(&second.id).await.expect("remove");

    // Outbound: a container reaches a server on the host's address.
    let listener = std::net::TcpListener::bind((host_ip, 0)).expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let client = common::sh(
        "outbound",
        &format!("echo hi-from-container | nc {host_ip} {port}"),
    );
    rt.create(&client).await.expect("create");
    rt.start(&client.id).await.expect("start");
    let got = tokio::task::spawn_blocking(move || {
        // Polled against a deadline: a container that cannot get out fails the test instead
        // of hanging it.
        listener.set_nonblocking(true).expect("nonblocking");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let (mut conn, peer) = loop {
            match listener.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no connection from the container to {host_ip}:{port} within 30 s"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        conn.set_nonblocking(false).expect("blocking");
        conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .expect("read timeout");
        let mut text = String::new();
        conn.read_to_string(&mut text).expect("read");
        (text, peer)
    })
    .await
    .expect("accept");
    assert_eq!(got.0.trim(), "hi-from-container");
    let subnet = common::ctd::bridge_subnet(2);
    assert!(
        common::ctd::in_subnet(&got.1.ip().to_string(), &subnet),
        "{} comes from the bridge subnet {subnet}",
        got.1
    );
    rt.remove(&client.id).await.expect("remove");

    // Removing the container unpublishes the port.
    rt.remove(&web.id).await.expect("remove");
    let addr = SocketAddr::new(host_ip.into(), host_port);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "{addr} no longer forwarded"
    );
    assert!(!nat_rule_present(&nat_rule), "NAT rule deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_without_a_bridge_is_refused() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime(ctd, NetworkMode::Isolated).await;
    let mut spec = common::sh("no-bridge", SERVER);
    spec.ports = vec![cloudless_core::workload::ContainerPort {
        name: "http".into(),
        container_port: 8080,
        protocol: cloudless_core::workload::Protocol::Tcp,
        host_port: Some(8080),
    }];
    let err = rt.create(&spec).await.expect_err("no bridge");
    assert!(
        matches!(err, cloudless_core::runtime::RuntimeError::InvalidSpec(ref m) if m.contains("hostPort")),
        "{err}"
    );
}
