//! `kind: Secret`: key names, base64 data, no key in both maps.

use crate::manifest::decode::Report;
use crate::manifest::path::FieldPath;
use crate::secret::SecretSpec;

/// A secret key: `[-._a-zA-Z0-9]+`, at most 253 characters, and not `.` or `..` (keys become
/// file names when mounted).
pub(super) fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Standard base64 with padding (RFC 4648 §4), whitespace not allowed.
pub(super) fn is_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let pad = b.iter().rev().take_while(|c| **c == b'=').count();
    if pad > 2 {
        return false;
    }
    let body = &b[..b.len() - pad];
    body.iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

pub(super) fn check(r: &mut Report<'_>, p: &FieldPath, s: &SecretSpec) {
    if s.data.is_empty() && s.string_data.is_empty() {
        r.fail(
            p,
            "set data or stringData (a secret needs at least one key)",
        );
    }
    for (k, v) in &s.data {
        let at = p.key("data").key(k);
        if !is_key(k) {
            r.fail(&at, format!("invalid key {k:?}: expected [-._a-zA-Z0-9]+"));
        }
        if !is_base64(v) {
            r.fail(&at, "value is not valid base64 (standard alphabet, padded)");
        }
    }
    for k in s.string_data.keys() {
        let at = p.key("stringData").key(k);
        if !is_key(k) {
            r.fail(&at, format!("invalid key {k:?}: expected [-._a-zA-Z0-9]+"));
        }
        if s.data.contains_key(k) {
            r.fail(
                &at,
                format!("key {k:?} is also in data; set it in one place"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_shapes() {
        assert!(is_base64(""));
        assert!(is_base64("aGVsbG8="));
        assert!(is_base64("aGk="));
        assert!(!is_base64("aGVsbG8"));
        assert!(!is_base64("a==="));
        assert!(!is_base64("aGV sbG8="));
        assert!(!is_base64("aG=k"));
    }
}
