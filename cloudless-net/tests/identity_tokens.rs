//! Join-token text: format, parse errors per field, hashed-only records.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use std::time::Duration;

use cloudless_net::identity::{JoinToken, TokenError, TokenRole};

fn sample() -> JoinToken {
    JoinToken::generate([0xab; 32]).unwrap()
}

#[test]
fn tokens_round_trip_and_use_only_safe_characters() {
    let t = sample();
    let text = t.reveal();
    assert!(text.starts_with(&format!("CLD1-{}-", "ab".repeat(32))));
    let fields: Vec<&str> = text.split('-').collect();
    assert_eq!(fields.len(), 4, "{}", &*text);
    assert_eq!(fields[2].len(), 8);
    assert_eq!(fields[3].len(), 32);
    for f in &fields[2..] {
        assert!(
            f.bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        );
    }
    let back = JoinToken::parse(&format!("  {}\n", &*text)).unwrap();
    assert_eq!(back, t);
    assert_ne!(sample().id(), t.id(), "ids are random");
}

#[test]
fn debug_output_hides_the_secret() {
    let t = sample();
    let secret = t.reveal().rsplit('-').next().unwrap().to_owned();
    assert!(!format!("{t:?}").contains(&secret));
}

#[test]
fn parse_errors_name_the_damaged_field() {
    let t = sample();
    let text = t.reveal().to_string();
    let (id, secret) = (
        t.id().to_owned(),
        text.rsplit('-').next().unwrap().to_owned(),
    );
    let digest = "ab".repeat(32);
    let cases = [
        (text.replacen("CLD1", "CLD2", 1), TokenError::WrongPrefix),
        (
            format!("cld1-{digest}-{id}-{secret}"),
            TokenError::WrongPrefix,
        ),
        (format!("CLD1-{digest}-{id}"), TokenError::Malformed),
        (
            format!("CLD1-{digest}-{id}-{secret}-x"),
            TokenError::Malformed,
        ),
        (
            format!("CLD1-{}-{id}-{secret}", &digest[2..]),
            TokenError::BadDigest(62),
        ),
        (
            format!("CLD1-{}-{id}-{secret}", digest.to_uppercase()),
            TokenError::BadDigest(64),
        ),
        (
            format!("CLD1-{}zz-{id}-{secret}", &digest[2..]),
            TokenError::BadDigest(64),
        ),
        (
            format!("CLD1-{digest}-{}-{secret}", &id[1..]),
            TokenError::BadId,
        ),
        (
            format!("CLD1-{digest}-{}1-{secret}", &id[1..]),
            TokenError::BadId,
        ),
        (
            format!("CLD1-{digest}-{id}-{}", &secret[1..]),
            TokenError::BadSecret,
        ),
        (
            format!("CLD1-{digest}-{id}-{}8", &secret[1..]),
            TokenError::BadSecret,
        ),
        (String::new(), TokenError::WrongPrefix),
    ];
    for (input, want) in cases {
        assert_eq!(JoinToken::parse(&input), Err(want.clone()), "{input}");
    }
}

#[test]
fn records_store_only_the_secret_hash() {
    let t = sample();
    let r = t.record(
        TokenRole::Coordinator,
        1_000,
        Duration::from_secs(60),
        Some(3),
    );
    let secret = t.reveal().rsplit('-').next().unwrap().to_owned();
    assert_eq!(r.id, t.id());
    assert_eq!(r.role, "coordinator");
    assert_eq!(r.secret_sha256, t.secret_sha256());
    assert_eq!(r.secret_sha256.len(), 64);
    assert!(!format!("{r:?}").contains(&secret));
    assert_eq!(
        (r.expires_at_ms, r.max_uses, r.uses, r.revoked),
        (61_000, Some(3), 0, false)
    );
}
