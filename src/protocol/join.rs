//! Agent join: enroll once with a join token, then reuse the credentials on every start.
//!
//! ```text
//!  <data_dir>/identity/node.key (0600)   the node's private key, generated here, never sent
//!  <data_dir>/identity/node.pem          node certificate + cluster CA certificate
//!
//!  join(): both files present ──▶ load them (no enrollment, no token needed)
//!          key only (a crash between key and certificate) ──▶ enroll with that key
//!          nothing ──▶ generate the key, write it (0600), enroll, write the certificate
//! ```
//!
//! Enrollment pins the cluster CA by the digest inside the token before anything secret is
//! sent (`cloudless_net::identity::enroll`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cloudless_core::node::NodeReport;
use cloudless_core::transport::Role;
use cloudless_net::identity::enroll::{EnrollError, EnrollParams, enroll_patiently};
use cloudless_net::identity::{
    IdentityError, JoinToken, NODE_CERT_FILE, NODE_KEY_FILE, NodeCredentials, NodeKey, TokenError,
    TokenRole,
};

/// The subdirectory of the agent's data dir that holds its identity.
pub const IDENTITY_DIR: &str = "identity";

/// How long [`join`] keeps asking while the coordinator is unreachable or answers
/// `Unavailable` (a leader election, a quorum still forming) before it gives up.
pub const ENROLL_PATIENCE: Duration = Duration::from_secs(60);

/// What an agent needs to join.
#[derive(Debug, Clone)]
pub struct JoinParams {
    /// The agent's data dir; the identity goes to `<data_dir>/identity/`.
    pub data_dir: PathBuf,
    /// The join token (`CLD1-...`); needed only until the first enrollment succeeded.
    pub token: Option<String>,
    /// A coordinator's enrollment endpoint.
    pub coordinator: SocketAddr,
    /// The node's human name (DNS-1123 label).
    pub name: String,
    /// The node's first resource report.
    pub report: NodeReport,
    /// Deadline of the enrollment exchange.
    pub timeout: Duration,
}

/// The agent's identity after [`join`].
#[derive(Debug, Clone)]
pub struct Joined {
    /// Credentials for the cluster transport (`QuicTransport::bind`).
    pub credentials: NodeCredentials,
    /// True if this call enrolled; false if stored credentials were reused.
    pub enrolled: bool,
}

/// Why [`join`] failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The agent has no stored identity and no token was given.
    #[error("token: this node has not joined yet and no join token was given")]
    TokenRequired,
    /// The token is malformed.
    #[error("token: {0}")]
    Token(#[from] TokenError),
    /// The identity directory could not be created.
    #[error("{path}: {reason}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Stored key or certificate could not be read or written.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Enrollment failed (unreachable, CA mismatch, refused token, ...).
    #[error(transparent)]
    Enroll(#[from] EnrollError),
    /// The stored or issued certificate is not an agent's.
    #[error("the certificate names {0}, not an agent")]
    NotAnAgent(String),
}

/// Loads the agent's stored identity, or enrolls with the token and stores it (asking again
/// for up to [`ENROLL_PATIENCE`] while the failure is transient).
pub async fn join(params: JoinParams) -> Result<Joined, JoinError> {
    let dir = params.data_dir.join(IDENTITY_DIR);
    create_private_dir(&dir)?;
    let key_path = dir.join(NODE_KEY_FILE);
    if key_path.exists() && dir.join(NODE_CERT_FILE).exists() {
        let credentials = NodeCredentials::load(&dir)?;
        check_agent(&credentials)?;
        tracing::info!(identity = %credentials.identity(), "reusing the stored identity");
        return Ok(Joined {
            credentials,
            enrolled: false,
        });
    }
    let token = JoinToken::parse(params.token.as_deref().ok_or(JoinError::TokenRequired)?)?;
    let key = if key_path.exists() {
        NodeKey::load(&key_path)?
    } else {
        let key = NodeKey::generate()?;
        key.save(&key_path)?;
        key
    };
    let credentials = enroll_patiently(
        params.coordinator,
        &token,
        &key,
        EnrollParams {
            name: params.name,
            role: TokenRole::Agent,
            report: params.report,
        },
        params.timeout,
        ENROLL_PATIENCE,
    )
    .await?;
    check_agent(&credentials)?;
    credentials.save(&dir)?;
    tracing::info!(identity = %credentials.identity(), "enrolled");
    Ok(Joined {
        credentials,
        enrolled: true,
    })
}

fn check_agent(c: &NodeCredentials) -> Result<(), JoinError> {
    if c.identity().role == Role::Agent {
        Ok(())
    } else {
        Err(JoinError::NotAnAgent(c.identity().to_string()))
    }
}

/// Creates `dir` (and parents) with mode 0700 for the directory itself.
fn create_private_dir(dir: &Path) -> Result<(), JoinError> {
    let err = |e: std::io::Error| JoinError::DataDir {
        path: dir.to_owned(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}
