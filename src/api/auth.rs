//! Who is calling, and what they may do.
//!
//! - Every caller presented a certificate of the cluster CA (the TLS acceptor refused the rest).
//! - Mutations need an admin identity.
//! - Reads need an admin or a coordinator identity; agents get nothing from the public API
//!   (they have the control protocol), so a stolen edge device cannot list the cluster.
//! - A coordinator forwarding a call from a follower names the original caller in
//!   [`FORWARDED_FOR_KEY`](super::FORWARDED_FOR_KEY); that header is ignored from anyone else.

use std::net::SocketAddr;

use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::identity::spiffe::parse_uri;
use tonic::{Request, Status};

use super::FORWARDED_FOR_KEY;

/// The authenticated peer of a connection, as the TLS handshake proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPeer {
    /// The identity in the client certificate.
    pub identity: PeerIdentity,
    /// The TCP address of the client.
    pub remote: SocketAddr,
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Whose authority the call runs with (the original caller when forwarded).
    pub(crate) identity: PeerIdentity,
    /// True if a coordinator forwarded this call (it is never forwarded again).
    pub(crate) forwarded: bool,
}

/// The caller of `req`, or Unauthenticated if the connection carried no identity.
pub(crate) fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    let peer = req
        .extensions()
        .get::<ApiPeer>()
        .ok_or_else(|| Status::unauthenticated("no client certificate on this connection"))?;
    let forwarded_for = req.metadata().get(FORWARDED_FOR_KEY);
    match forwarded_for {
        Some(v) if peer.identity.role == Role::Coordinator => {
            let uri = v.to_str().map_err(|_| {
                Status::invalid_argument(format!("{FORWARDED_FOR_KEY} is not text"))
            })?;
            let identity = parse_uri(uri)
                .map_err(|e| Status::invalid_argument(format!("{FORWARDED_FOR_KEY}: {e}")))?;
            if identity.cluster != peer.identity.cluster {
                return Err(Status::permission_denied(format!(
                    "{identity} is not an identity of this cluster"
                )));
            }
            Ok(Caller {
                identity,
                forwarded: true,
            })
        }
        _ => Ok(Caller {
            identity: peer.identity.clone(),
            forwarded: false,
        }),
    }
}

/// Admins and coordinators may read.
pub(crate) fn require_read(caller: &Caller) -> Result<(), Status> {
    match caller.identity.role {
        Role::Admin | Role::Coordinator => Ok(()),
        Role::Agent => Err(Status::permission_denied(format!(
            "{} may not use the public API (admin or coordinator identity required)",
            caller.identity
        ))),
    }
}

/// Only admins may mutate.
pub(crate) fn require_admin(caller: &Caller) -> Result<(), Status> {
    if caller.identity.role == Role::Admin {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "{} may not change the cluster (admin identity required)",
            caller.identity
        )))
    }
}
