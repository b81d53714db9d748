//! Probe executors: exec through `Runtime::exec`, TCP connect and HTTP GET against the
//! container's address (real sockets). Each run is bounded by the probe's timeout.

use std::sync::Arc;
use std::time::Duration;

use cloudless_core::runtime::Runtime;
use cloudless_core::workload::ProbeAction;
use cloudless_runtime::supervisor::ProbeRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest HTTP status line read.
const MAX_STATUS_LINE: usize = 1024;

/// The outcome of one probe run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProbeVerdict {
    pub(crate) success: bool,
    pub(crate) detail: String,
}

fn fail(detail: impl Into<String>) -> ProbeVerdict {
    ProbeVerdict {
        success: false,
        detail: detail.into(),
    }
}

/// Runs `req` once.
pub(crate) async fn run(runtime: &Arc<dyn Runtime>, req: &ProbeRequest) -> ProbeVerdict {
    let timeout = req
        .probe
        .timeout
        .as_duration()
        .max(Duration::from_millis(1));
    let actions = req.probe.actions();
    let [action] = actions.as_slice() else {
        return fail(format!(
            "probe must have exactly one action, has {}",
            actions.len()
        ));
    };
    match action {
        ProbeAction::Exec(e) => {
            let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
            match runtime.exec(&req.container, &e.command, ms).await {
                Ok(out) if out.exit_code == 0 => ProbeVerdict {
                    success: true,
                    detail: "exit code 0".into(),
                },
                Ok(out) => fail(format!("exit code {}", out.exit_code)),
                Err(e) => fail(format!("exec: {e}")),
            }
        }
        ProbeAction::Tcp(t) => {
            let Some(addr) = &req.address else {
                return fail("container has no address yet");
            };
            match tokio::time::timeout(timeout, TcpStream::connect((addr.as_str(), t.port))).await {
                Ok(Ok(_)) => ProbeVerdict {
                    success: true,
                    detail: format!("connected to {addr}:{}", t.port),
                },
                Ok(Err(e)) => fail(format!("connect {addr}:{}: {e}", t.port)),
                Err(_) => fail(format!("connect {addr}:{} timed out", t.port)),
            }
        }
        ProbeAction::Http(h) => {
            let Some(addr) = &req.address else {
                return fail("container has no address yet");
            };
            match tokio::time::timeout(timeout, http_get(addr, h.port, &h.path)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => ProbeVerdict {
                    success: true,
                    detail: format!("HTTP {code}"),
                },
                Ok(Ok(code)) => fail(format!("HTTP {code}")),
                Ok(Err(e)) => fail(format!("GET http://{addr}:{}{}: {e}", h.port, h.path)),
                Err(_) => fail(format!("GET http://{addr}:{}{} timed out", h.port, h.path)),
            }
        }
    }
}

/// Sends `GET path` and returns the response's status code.
async fn http_get(addr: &str, port: u16, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect((addr, port))
        .await
        .map_err(|e| e.to_string())?;
    let host = if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    };
    let path = if path.starts_with('/') { path } else { "/" };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cloudless-probe/1\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        if buf.len() > MAX_STATUS_LINE {
            return Err("status line too long".into());
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before a status line".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_status_line(&buf)
}

