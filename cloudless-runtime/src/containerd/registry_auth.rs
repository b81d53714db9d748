//! Registry authentication: parsing `WWW-Authenticate` challenges, Basic credentials, the
//! bearer-token flow (GET the challenge's realm, anonymously or with Basic credentials, for a
//! token scoped to one repository) and the per-registry, per-scope token cache.
//!
//! Credentials and tokens are never logged and never appear in errors; a token is kept until
//! shortly before the expiry its issuer gave (60 s when it gave none, as the distribution spec
//! says), and dropped at once when the registry refuses it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::time::Instant;

use super::registry_config::RegistryCredentials;

/// Why a registry exchange failed. Each names the registry; none carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry (or its token realm) refused the credentials, or demanded some and none
    /// are configured.
    #[error("registry {registry}: unauthorized: {detail}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// What was refused.
        detail: String,
    },
    /// The registry could not be reached (connection, TLS handshake or certificate, timeout).
    #[error("registry {registry}: unreachable: {detail}")]
    Unreachable {
        /// Registry host.
        registry: String,
        /// The transport error, with its causes.
        detail: String,
    },
    /// The registry answered something we cannot use.
    #[error("registry {registry}: {detail}")]
    Protocol {
        /// Registry host.
        registry: String,
        /// What was wrong.
        detail: String,
    },
    /// The registry's configuration cannot be used (CA file, scheme of a token realm...).
    #[error("registry {registry}: configuration: {reason}")]
    Config {
        /// Registry host.
        registry: String,
        /// What is wrong.
        reason: String,
    },
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=...`.
    Basic,
    /// `Bearer realm=...,service=...,scope=...`.
    Bearer {
        /// Token endpoint URL.
        realm: String,
        /// `service` parameter for the token request.
        service: Option<String>,
        /// `scope` the registry asked for.
        scope: Option<String>,
    },
}

/// Splits the parameters `k=v, k="quoted, v"` of a challenge into pairs (keys lower-cased).
fn params(mut s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches([' ', '\t', ',']);
        let Some(eq) = s.find('=') else {
            return out;
        };
        let key = s[..eq].trim().to_ascii_lowercase();
        s = s[eq + 1..].trim_start();
        let value;
        if let Some(rest) = s.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = rest.char_indices();
            let mut end = rest.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            v.push(next);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            s = &rest[end.min(rest.len())..];
        } else {
            let end = s.find(',').unwrap_or(s.len());
            value = s[..end].trim().to_owned();
            s = &s[end..];
        }
        out.push((key, value));
    }
}

/// Parses a `WWW-Authenticate` header value; `None` for schemes we do not speak.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once([' ', '\t']).unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut scope = None;
    for (k, v) in params(rest) {
        match k.as_str() {
            "realm" => realm = Some(v),
            "service" => service = Some(v),
            "scope" => scope = Some(v),
            _ => {}
        }
    }
    Some(Challenge::Bearer {
        realm: realm.filter(|r| !r.is_empty())?,
        service,
        scope,
    })
}

/// The `Authorization` value for Basic credentials.
pub(crate) fn basic_header(c: &RegistryCredentials) -> String {
    format!(
        "Basic {}",
        BASE64.encode(format!("{}:{}", c.username, c.password))
    )
}

/// Percent-encodes a query component.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token request URL: the realm with `service` and `scope` added to its query.
pub(crate) fn token_url(realm: &str, service: Option<&str>, scope: &str) -> String {
    let mut url = realm.to_owned();
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    if let Some(service) = service {
        url.push(sep);
        url.push_str("service=");
        url.push_str(&encode(service));
        sep = '&';
    }
    url.push(sep);
    url.push_str("scope=");
    url.push_str(&encode(scope));
    url
}

/// Largest token accepted.
const MAX_TOKEN_BYTES: usize = 64 << 10;
/// Longest token lifetime believed from a registry's `expires_in` (one day).
const MAX_TOKEN_LIFETIME_SECS: u64 = 86_400;
/// Lifetime assumed when the token response gives none (distribution spec).
const DEFAULT_EXPIRES_IN: u64 = 60;

/// A token and how long it may be used.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// The bearer token.
    pub(crate) value: String,
    /// Lifetime from now.
    pub(crate) lifetime: Duration,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Parses a token endpoint's JSON answer (`token`, else `access_token`; `expires_in`).
pub(crate) fn parse_token(body: &[u8]) -> Result<Token, String> {
    let resp: TokenResponse = serde_json::from_slice(body)
        .map_err(|e| format!("token response is not the expected JSON: {e}"))?;
    let value = resp
        .token
        .filter(|t| !t.is_empty())
        .or(resp.access_token.filter(|t| !t.is_empty()))
        .ok_or("token response has neither token nor access_token")?;
    if value.len() > MAX_TOKEN_BYTES || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("token response holds a token that cannot be sent in a header".to_owned());
    }
    // A registry's `expires_in` is trusted up to a day: a huge value must not overflow the
    // cache's deadline (and a token kept that long would outlive any sane rotation).
    let secs = resp
        .expires_in
        .unwrap_or(DEFAULT_EXPIRES_IN)
        .min(MAX_TOKEN_LIFETIME_SECS);
    // Renew a little early: a token must not expire between our check and the registry's.
    let margin = (secs / 10).clamp(1, 30);
    Ok(Token {
        value,
        lifetime: Duration::from_secs(secs.saturating_sub(margin)),
    })
}

struct Cached {
    value: String,
    until: Instant,
}

/// Auth state shared by all pulls of a runtime: which registries asked for Basic auth, and the
/// bearer tokens per (registry, scope) until they expire.
#[derive(Default)]
pub(crate) struct AuthCache {
    basic: Mutex<HashSet<String>>,
    tokens: Mutex<HashMap<(String, String), Cached>>,
}

impl AuthCache {
    /// The cached token for `registry` and `scope`, if still valid.
    pub(crate) fn token(&self, registry: &str, scope: &str) -> Option<String> {
        let mut tokens = self.tokens.lock().ok()?;
        let key = (registry.to_owned(), scope.to_owned());
        match tokens.get(&key) {
            Some(c) if Instant::now() < c.until => Some(c.value.clone()),
            Some(_) => {
                tokens.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Keeps `token` for `registry` and `scope`.
    pub(crate) fn store(&self, registry: &str, scope: &str, token: &Token) {
        if let Ok(mut tokens) = self.tokens.lock() {
            let now = Instant::now();
            tokens.retain(|_, c| now < c.until);
            tokens.insert(
                (registry.to_owned(), scope.to_owned()),
                Cached {
                    value: token.value.clone(),
                    until: now + token.lifetime,
                },
            );
        }
    }

    /// Drops the token for `registry` and `scope` (the registry refused it).
    pub(crate) fn forget(&self, registry: &str, scope: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(&(registry.to_owned(), scope.to_owned()));
        }
    }

    /// Whether `registry` asked for Basic auth before (credentials are then sent up front).
    pub(crate) fn wants_basic(&self, registry: &str) -> bool {
        self.basic.lock().is_ok_and(|b| b.contains(registry))
    }

    /// Remembers that `registry` asks for Basic auth.
    pub(crate) fn set_basic(&self, registry: &str) {
        if let Ok(mut b) = self.basic.lock() {
            b.insert(registry.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let h = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:org/app:pull,push""#;
        assert_eq!(
            parse_challenge(h),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:org/app:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge("bearer realm=http://127.0.0.1:1/t , scope=\"a\\\"b\""),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: None,
                scope: Some("a\"b".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Basic"), Some(Challenge::Basic));
        for bad in [
            "",
            "Digest realm=x",
            "Bearer service=x",
            "Bearer realm=\"\"",
        ] {
            assert_eq!(parse_challenge(bad), None, "{bad}");
        }
    }

    #[test]
    fn token_urls_encode_service_and_scope() {
        assert_eq!(
            token_url("https://a/t", Some("reg ok"), "repository:o/a:pull"),
            "https://a/t?service=reg%20ok&scope=repository%3Ao%2Fa%3Apull"
        );
        assert_eq!(
            token_url("https://a/t?x=1", None, "s"),
            "https://a/t?x=1&scope=s"
        );
    }

    #[test]
    fn basic_header_is_base64_of_user_colon_password() {
        let c = RegistryCredentials::new("aladdin", "open sesame");
        assert_eq!(basic_header(&c), "Basic YWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn token_responses() {
        let t = parse_token(br#"{"token":"abc","expires_in":300}"#).expect("token");
        assert_eq!(t.value, "abc");
        assert_eq!(t.lifetime, Duration::from_secs(270));
        let t = parse_token(br#"{"access_token":"xyz"}"#).expect("access_token");
        assert_eq!((t.value.as_str(), t.lifetime.as_secs()), ("xyz", 54));
        let t = parse_token(br#"{"token":"","access_token":"xyz","expires_in":1}"#).expect("t");
        assert_eq!((t.value.as_str(), t.lifetime.as_secs()), ("xyz", 0));
        // A huge expires_in is capped at a day (no deadline overflow).
        let t = parse_token(br#"{"token":"big","expires_in":18446744073709551615}"#).expect("big");
        assert_eq!(t.lifetime, Duration::from_secs(86_400 - 30));
        for bad in [
            &br#"{}"#[..],
            br#"{"token":""}"#,
            br#"{"token":"a b"}"#,
            br#"not json"#,
        ] {
            assert!(
                parse_token(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(!format!("{t:?}").contains("xyz"));
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_cached_per_registry_and_scope_until_expiry() {
        let cache = AuthCache::default();
        let token = Token {
            value: "t1".into(),
            lifetime: Duration::from_secs(270),
        };
        cache.store("r:1", "repository:a:pull", &token);
        assert_eq!(
            cache.token("r:1", "repository:a:pull").as_deref(),
            Some("t1")
        );
        assert_eq!(cache.token("r:1", "repository:b:pull"), None);
        assert_eq!(cache.token("r:2", "repository:a:pull"), None);
        tokio::time::advance(Duration::from_secs(269)).await;
        assert_eq!(
            cache.token("r:1", "repository:a:pull").as_deref(),
            Some("t1")
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.token("r:1", "repository:a:pull"), None);
        cache.store("r:1", "repository:a:pull", &token);
        cache.forget("r:1", "repository:a:pull");
        assert_eq!(cache.token("r:1", "repository:a:pull"), None);
        assert!(!cache.wants_basic("r:1"));
        cache.set_basic("r:1");
        assert!(cache.wants_basic("r:1") && !cache.wants_basic("r:2"));
    }
}
