//! The CA key locked with an operator passphrase ("autolock"): a coordinator restarts with the
//! CA locked and cannot issue until an operator unlocks it.
//!
//! File `ca.key.locked` (mode 0600):
//! `"CLDK1" | salt (16) | PBKDF2 iterations (u32 BE) | nonce (12) | ChaCha20-Poly1305(key PEM)`.
//! The key is PBKDF2-HMAC-SHA256(passphrase, salt, iterations); the additional data is the
//! header (magic, salt, iterations) plus the SHA-256 of the CA certificate, so a locked key
//! cannot be paired with another CA certificate or have its parameters altered unnoticed.

use std::num::NonZeroU32;
use std::path::Path;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::pbkdf2;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use zeroize::Zeroizing;

use super::ca::fill_random;
use super::files::{check_private_mode, read_text, write_private};
use super::{CA_CERT_FILE, ClusterCa, IdentityError};

/// File name of the passphrase-locked CA key.
pub const CA_LOCKED_KEY_FILE: &str = "ca.key.locked";
/// Default PBKDF2 iterations (OWASP 2023 guidance for PBKDF2-HMAC-SHA256).
pub const DEFAULT_KDF_ITERATIONS: u32 = 600_000;
const MAGIC: &[u8; 5] = b"CLDK1";
const SALT: usize = 16;
const NONCE: usize = 12;
const HEADER: usize = MAGIC.len() + SALT + 4;

fn derive(
    passphrase: &str,
    salt: &[u8],
    iterations: NonZeroU32,
) -> Result<LessSafeKey, IdentityError> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        passphrase.as_bytes(),
        key.as_mut(),
    );
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, key.as_ref())
        .map_err(|_| IdentityError::Generation("AEAD key setup failed".into()))?;
    Ok(LessSafeKey::new(unbound))
}

fn aad(header: &[u8], ca: &ClusterCa) -> Vec<u8> {
    let mut a = header.to_vec();
    a.extend_from_slice(&ca.digest());
    a
}

impl ClusterCa {
    /// Writes `ca.pem` and the key locked with `passphrase` (`ca.key.locked`, 0600) into `dir`.
    /// No plaintext key is written.
    pub fn save_locked(
        &self,
        dir: &Path,
        passphrase: &str,
        iterations: NonZeroU32,
    ) -> Result<(), IdentityError> {
        let mut salt = [0u8; SALT];
        let mut nonce = [0u8; NONCE];
        fill_random(&mut salt)?;
        fill_random(&mut nonce)?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&salt);
        header.extend_from_slice(&iterations.get().to_be_bytes());
        let key = derive(passphrase, &salt, iterations)?;
        let mut sealed = Zeroizing::new(self.key_pem().as_bytes().to_vec());
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(&header, self)),
            &mut *sealed,
        )
        .map_err(|_| IdentityError::Generation("sealing the CA key failed".into()))?;
        let mut file = header;
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&sealed);
        write_private(&dir.join(CA_LOCKED_KEY_FILE), &file)?;
        super::files::write_public(
            &dir.join(CA_CERT_FILE),
            super::ca::pem("CERTIFICATE", self.cert()).as_bytes(),
        )
    }

    /// Unlocks a CA saved by [`save_locked`](Self::save_locked). A wrong passphrase (or a
    /// damaged file, or a key of another CA) is `IdentityError::Locked`.
    pub fn load_locked(dir: &Path, passphrase: &str) -> Result<Self, IdentityError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let cert = CertificateDer::from_pem_slice(read_text(&cert_path)?.as_bytes())
            .map_err(|e| IdentityError::file(&cert_path, e))?;
        let path = dir.join(CA_LOCKED_KEY_FILE);
        check_private_mode(&path)?;
        let bytes = std::fs::read(&path).map_err(|e| IdentityError::file(&path, e))?;
        let damaged = || IdentityError::file(&path, "not a locked CA key");
        if bytes.len() < HEADER + NONCE || !bytes.starts_with(MAGIC) {
            return Err(damaged());
        }
        let (header, rest) = bytes.split_at(HEADER);
        let (nonce, sealed) = rest.split_at(NONCE);
        let salt = &header[MAGIC.len()..MAGIC.len() + SALT];
        let mut iter_bytes = [0u8; 4];
        iter_bytes.copy_from_slice(&header[MAGIC.len() + SALT..]);
        let iterations = NonZeroU32::new(u32::from_be_bytes(iter_bytes)).ok_or_else(damaged)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| damaged())?;
        let key = derive(passphrase, salt, iterations)?;
        let mut aad = header.to_vec();
        aad.extend_from_slice(&super::spiffe::ca_digest(&cert));
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| IdentityError::Locked)?;
        let pem = Zeroizing::new(String::from_utf8(plain.to_vec()).map_err(|_| damaged())?);
        ClusterCa::from_parts(cert, &pem)
    }

    /// True if `dir` holds a passphrase-locked CA key.
    pub fn is_locked(dir: &Path) -> bool {
        dir.join(CA_LOCKED_KEY_FILE).exists()
    }
}
