//! The typed error of building and starting a [`Fabric`](super::Fabric).

use cloudless_net::rpc::RpcConfigError;

use crate::agent::AgentError;
use crate::coordinator::CoordinatorError;
use crate::protocol::RpcControlConfigError;

/// Why a Fabric could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum FabricError {
    /// Neither `.coordinator(..)` nor `.agent(..)` was called.
    #[error("no role: call .coordinator(..), .agent(..) or both")]
    NoRole,
    /// A building block (or setting) a role needs was not given and has no safe default.
    #[error("the {role} role needs {block}: {hint}")]
    Missing {
        /// The role that needs it (`coordinator`, `agent`).
        role: &'static str,
        /// The builder method that provides it (`consensus`, `runtime`, `transport`, ...).
        block: &'static str,
        /// What to do.
        hint: &'static str,
    },
    /// The transport's identity does not fit the roles or the node id.
    #[error("transport identity: {0}")]
    Identity(String),
    /// The default scheduler could not be built.
    #[error("scheduler: {0}")]
    Scheduler(String),
    /// The RPC settings are invalid.
    #[error("rpc: {0}")]
    Rpc(#[from] RpcConfigError),
    /// The coordinator list or control-call settings are invalid.
    #[error(transparent)]
    Control(#[from] RpcControlConfigError),
    /// The consensus factory of `consensus_with` failed.
    #[error("consensus: {0}")]
    Consensus(String),
    /// The coordinator did not start.
    #[error("coordinator: {0}")]
    Coordinator(#[from] CoordinatorError),
    /// The agent did not start.
    #[error("agent: {0}")]
    Agent(#[from] AgentError),
}

impl FabricError {
    /// The missing block's builder method, for [`FabricError::Missing`].
    pub fn missing_block(&self) -> Option<&'static str> {
        match self {
            FabricError::Missing { block, .. } => Some(block),
            _ => None,
        }
    }
}
