//! Conformance suite for the [`SecretStore`] contract.
//!
//! ```
//! use std::sync::Arc;
//! use cloudless_core::testing::mem_secret_store::MemSecretStore;
//!
//! // The suite hands each store a manual clock it moves to test token expiry.
//! futures::executor::block_on(cloudless_core::testing::secret_store::conformance(|clock| {
//!     MemSecretStore::new(Arc::new(clock), 7)
//! }));
//! ```
//!
//! `make` receives a [`ManualClock`] the store must read its time from: the suite moves it to
//! test token expiry. Each check runs on a fresh store and panics with the contract point it
//! broke. "Encrypted at rest" cannot be observed through the trait; each implementation tests
//! its storage format itself.

use std::collections::BTreeMap;
use std::fmt::Debug;

use super::check;
use crate::clock::{Clock, ManualClock};
use crate::ids::NodeId;
use crate::secret_store::{SecretError, SecretStore, SecretValue};

const SUITE: &str = "SecretStore";
const START_MS: u64 = 1_700_000_000_000;
const NODE: NodeId = NodeId(7);
const OTHER_NODE: NodeId = NodeId(8);
// Distinctive values, searched for in every audit record and Debug/Display output.
const VALUE_A: &str = "s3cr3t-alpha-1f9c";
const VALUE_B: &str = "s3cr3t-bravo-77e2";

/// Runs every check of the [`SecretStore`] contract, each on a fresh store from `make`.
pub async fn conformance<S: SecretStore + Debug>(make: impl Fn(ManualClock) -> S) {
    put_meta_list(&make(ManualClock::new(START_MS))).await;
    rotate_keeps_values(&make(ManualClock::new(START_MS))).await;
    let clock = ManualClock::new(START_MS);
    tokens(&make(clock.clone()), &clock).await;
    invalid_input(&make(ManualClock::new(START_MS))).await;
    audit_and_redaction(&make(ManualClock::new(START_MS))).await;
}

/// A value map from string pairs.
pub fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretValue> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretValue(v.as_bytes().to_vec())))
        .collect()
}

async fn redeem_values<S: SecretStore>(
    s: &S,
    token: &str,
    what: &str,
) -> BTreeMap<String, SecretValue> {
    check::ok(SUITE, what, s.redeem(token, NODE).await).1
}

fn refused(e: &SecretError) -> bool {
    matches!(e, SecretError::TokenRefused(_))
}

async fn put_meta_list<S: SecretStore>(s: &S) {
    let m1 = check::ok(
        SUITE,
        "put",
        s.put(
            "prod",
            "db",
            values(&[("user", "u"), ("password", VALUE_A)]),
        )
        .await,
    );
    check::that(
        SUITE,
        "put reports keys by name and version 1",
        m1.keys == ["password", "user"] && m1.version == 1,
    );
    check::that(
        SUITE,
        "put reports namespace and name",
        m1.namespace == "prod" && m1.name == "db",
    );
    let m2 = check::ok(
        SUITE,
        "put again",
        s.put("prod", "db", values(&[("token", VALUE_B)])).await,
    );
    check::that(
        SUITE,
        "put replaces all keys and bumps the version",
        m2.keys == ["token"] && m2.version > m1.version,
    );
    let meta = check::ok(SUITE, "meta", s.meta("prod", "db").await);
    check::that(SUITE, "meta returns what put returned", meta == m2);
    check::ok(
        SUITE,
        "put another",
        s.put("prod", "api", values(&[("k", "v")])).await,
    );
    check::ok(
        SUITE,
        "put elsewhere",
        s.put("dev", "db", values(&[("k", "v")])).await,
    );
    let names: Vec<String> = check::ok(SUITE, "list", s.list("prod").await)
        .into_iter()
        .map(|m| m.name)
        .collect();
    check::that(
        SUITE,
        "list returns the namespace's secrets by name",
        names == ["api", "db"],
    );
    check::that(
        SUITE,
        "list of an empty namespace is empty",
        check::ok(SUITE, "list", s.list("none").await).is_empty(),
    );
    let t = check::ok(
        SUITE,
        "issue",
        s.issue_token("prod", "db", NODE, 60_000).await,
    );
    let got = redeem_values(s, &t.token, "redeem").await;
    check::that(
        SUITE,
        "redeem returns exactly the current values",
        got == values(&[("token", VALUE_B)]),
    );
}

