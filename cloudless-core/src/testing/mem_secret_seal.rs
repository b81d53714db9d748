//! Test-only sealing for `MemSecretStore`: XOR with a SHA-256 keystream.
//!
//! Block `i` of the keystream for value key `k` under data key `d` is
//! `SHA-256("cloudless-test-seal" ‖ d ‖ len(k) ‖ k ‖ i)`. This keeps plaintext out of memory and
//! changes every sealed byte when the data key rotates; it is not authenticated and not a
//! cipher to rely on. Production stores use AEAD (DESIGN §3).

use sha2::{Digest, Sha256};

/// A sealed value (same length as the plaintext).
pub(crate) type Sealed = Vec<u8>;

fn xor_keystream(data_key: &[u8; 32], key: &str, data: &mut [u8]) {
    for (i, block) in data.chunks_mut(32).enumerate() {
        let mut h = Sha256::new();
        h.update(b"cloudless-test-seal");
        h.update(data_key);
        h.update((key.len() as u64).to_be_bytes());
        h.update(key.as_bytes());
        h.update((i as u64).to_be_bytes());
        let pad = h.finalize();
        for (b, p) in block.iter_mut().zip(pad.iter()) {
            *b ^= p;
        }
    }
}

/// Seals `plain`, stored under value key `key`, with `data_key`.
pub(crate) fn seal(data_key: &[u8; 32], key: &str, plain: &[u8]) -> Sealed {
    let mut out = plain.to_vec();
    xor_keystream(data_key, key, &mut out);
    out
}

/// Opens what [`seal`] sealed with the same data key and value key.
pub(crate) fn unseal(data_key: &[u8; 32], key: &str, sealed: &Sealed) -> Vec<u8> {
    let mut out = sealed.clone();
    xor_keystream(data_key, key, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_depends_on_both_keys() {
        let plain = b"a value longer than one thirty-two byte block".to_vec();
        let sealed = seal(&[7; 32], "password", &plain);
        assert_ne!(sealed, plain);
        assert_eq!(unseal(&[7; 32], "password", &sealed), plain);
        assert_ne!(unseal(&[8; 32], "password", &sealed), plain);
        assert_ne!(seal(&[7; 32], "other", &plain), sealed);
    }
}
