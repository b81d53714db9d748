//! Replays the manifest fuzz corpus (`fuzz/corpus/manifest/`) through the parser as a normal
//! test, with the same checks as the fuzz target: no panic in any format, and every manifest
//! that parses survives its own round trip. Crashes the fuzzer finds are added to the corpus,
//! so this test is also their regression test.

use std::path::Path;

use cloudless_core::manifest::{Format, Limits, parse_str, parse_str_with};

fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for format in [Format::Yaml, Format::Json, Format::Auto] {
        match parse_str(&text, format) {
            Ok(manifests) => {
                let roomy = Limits {
                    max_bytes: 64 << 20,
                    ..Limits::default()
                };
                for m in manifests {
                    let doc = m.to_document().expect("serializes").to_string();
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
}

#[test]
fn corpus_replays_without_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/manifest");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} panicked", path.display());
            count += 1;
        }
    }
    assert!(count >= 10, "expected a seeded corpus, found {count} files");
}

#[test]
fn hostile_fragments_do_not_panic() {
    for data in [
        &b""[..],
        b"\xff\xfe\x00",
        b"---\n---\n...\n",
        b"{",
        b"[1, 2",
        b"a: &x [*x]",
        b"? [a, b]\n: c\n",
        b"apiVersion: cloudless.dev/v1\nkind: Workload\nmetadata: {name: a}\nspec: {image: a, replicas: -1}\n",
        b"apiVersion: cloudless.dev/v1\nkind: Workload\nmetadata: {name: a}\nspec: {image: a, resources: {requests: {cpu: .nan}}}\n",
        b"{\"apiVersion\": 1e999}",
        b"!!binary aGVsbG8=",
        b"<<: {a: 1}\n",
    ] {
        check(data);
    }
}
