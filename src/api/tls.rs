//! The TLS acceptor: every connection completes a TLS 1.3 handshake with a client certificate
//! of the cluster before tonic sees a byte, and carries the identity that certificate proves.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cloudless_net::identity::identity_from_cert;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use super::auth::ApiPeer;

/// Longest a client may take to finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once; more connections wait in the kernel's backlog.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// A TLS connection whose client certificate named `peer`.
pub(crate) struct AuthedStream {
    inner: TlsStream<TcpStream>,
    peer: ApiPeer,
}

impl AuthedStream {
    /// The authenticated peer.
    pub(crate) fn peer(&self) -> &ApiPeer {
        &self.peer
    }
}

impl Connected for AuthedStream {
    type ConnectInfo = ApiPeer;

    fn connect_info(&self) -> ApiPeer {
        self.peer.clone()
    }
}

impl AsyncRead for AuthedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for AuthedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts TCP connections, runs the handshakes, and sends the authenticated streams on.
/// Refused handshakes are logged and dropped; they never reach tonic.
pub(crate) fn spawn_acceptor(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    cluster: String,
    mut stop: watch::Receiver<bool>,
) -> mpsc::Receiver<Result<AuthedStream, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                _ = stop.changed() => return,
                p = Arc::clone(&pending).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (tcp, remote) = tokio::select! {
                _ = stop.changed() => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "api: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let cluster = cluster.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match handshake(acceptor, tcp, remote, &cluster).await {
                    Ok(stream) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Err(why) => {
                        tracing::info!(%remote, %why, "api: connection refused");
                    }
                }
            });
        }
    });
    rx
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    remote: SocketAddr,
    cluster: &str,
) -> Result<AuthedStream, String> {
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| format!("handshake failed: {e}"))?;
    let (_, conn) = tls.get_ref();
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| "no client certificate".to_owned())?;
    // The verifier checked chain and identity already; this reads the identity out.
    let identity = identity_from_cert(leaf, cluster).map_err(|e| e.to_string())?;
    Ok(AuthedStream {
        inner: tls,
        peer: ApiPeer { identity, remote },
    })
}
