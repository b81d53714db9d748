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
