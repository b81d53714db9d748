//! Join-token commands: create, use, revoke. Only SHA-256 hashes of secrets are stored.

use super::{ApplyError, ClusterState, CommandResult, Ctx, ObjectKind, Touched};
use crate::event::{EventCategory, Severity};
use crate::state::JoinTokenRecord;

/// Longest token id accepted.
const MAX_ID_LEN: usize = 128;

fn subject(id: &str) -> String {
    format!("token/{id}")
}

fn refused(reason: &str) -> ApplyError {
    ApplyError::TokenRefused {
        reason: reason.to_owned(),
    }
}

fn check_id(id: &str) -> Result<(), ApplyError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(ok_char) {
        return Err(ApplyError::Invalid(format!(
            "token id must be 1..={MAX_ID_LEN} characters of [A-Za-z0-9._-]"
        )));
    }
    Ok(())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Compares two byte strings in time that depends only on their lengths, so response timing
/// does not reveal how much of a stored hash a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Stores a new token record. It must be fresh: no uses, not revoked.
pub(super) fn create(
    state: &mut ClusterState,
    cx: &mut Ctx,
    token: &JoinTokenRecord,
) -> Result<CommandResult, ApplyError> {
    check_id(&token.id)?;
    if !matches!(token.role.as_str(), "agent" | "coordinator") {
        return Err(ApplyError::Invalid(format!(
            "token role must be agent or coordinator (got {:?})",
            token.role
        )));
    }
    if !is_sha256_hex(&token.secret_sha256) {
        return Err(ApplyError::Invalid(
            "token secret hash must be 64 lowercase hex digits".into(),
        ));
    }
    if token.uses != 0 || token.revoked {
        return Err(ApplyError::Invalid(
            "a new token must be unused and not revoked".into(),
        ));
    }
    if state.join_tokens.contains_key(&token.id) {
        return Err(ApplyError::AlreadyExists {
            kind: ObjectKind::JoinToken,
            key: token.id.clone(),
        });
    }
    state.join_tokens.insert(token.id.clone(), token.clone());
    cx.touch(Touched::JoinToken(token.id.clone()));
    cx.event(
        EventCategory::Security,
        Severity::Info,
        subject(&token.id),
        "JoinTokenCreated",
        format!(
            "{} token {} created, expires at {} ms",
            token.role, token.id, token.expires_at_ms
        ),
    );
    Ok(CommandResult::Done)
}

/// Counts one use of a token.
///
/// The secret is checked before anything else, and an unknown id gets the same answer as a
/// wrong secret: someone without the secret learns nothing about which tokens exist or
/// whether they are expired or revoked.
pub(super) fn use_token(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: &str,
    secret_sha256: &str,
) -> Result<CommandResult, ApplyError> {
    let token = state
        .join_tokens
        .get_mut(id)
        .filter(|t| constant_time_eq(t.secret_sha256.as_bytes(), secret_sha256.as_bytes()))
        .ok_or_else(|| refused("unknown token or wrong secret"))?;
    if token.revoked {
        return Err(refused("revoked"));
    }
    if cx.at_ms >= token.expires_at_ms {
        return Err(refused("expired"));
    }
    if token.max_uses.is_some_and(|max| token.uses >= max) {
        return Err(refused("used up"));
    }
    token.uses = token
        .uses
        .checked_add(1)
        .ok_or_else(|| refused("used up"))?;
    let role = token.role.clone();
    cx.touch(Touched::JoinToken(id.to_owned()));
    cx.event(
        EventCategory::Security,
        Severity::Info,
        subject(id),
        "JoinTokenUsed",
        format!("{role} token {id} used"),
    );
    Ok(CommandResult::JoinTokenUsed { role })
}

/// Revokes a token; revoking a revoked token changes nothing.
pub(super) fn revoke(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: &str,
) -> Result<CommandResult, ApplyError> {
    let token = state
        .join_tokens
        .get_mut(id)
        .ok_or_else(|| ApplyError::NotFound {
            kind: ObjectKind::JoinToken,
            key: id.to_owned(),
        })?;
    if !token.revoked {
        token.revoked = true;
        cx.touch(Touched::JoinToken(id.to_owned()));
        cx.event(
            EventCategory::Security,
            Severity::Warning,
            subject(id),
            "JoinTokenRevoked",
            format!("token {id} revoked"),
        );
    }
    Ok(CommandResult::Done)
}

/// Removes token records that expired at or before `now_ms`.
pub(super) fn prune(
    state: &mut ClusterState,
    cx: &mut Ctx,
    now_ms: u64,
) -> Result<CommandResult, ApplyError> {
    let expired: Vec<String> = state
        .join_tokens
        .values()
        .filter(|t| t.expires_at_ms <= now_ms)
        .map(|t| t.id.clone())
        .collect();
    if expired.is_empty() {
        return Ok(CommandResult::Done);
    }
    for id in &expired {
        state.join_tokens.remove(id);
        cx.touch(Touched::JoinToken(id.clone()));
    }
    cx.event(
        EventCategory::Security,
        Severity::Info,
        "token/*".to_owned(),
        "JoinTokensPruned",
        format!(
            "{} expired token(s) removed: {}",
            expired.len(),
            expired.join(", ")
        ),
    );
    Ok(CommandResult::Done)
}