async fn rotate_keeps_values<S: SecretStore>(s: &S) {
    let m1 = check::ok(
        SUITE,
        "put",
        s.put("ns", "s", values(&[("a", VALUE_A)])).await,
    );
    let t = check::ok(SUITE, "issue", s.issue_token("ns", "s", NODE, 60_000).await);
    let m2 = check::ok(SUITE, "rotate", s.rotate("ns", "s").await);
    check::that(
        SUITE,
        "rotate bumps the version and keeps the keys",
        m2.version > m1.version && m2.keys == m1.keys,
    );
    let got = redeem_values(s, &t.token, "redeem after rotate").await;
    check::that(
        SUITE,
        "rotate leaves values unchanged (and tokens valid)",
        got == values(&[("a", VALUE_A)]),
    );
    check::err(
        SUITE,
        "rotate an unknown secret",
        "NotFound",
        s.rotate("ns", "nope").await,
        |e| matches!(e, SecretError::NotFound(_)),
    );
    check::ok(SUITE, "delete", s.delete("ns", "s").await);
    check::err(
        SUITE,
        "meta after delete",
        "NotFound",
        s.meta("ns", "s").await,
        |e| matches!(e, SecretError::NotFound(_)),
    );
    check::err(
        SUITE,
        "delete twice",
        "NotFound",
        s.delete("ns", "s").await,
        |e| matches!(e, SecretError::NotFound(_)),
    );
}

async fn tokens<S: SecretStore>(s: &S, clock: &ManualClock) {
    check::ok(
        SUITE,
        "put",
        s.put("ns", "s", values(&[("a", VALUE_A)])).await,
    );
    let t = check::ok(SUITE, "issue", s.issue_token("ns", "s", NODE, 1_000).await);
    check::that(
        SUITE,
        "a token expires at now + ttl",
        t.expires_at_ms == START_MS + 1_000,
    );
    let (grant, _) = check::ok(
        SUITE,
        "redeem by the audience",
        s.redeem(&t.token, NODE).await,
    );
    check::that(
        SUITE,
        "the grant names the token, secret, audience and expiry",
        grant.id == t.id
            && grant.namespace == "ns"
            && grant.name == "s"
            && grant.audience == NODE
            && grant.expires_at_ms == t.expires_at_ms,
    );
    check::err(
        SUITE,
        "redeem by another node",
        "TokenRefused",
        s.redeem(&t.token, OTHER_NODE).await.map(|r| r.0),
        refused,
    );
    check::err(
        SUITE,
        "redeem an unknown token",
        "TokenRefused",
        s.redeem("not-a-token", NODE).await.map(|r| r.0),
        refused,
    );
    let t2 = check::ok(
        SUITE,
        "issue another",
        s.issue_token("ns", "s", NODE, 1_000).await,
    );
    check::that(
        SUITE,
        "tokens are distinct",
        t2.token != t.token && t2.id != t.id,
    );
    check::that(
        SUITE,
        "token strings are long enough to be unguessable",
        t.token.len() >= 32,
    );
    clock.set_ms(START_MS + 999);
    check::ok(
        SUITE,
        "redeem just before expiry",
        s.redeem(&t.token, NODE).await,
    );
    clock.set_ms(START_MS + 1_000);
    check::that(
        SUITE,
        "the store reads the clock it was given",
        clock.now_ms() == START_MS + 1_000,
    );
    check::err(
        SUITE,
        "redeem at expiry",
        "TokenRefused",
        s.redeem(&t.token, NODE).await.map(|r| r.0),
        refused,
    );

    let long = check::ok(SUITE, "issue", s.issue_token("ns", "s", NODE, 60_000).await);
    check::ok(SUITE, "revoke", s.revoke_token(&long.id).await);
    check::err(
        SUITE,
        "redeem a revoked token",
        "TokenRefused",
        s.redeem(&long.token, NODE).await.map(|r| r.0),
        refused,
    );
    check::err(
        SUITE,
        "revoke an unknown id",
        "NotFound",
        s.revoke_token("no-such-id").await,
        |e| matches!(e, SecretError::NotFound(_)),
    );

    let doomed = check::ok(SUITE, "issue", s.issue_token("ns", "s", NODE, 60_000).await);
    check::ok(SUITE, "delete", s.delete("ns", "s").await);
    check::ok(
        SUITE,
        "put again under the same name",
        s.put("ns", "s", values(&[("a", VALUE_B)])).await,
    );
    check::err(
        SUITE,
        "redeem a token of a deleted secret",
        "TokenRefused",
        s.redeem(&doomed.token, NODE).await.map(|r| r.0),
        refused,
    );
    check::err(
        SUITE,
        "issue for an unknown secret",
        "NotFound",
        s.issue_token("ns", "nope", NODE, 1_000).await,
        |e| matches!(e, SecretError::NotFound(_)),
    );
    check::err(
        SUITE,
        "issue with ttl 0",
        "Invalid",
        s.issue_token("ns", "s", NODE, 0).await,
        |e| matches!(e, SecretError::Invalid(_)),
    );
    check::ok(
        SUITE,
        "issue with the longest ttl",
        s.issue_token("ns", "s", NODE, u64::MAX).await,
    );
}

