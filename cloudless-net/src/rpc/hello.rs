//! The dispatcher's protocol-version exchange: `Hello` out before the first call to a peer,
//! `HelloAck` back, and the compatibility check on both sides.

use std::sync::Arc;

use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, TransportError};
use tokio::sync::oneshot;

use super::dispatch::{Command, Dispatcher, HelloState};
use super::error::RpcError;
use super::status::StatusCode;
use super::version::{ProtocolVersion, compatible};
use crate::wire::pb::{self, envelope::Body};

impl Dispatcher {
    pub(super) fn hello(
        &mut self,
        peer: NodeId,
        reply: oneshot::Sender<Result<ProtocolVersion, RpcError>>,
    ) {
        match self
            .hello_out
            .entry(peer)
            .or_insert_with(|| HelloState::Pending(Vec::new()))
        {
            HelloState::Accepted(v) => {
                drop(reply.send(Ok(*v)));
                return;
            }
            HelloState::Pending(waiters) => waiters.push(reply),
        }
        // (Re)send on every waiter: a lost hello is repaired by the next attempt.
        let env = pb::Envelope {
            body: Some(Body::Hello(pb::Hello {
                version: Some(self.our_version().into()),
            })),
        };
        let frame = match self.codec.encode(&env) {
            Ok(f) => f,
            Err(e) => return tracing::warn!("hello not encodable: {e}"),
        };
        let transport = Arc::clone(&self.transport);
        let cmd_tx = self.cmd_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = transport.send(peer, frame).await {
                let not_connected = matches!(e, TransportError::NotConnected(_));
                let failed = Command::HelloFailed {
                    peer,
                    error: e.to_string(),
                    not_connected,
                };
                drop(cmd_tx.send(failed).await);
            }
        });
    }

    /// The peer lost our hello (it restarted): the next call says hello again.
    pub(super) fn forget_hello_if_required(&mut self, peer: NodeId, status: &Result<(), RpcError>) {
        if let Err(RpcError::Status {
            code: StatusCode::HelloRequired,
            ..
        }) = status
        {
            self.hello_out.remove(&peer);
        }
    }

    pub(super) fn on_hello(&mut self, from: &PeerIdentity, h: pb::Hello) {
        let ours = self.our_version();
        let theirs: ProtocolVersion = h
            .version
            .map(Into::into)
            .unwrap_or(ProtocolVersion::new(0, 0));
        let local_role = self.transport.local().role;
        let accepted = compatible(ours, local_role, theirs, from.role);
        let reason = if accepted {
            self.hello_in.insert(from.node, theirs);
            String::new()
        } else {
            self.hello_in.remove(&from.node);
            tracing::info!(peer = %from, %ours, %theirs, "refused incompatible protocol version");
            format!(
                "{} ({local_role}) speaks {ours}, refuses {theirs} ({})",
                self.transport.local(),
                from.role
            )
        };
        let ack = pb::HelloAck {
            version: Some(ours.into()),
            accepted,
            reason,
        };
        self.send(from.node, Body::HelloAck(ack));
    }

    pub(super) fn on_hello_ack(&mut self, from: &PeerIdentity, a: pb::HelloAck) {
        let Some(HelloState::Pending(waiters)) = self.hello_out.remove(&from.node) else {
            return;
        };
        let ours = self.our_version();
        let theirs: ProtocolVersion = a
            .version
            .map(Into::into)
            .unwrap_or(ProtocolVersion::new(0, 0));
        let local_role = self.transport.local().role;
        let refusal = if !a.accepted {
            Some(format!("the peer refused: {}", a.reason))
        } else if !compatible(ours, local_role, theirs, from.role) {
            Some(format!("we refuse {theirs} from a {}", from.role))
        } else {
            None
        };
        if refusal.is_none() {
            self.hello_out
                .insert(from.node, HelloState::Accepted(theirs));
        }
        for w in waiters {
            let r = match &refusal {
                None => Ok(theirs),
                Some(reason) => Err(RpcError::VersionMismatch {
                    ours,
                    theirs,
                    reason: reason.clone(),
                }),
            };
            drop(w.send(r));
        }
    }
}
