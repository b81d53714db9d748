//! Join tokens: `CLD1-<sha256 of the CA certificate, hex>-<id>-<secret>`.
//!
//! The digest lets the joiner pin the CA before it sends anything secret; the id names the
//! token in listings and revocations; the secret is stored only as its SHA-256
//! ([`JoinTokenRecord::secret_sha256`]). Id and secret are lowercase base32, so `-` only
//! ever separates fields.
//!
//! ```rust
//! use std::time::{Duration, SystemTime};
//!
//! use cloudless_net::identity::{ClusterCa, JoinToken, TokenRole};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ca = ClusterCa::init("home", SystemTime::now())?;
//! let token = JoinToken::generate(ca.digest())?;
//! // Stored: the hash of the secret only, with its role, expiry and use limit.
//! let record = token.record(TokenRole::Agent, 1_000, Duration::from_secs(3600), Some(1));
//! assert_eq!(record.secret_sha256, token.secret_sha256());
//! assert_eq!(record.expires_at_ms, 3_601_000);
//!
//! // Shown once to the operator, pasted on the joining node, which pins the CA from it.
//! let text = token.reveal();
//! assert!(text.starts_with("CLD1-"));
//! let parsed = JoinToken::parse(&text)?;
//! assert_eq!((parsed.id(), parsed.ca_digest()), (token.id(), ca.digest()));
//! assert!(!format!("{parsed:?}").contains(text.rsplit('-').next().unwrap_or("?")));
//! assert!(JoinToken::parse("CLD1-not-a-token").is_err());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use cloudless_core::state::JoinTokenRecord;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::IdentityError;
use super::base32;
use super::ca::fill_random;
use super::spiffe::CaDigest;

/// Prefix and format version of join tokens.
pub const PREFIX: &str = "CLD1";
/// Random bytes in a token id (8 base32 characters).
const ID_BYTES: usize = 5;
/// Random bytes in a token secret (32 base32 characters, 160 bits).
const SECRET_BYTES: usize = 20;

/// Why a join token string is malformed. Each variant names the field that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token does not start with `CLD1-`.
    #[error("not a Cloudless join token (expected the prefix {PREFIX}-)")]
    WrongPrefix,
    /// The token does not have four `-`-separated fields.
    #[error("malformed join token: expected {PREFIX}-<ca digest>-<id>-<secret>")]
    Malformed,
    /// The CA digest is not 64 hex digits.
    #[error("the CA digest in the join token must be 64 lowercase hex digits (got {0} characters)")]
    BadDigest(usize),
    /// The id has the wrong length or characters outside lowercase base32.
    #[error("the token id is damaged (expected {ID_CHARS} characters of [a-z2-7])")]
    BadId,
    /// The secret has the wrong length or characters outside lowercase base32.
    #[error("the token secret is damaged (expected {SECRET_CHARS} characters of [a-z2-7])")]
    BadSecret,
}

const ID_CHARS: usize = (ID_BYTES * 8).div_ceil(5);
const SECRET_CHARS: usize = (SECRET_BYTES * 8).div_ceil(5);

/// The role a join token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TokenRole {
    /// Joins a worker node.
    Agent,
    /// Joins a control-plane member.
    Coordinator,
}

impl TokenRole {
    /// The role as stored in [`JoinTokenRecord::role`].
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Agent => "agent",
            TokenRole::Coordinator => "coordinator",
        }
    }
}

/// A parsed join token. The secret is wiped from memory on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    ca_digest: CaDigest,
    id: String,
    secret: Zeroizing<String>,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_digest", &hex::encode(self.ca_digest))
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl JoinToken {
    /// A fresh token for the CA with digest `ca_digest`.
    pub fn generate(ca_digest: CaDigest) -> Result<Self, IdentityError> {
        let mut id = [0u8; ID_BYTES];
        let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
        fill_random(&mut id)?;
        fill_random(secret.as_mut())?;
        Ok(Self {
            ca_digest,
            id: base32::encode(&id),
            secret: Zeroizing::new(base32::encode(secret.as_ref())),
        })
    }

    /// Parses `CLD1-<digest>-<id>-<secret>` (surrounding whitespace is ignored).
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let s = s.trim();
        let rest = s
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('-'))
            .ok_or(TokenError::WrongPrefix)?;
        let mut parts = rest.split('-');
        let (Some(digest), Some(id), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let lower_hex = digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let mut ca_digest = [0u8; 32];
        if digest.len() != 64 || !lower_hex || hex::decode_to_slice(digest, &mut ca_digest).is_err()
        {
            return Err(TokenError::BadDigest(digest.len()));
        }
        if id.len() != ID_CHARS || !base32::is_valid(id) {
            return Err(TokenError::BadId);
        }
        if secret.len() != SECRET_CHARS || !base32::is_valid(secret) {
            return Err(TokenError::BadSecret);
        }
        Ok(Self {
            ca_digest,
            id: id.to_owned(),
            secret: Zeroizing::new(secret.to_owned()),
        })
    }

    /// The full token text, secret included: show it to the operator once, never log it.
    pub fn reveal(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{PREFIX}-{}-{}-{}",
            hex::encode(self.ca_digest),
            self.id,
            self.secret.as_str()
        ))
    }

    /// The pinned CA digest.
    pub fn ca_digest(&self) -> CaDigest {
        self.ca_digest
    }

    /// The public token id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// SHA-256 of the secret, lowercase hex: the only form of the secret that is stored.
    pub fn secret_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }

    /// The record to store through `Command::CreateJoinToken`: valid for `ttl` from `now_ms`,
    /// for at most `max_uses` joins (unlimited if `None`).
    pub fn record(
        &self,
        role: TokenRole,
        now_ms: u64,
        ttl: Duration,
        max_uses: Option<u32>,
    ) -> JoinTokenRecord {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        JoinTokenRecord {
            id: self.id.clone(),
            role: role.as_str().to_owned(),
            secret_sha256: self.secret_sha256(),
            expires_at_ms: now_ms.saturating_add(ttl_ms),
            max_uses,
            uses: 0,
            revoked: false,
            created_at_ms: now_ms,
        }
    }
}