async fn invalid_input<S: SecretStore>(s: &S) {
    let invalid = |e: &SecretError| matches!(e, SecretError::Invalid(_));
    for (ns, name) in [
        ("", "s"),
        ("ns", ""),
        ("Bad_NS", "s"),
        ("ns", "dots.not.ok"),
        ("ns", "-x"),
    ] {
        let res = s.put(ns, name, values(&[("k", "v")])).await;
        check::err(
            SUITE,
            &format!("put {ns:?}/{name:?}"),
            "Invalid",
            res,
            invalid,
        );
    }
    check::err(
        SUITE,
        "put with an empty key",
        "Invalid",
        s.put("ns", "s", values(&[("", "v")])).await,
        invalid,
    );
    check::err(
        SUITE,
        "meta of an unknown secret",
        "NotFound",
        s.meta("ns", "s").await,
        |e| matches!(e, SecretError::NotFound(_)),
    );
    check::that(
        SUITE,
        "rejected puts store nothing",
        check::ok(SUITE, "list", s.list("ns").await).is_empty(),
    );
    check::that(
        SUITE,
        "redeem of an empty token is refused",
        s.redeem("", NODE).await.is_err(),
    );
}

async fn audit_len<S: SecretStore>(s: &S) -> usize {
    check::ok(SUITE, "audit", s.audit().await).len()
}

/// Checks that the step just run (whose outcome was `as_documented`) appended at least one
/// record, the last of which has `action`.
async fn audited<S: SecretStore>(
    s: &S,
    before: usize,
    action: &str,
    step: &str,
    as_documented: bool,
) {
    check::that(
        SUITE,
        &format!("{step} behaves as documented"),
        as_documented,
    );
    let log = check::ok(SUITE, "audit", s.audit().await);
    check::that(
        SUITE,
        &format!("{step} leaves an audit record"),
        log.len() > before,
    );
    let last = log.last().map(|r| r.action.as_str());
    check::that(
        SUITE,
        &format!("{step} is audited as {action:?}, got {last:?}"),
        last == Some(action),
    );
}

async fn audit_and_redaction<S: SecretStore + Debug>(s: &S) {
    let n = audit_len(s).await;
    let ok = s
        .put("ns", "s", values(&[("a", VALUE_A), ("b", VALUE_B)]))
        .await
        .is_ok();
    audited(s, n, "put", "put", ok).await;
    let n = audit_len(s).await;
    let t = check::ok(SUITE, "issue", s.issue_token("ns", "s", NODE, 60_000).await);
    audited(s, n, "issue", "issue_token", true).await;
    let n = audit_len(s).await;
    let ok = s.meta("ns", "s").await.is_ok();
    audited(s, n, "meta", "meta", ok).await;
    let n = audit_len(s).await;
    let ok = s.list("ns").await.is_ok();
    audited(s, n, "list", "list", ok).await;
    let n = audit_len(s).await;
    let ok = s.redeem(&t.token, NODE).await.is_ok();
    audited(s, n, "redeem", "redeem", ok).await;
    let n = audit_len(s).await;
    let ok = s.redeem(&t.token, OTHER_NODE).await.is_err();
    audited(s, n, "deny", "redeem by the wrong audience", ok).await;
    let n = audit_len(s).await;
    let ok = s.rotate("ns", "s").await.is_ok();
    audited(s, n, "rotate", "rotate", ok).await;
    let n = audit_len(s).await;
    let ok = s.revoke_token(&t.id).await.is_ok();
    audited(s, n, "revoke", "revoke_token", ok).await;
    let n = audit_len(s).await;
    let ok = s.meta("ns", "missing").await.is_err();
    audited(s, n, "deny", "meta of an unknown secret", ok).await;
    let n = audit_len(s).await;
    let token_err = s.redeem(&t.token, NODE).await.map(|r| r.0);
    audited(
        s,
        n,
        "deny",
        "redeem of a revoked token",
        token_err.is_err(),
    )
    .await;
    let n = audit_len(s).await;
    let ok = s.delete("ns", "s").await.is_ok();
    audited(s, n, "delete", "delete", ok).await;

    let log = check::ok(SUITE, "audit", s.audit().await);
    check::that(
        SUITE,
        "reading the audit log does not grow it",
        audit_len(s).await == log.len(),
    );
    check::that(
        SUITE,
        "audit records are oldest first",
        log.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
    );
    let texts = [
        format!("{log:?}"),
        format!("{s:?}"),
        format!("{t:?}"),
        format!("{:?}", values(&[("a", VALUE_A)])),
        format!("{token_err:?}"),
        token_err.map_or_else(|e| e.to_string(), |_| String::new()),
    ];
    for text in &texts {
        for secret in [VALUE_A, VALUE_B, t.token.as_str()] {
            let what =
                format!("no value or token string in audit, Debug or Display output: {text}");
            check::that(SUITE, &what, !text.contains(secret));
        }
    }
}
