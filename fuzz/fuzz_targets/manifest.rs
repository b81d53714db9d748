//! Fuzz the manifest parser: any bytes, in every format, must never panic, hang or blow up
//! memory; a manifest that parses must survive its own round trip.
//!
//! Bytes are decoded lossily so invalid UTF-8 still reaches the parser (as replacement
//! characters). Corpus files are plain manifests, readable as they are.

#![no_main]

use cloudless_core::manifest::{Format, Limits, parse_str, parse_str_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for format in [Format::Yaml, Format::Json, Format::Auto] {
        match parse_str(&text, format) {
            Ok(manifests) => {
                // Aliases can make the JSON form larger than the input: lift the size limit.
                let roomy = Limits {
                    max_bytes: 64 << 20,
                    ..Limits::default()
                };
                for m in manifests {
                    let doc = m
                        .to_document()
                        .expect("a parsed manifest serializes")
                        .to_string();
                    let again = parse_str_with(&doc, Format::Json, &roomy)
                        .unwrap_or_else(|e| panic!("round trip failed: {e}\n{doc}"));
                    assert_eq!(again[0].spec, m.spec);
                    assert_eq!(again[0].metadata, m.metadata);
                }
            }
            Err(errors) => {
                assert!(!errors.is_empty());
                let _ = errors.to_string();
            }
        }
    }
});
