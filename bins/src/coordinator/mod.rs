//! `cloudless-coordinator`: settings, data directory, and the `init | run | join | snapshot |
//! status | token` commands. Design record: `docs/design/daemons.md`.
//!
//! ```text
//!  <data-dir>/ (0700)
//!    coordinator.json        cluster, node id, name, raft address, join state (0600)
//!    ca/ca.pem, ca/ca.key    cluster CA (key 0600; or ca.key.locked with a passphrase)
//!    identity/node.pem,.key  this coordinator's certificate and key (0600)
//!    raft/                   redb: raft log, vote, state machine, snapshots
//!    admin.pem               admin credentials written by `init` (0600; move it off the host)
//!
//!  ports (default layout from --listen P):  P control (QUIC mTLS: agents, coordinators)
//!    P+1 raft (QUIC mTLS, coordinators only)  P+2 enrollment (QUIC, token)  P+3 API (gRPC/TLS)
//!
//!  API forwarding: every member answers `Daemon/ApiAddress` on its raft port (coordinators
//!  only); each member asks the raft members for their API addresses (on start, for new members
//!  every second, for all every 30 s) and hands them to its API server, which then forwards
//!  calls to the leader instead of answering Unavailable.
//! ```
//!
//! Files: `config` (flags, config file, resolved settings), `data_dir` (`coordinator.json`,
//! the CA and this member's credentials), `raft` (the raft member and proposals to it),
//! `api_peers` (the members' API addresses for forwarding), `init`, `join` (enrollment and
//! becoming a voter), `run` (every part of a running coordinator), `snapshot` (save and
//! restore).

mod api_peers;
mod config;
mod data_dir;
mod init;
mod join;
mod raft;
mod run;
mod snapshot;

pub use api_peers::{API_ADDRESS, API_PEER_SYNC_INTERVAL, ApiAddressRequest, ApiAddressResponse};
pub use config::{CoordinatorFile, CoordinatorFlags, CoordinatorSettings};
pub use data_dir::Meta;
pub use init::{InitOutput, init};
pub use join::{ADD_VOTER, AddVoterRequest, AddVoterResponse, JoinArgs, join_setup};
pub use run::{Running, run};
pub use snapshot::{snapshot_restore, snapshot_save};

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow};

use crate::common;

/// Metadata file of a coordinator data dir.
pub const META_FILE: &str = "coordinator.json";
/// CA subdirectory.
pub const CA_DIR: &str = "ca";
/// Identity subdirectory.
pub const IDENTITY_DIR: &str = "identity";
/// Raft data subdirectory.
pub const RAFT_DIR: &str = "raft";
/// Default admin credentials file name inside the data dir.
pub const ADMIN_FILE: &str = "admin.pem";
/// Default control port.
pub const DEFAULT_PORT: u16 = 7400;
/// Lifetime of the admin certificate `init` writes.
pub const ADMIN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// Default lifetime of a join token.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long start-up waits for this member to see a leader.
pub const LEADER_WAIT: Duration = Duration::from_secs(30);

/// Joins the cluster `running` is part of as an admin client of its API.
pub fn admin_client(api: &[String], credentials: &Path) -> Result<cloudless::Client> {
    let creds = common::load_admin_credentials(credentials)?;
    cloudless::Client::new(api.iter().cloned(), &creds).map_err(|e| anyhow!("api: {e}"))
}
