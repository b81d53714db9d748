//! The passphrase-locked CA key: nothing in plaintext on disk, unlocks only with the right
//! passphrase and only with its own CA certificate.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use std::num::NonZeroU32;
use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

use cloudless_net::identity::lock::CA_LOCKED_KEY_FILE;
use cloudless_net::identity::{CA_CERT_FILE, CA_KEY_FILE, ClusterCa, IdentityError};

// Few iterations keep the test fast; production uses DEFAULT_KDF_ITERATIONS.
fn iters() -> NonZeroU32 {
    NonZeroU32::new(1_000).unwrap()
}

#[test]
fn a_locked_ca_opens_only_with_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    ca.save_locked(dir.path(), "correct horse", iters())
        .unwrap();
    assert!(ClusterCa::is_locked(dir.path()));
    assert!(
        !dir.path().join(CA_KEY_FILE).exists(),
        "plaintext key written"
    );
    let locked = dir.path().join(CA_LOCKED_KEY_FILE);
    let mode = std::fs::metadata(&locked).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let bytes = std::fs::read(&locked).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("PRIVATE KEY"));

    let opened = ClusterCa::load_locked(dir.path(), "correct horse").unwrap();
    assert_eq!(opened.digest(), ca.digest());
    assert!(matches!(
        ClusterCa::load_locked(dir.path(), "wrong horse"),
        Err(IdentityError::Locked)
    ));

    // One flipped bit anywhere after the magic fails to open.
    for i in [6, 25, 30, bytes.len() - 1] {
        let mut damaged = bytes.clone();
        damaged[i] ^= 1;
        std::fs::write(&locked, &damaged).unwrap();
        assert!(
            ClusterCa::load_locked(dir.path(), "correct horse").is_err(),
            "byte {i}"
        );
    }
}

#[test]
fn a_locked_key_does_not_open_with_another_ca_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    ca.save_locked(dir.path(), "pw", iters()).unwrap();
    let other = tempfile::tempdir().unwrap();
    ClusterCa::init("lab", SystemTime::now())
        .unwrap()
        .save(other.path())
        .unwrap();
    std::fs::copy(
        other.path().join(CA_CERT_FILE),
        dir.path().join(CA_CERT_FILE),
    )
    .unwrap();
    assert!(matches!(
        ClusterCa::load_locked(dir.path(), "pw"),
        Err(IdentityError::Locked)
    ));
}