/// The status code of an HTTP/1.x response starting with `bytes`.
pub(crate) fn parse_status_line(bytes: &[u8]) -> Result<u16, String> {
    let end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or("no status line")?;
    let line = std::str::from_utf8(&bytes[..end]).map_err(|_| "status line is not UTF-8")?;
    let mut parts = line.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x response: {line:?}"));
    }
    let code = parts.next().unwrap_or_default();
    match code.parse::<u16>() {
        Ok(c) if code.len() == 3 && (100..=599).contains(&c) => Ok(c),
        _ => Err(format!("bad status code in {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudless_core::ids::ReplicaId;
    use cloudless_core::quantity::DurationSpec;
    use cloudless_core::runtime::ContainerId;
    use cloudless_core::workload::{HttpAction, Probe, TcpAction};
    use cloudless_runtime::FakeRuntime;
    use cloudless_runtime::supervisor::ProbeKind;
    use tokio::net::TcpListener;

    fn request(probe: Probe, address: Option<&str>) -> ProbeRequest {
        ProbeRequest {
            replica: ReplicaId(1),
            container: ContainerId::for_replica(ReplicaId(1), 0),
            kind: ProbeKind::Readiness,
            probe,
            address: address.map(str::to_owned),
        }
    }

    fn probe(tcp: Option<TcpAction>, http: Option<HttpAction>) -> Probe {
        Probe {
            exec: None,
            tcp,
            http,
            initial_delay: DurationSpec(0),
            period: DurationSpec::from_secs(1),
            timeout: DurationSpec::from_secs(2),
            success_threshold: 1,
            failure_threshold: 1,
        }
    }

    /// Serves one canned response per connection; returns the port and the request lines seen.
    async fn server(response: &'static str) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let _ = tx.send(text.lines().next().unwrap_or_default().to_owned());
                let _ = s.write_all(response.as_bytes()).await;
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_real_listeners() {
        let rt: Arc<dyn Runtime> = Arc::new(FakeRuntime::new());
        let (ok_port, mut seen) = server("HTTP/1.1 204 No Content\r\n\r\n").await;
        let http = |port, path: &str| {
            probe(
                None,
                Some(HttpAction {
                    port,
                    path: path.into(),
                }),
            )
        };
        let v = run(&rt, &request(http(ok_port, "/healthz"), Some("127.0.0.1"))).await;
        assert!(v.success, "{v:?}");
        assert_eq!(seen.recv().await.as_deref(), Some("GET /healthz HTTP/1.1"));

        let (bad_port, _seen) = server("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        let v = run(&rt, &request(http(bad_port, "/"), Some("127.0.0.1"))).await;
        assert_eq!((v.success, v.detail.as_str()), (false, "HTTP 503"));

        let (junk_port, _seen) = server("SSH-2.0-OpenSSH\r\n").await;
        let v = run(&rt, &request(http(junk_port, "/"), Some("127.0.0.1"))).await;
        assert!(
            !v.success && v.detail.contains("not an HTTP/1.x response"),
            "{v:?}"
        );

        let tcp = |port| probe(Some(TcpAction { port }), None);
        assert!(
            run(&rt, &request(tcp(ok_port), Some("127.0.0.1")))
                .await
                .success
        );
        // A port nobody listens on: bind, learn the port, close.
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let closed_port = closed.local_addr().expect("addr").port();
        drop(closed);
        let v = run(&rt, &request(tcp(closed_port), Some("127.0.0.1"))).await;
        assert!(!v.success, "{v:?}");
        let v = run(&rt, &request(http(closed_port, "/"), Some("127.0.0.1"))).await;
        assert!(!v.success, "{v:?}");
        let v = run(&rt, &request(tcp(ok_port), None)).await;
        assert_eq!(v.detail, "container has no address yet");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_times_out() {
        let rt: Arc<dyn Runtime> = Arc::new(FakeRuntime::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Accepts (kernel backlog) but never answers.
        let req = request(
            probe(
                None,
                Some(HttpAction {
                    port,
                    path: "/".into(),
                }),
            ),
            Some("127.0.0.1"),
        );
        let v = run(&rt, &req).await;
        assert!(!v.success && v.detail.ends_with("timed out"), "{v:?}");
        drop(listener);
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Ok(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503 Busy\r\nX: y\r\n"), Ok(503));
        assert!(parse_status_line(b"HTTP/2 200\r\n").is_err());
        assert!(parse_status_line(b"HTTP/1.1 20 OK\r\n").is_err());
        assert!(parse_status_line(b"HTTP/1.1 abc\r\n").is_err());
        assert!(parse_status_line(b"HTTP/1.1 200 OK").is_err());
    }
}
