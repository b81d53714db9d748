//! Manifests (CLD-REQ-081): every example parses; every invalid manifest fails with exactly the
//! expected field paths and lines; the checked-in JSON Schema is current.

use std::path::{Path, PathBuf};

use cloudless_core::manifest::{Format, Kind, ManifestSpec, parse_file, parse_str};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_parses() {
    let files = files_in(&repo_root().join("examples/manifests"));
    assert!(
        files.len() >= 6,
        "expected at least 6 examples, found {}",
        files.len()
    );
    let mut kinds = std::collections::BTreeSet::new();
    for f in &files {
        let manifests = parse_file(f).unwrap_or_else(|e| panic!("{e}"));
        for m in manifests {
            kinds.insert(m.kind());
            // Round trip: the document form parses back to the same manifest.
            let doc = m.to_document().unwrap().to_string();
            let again = parse_str(&doc, Format::Json)
                .unwrap_or_else(|e| panic!("{}: {e}\n{doc}", f.display()));
            assert_eq!(again[0].metadata, m.metadata);
            assert_eq!(again[0].spec, m.spec);
        }
    }
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), Kind::ALL.to_vec());
}

#[test]
fn multi_document_yaml_keeps_order_and_positions() {
    let ms = parse_file(repo_root().join("examples/manifests/shop-stack.yaml")).unwrap();
    let kinds: Vec<Kind> = ms.iter().map(|m| m.kind()).collect();
    assert_eq!(kinds, [Kind::Secret, Kind::Workload, Kind::Service]);
    assert_eq!(
        ms.iter().map(|m| m.source.document).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(ms[1].source.line.unwrap() > ms[0].source.line.unwrap());
    let ManifestSpec::Workload(w) = &ms[1].spec else {
        panic!("not a workload")
    };
    assert_eq!(w.resources.requests.memory.mib(), 64);
    assert_eq!(ms[1].metadata.namespace, "shop");
}

/// Expected errors per invalid file: `(path, line)` in report order; `None` = no line expected.
type Expected = &'static [(&'static str, Option<usize>)];

const INVALID: &[(&str, Expected)] = &[
    (
        "affinity.yaml",
        &[
            ("spec.placement.nodeAffinity.required[0].values", Some(10)),
            ("spec.placement.nodeAffinity.required[1].values", Some(14)),
            ("spec.placement.nodeAffinity.preferred[0].weight", Some(16)),
            (
                "spec.placement.workloadAntiAffinity.preferred[0].weight",
                Some(23),
            ),
            (
                "spec.placement.workloadAntiAffinity.preferred[0].match.workload",
                Some(25),
            ),
            ("spec.placement.tolerations[0].value", Some(29)),
        ],
    ),
    ("alias-bomb.yaml", &[("", Some(10))]),
    ("bad-api-version.yaml", &[("apiVersion", Some(1))]),
    ("bad-image.yaml", &[("spec.image", Some(6))]),
    (
        "bad-name.yaml",
        &[("metadata.name", Some(4)), ("metadata.namespace", Some(5))],
    ),
    (
        "bad-port-ref.yaml",
        &[("spec.service.ports[0].targetPort", Some(10))],
    ),
    (
        "bad-quantity.yaml",
        &[("spec.resources.requests.memory", Some(9))],
    ),
    (
        "bucket.yaml",
        &[
            ("spec.replication", Some(6)),
            ("spec.erasureCoding.dataShards", Some(8)),
            ("spec.erasureCoding.parityShards", Some(9)),
        ],
    ),
    ("duplicate-key.json", &[("metadata.labels.a", Some(4))]),
    (
        "duplicate-key.yaml",
        &[("spec.resources.requests.memory", Some(11))],
    ),
    ("duplicate-label.yaml", &[("metadata.labels.app", Some(7))]),
    (
        "env.yaml",
        &[
            ("spec.env[2].name", Some(12)),
            ("spec.env[1].name", Some(10)),
            ("spec.secrets[0].env", Some(16)),
        ],
    ),
    (
        "host-ports.yaml",
        &[
            ("spec.ports[3].hostPort", Some(20)),
            ("spec.ports[1].hostPort", Some(13)),
        ],
    ),
    (
        "limits-below-requests.yaml",
        &[
            ("spec.resources.limits.cpu", Some(12)),
            ("spec.resources.limits.memory", Some(13)),
            ("spec.resources.limits.pids", Some(14)),
        ],
    ),
    (
        "many-errors.yaml",
        &[
            ("spec.image", Some(6)),
            ("spec.env[0].name", Some(9)),
            ("spec.workingDir", Some(11)),
            ("spec.replicas", Some(7)),
            ("spec.placement.spread.maxSkew", Some(14)),
            ("spec.security.runAsUser", Some(17)),
        ],
    ),
    ("min-available.yaml", &[("spec.minAvailable", Some(8))]),
    ("missing-spec.yaml", &[("", Some(1))]),
    ("not-a-mapping.yaml", &[("", Some(1))]),
    (
        "policy.yaml",
        &[
            ("spec.images.allow[0]", Some(7)),
            ("spec.egress.allow[0]", Some(9)),
            ("spec.egress.allow[1]", Some(9)),
            ("spec.egress.deny[0]", Some(10)),
        ],
    ),
    (
        "port-conflicts.yaml",
        &[
            ("spec.ports[2].name", Some(12)),
            ("spec.ports[2].containerPort", Some(13)),
            ("spec.ports[1].name", Some(10)),
            ("spec.ports[1].containerPort", Some(11)),
        ],
    ),
    (
        "probe-two-actions.yaml",
        &[
            ("spec.probes.liveness", Some(8)),
            ("spec.probes.readiness.http.port", Some(15)),
            ("spec.probes.readiness.http.path", Some(16)),
            ("spec.probes.readiness.timeout", Some(18)),
            ("spec.probes.readiness.failureThreshold", Some(19)),
        ],
    ),
    (
        "process-images.yaml",
        &[
            ("spec.image", Some(6)),
            ("spec.image", Some(13)),
            ("spec.image", Some(20)),
        ],
    ),
    (
        "restart-backoff.yaml",
        &[
            ("spec.rollout.maxSurge", Some(14)),
            ("spec.restart.backoff.initial", Some(10)),
            ("spec.restart.backoff.multiplierPercent", Some(12)),
        ],
    ),
    (
        "second-document-bad.yaml",
        &[("spec.replication", Some(12))],
    ),
    (
        "secret-refs.yaml",
        &[
            ("spec.secrets[0]", Some(8)),
            ("spec.secrets[1].mountPath", Some(13)),
            ("spec.secrets[2]", Some(14)),
        ],
    ),
    (
        "secret.yaml",
        &[
            ("spec.data.bad key", Some(8)),
            ("spec.data.password", Some(7)),
            ("spec.stringData.password", Some(10)),
        ],
    ),
    (
        "security.yaml",
        &[
            ("spec.security.runAsUser", Some(9)),
            ("spec.security.capabilities.add[0]", Some(11)),
            ("spec.security.capabilities.add[1]", Some(11)),
            ("spec.security.seccompProfile.localhostProfile", Some(13)),
            ("spec.security.apparmorProfile.localhostProfile", Some(17)),
        ],
    ),
    (
        "service-no-selector.yaml",
        &[("spec.selector", Some(6)), ("spec.ports", Some(7))],
    ),
    (
        "service-target-unknown.yaml",
        &[
            ("spec.service.ports[0].targetPort", Some(14)),
            ("spec.service.ports[1].name", Some(15)),
            ("spec.service.ports[1].port", Some(15)),
        ],
    ),
    ("syntax-error.yaml", &[("", Some(7))]),
    ("too-deep.json", &[("", None)]),
    ("too-deep.yaml", &[("", Some(8))]),
    (
        "unknown-field.yaml",
        &[("spec.resources.requests.memroy", Some(9))],
    ),
    ("unknown-kind.yaml", &[("kind", Some(2))]),
    ("unknown-top-level.yaml", &[("status", Some(7))]),
    (
        "volumes.yaml",
        &[
            ("spec.volumes[2].mountPath", Some(13)),
            ("spec.volumes[2].sizeLimit", Some(14)),
            ("spec.volumes[1].name", Some(10)),
            ("spec.volumes[1].mountPath", Some(11)),
        ],
    ),
    (
        "wrong-type.json",
        &[("spec.ports[0].containerPort", Some(7))],
    ),
    ("wrong-type.yaml", &[("spec.replicas", Some(7))]),
    (
        "yes-boolean.yaml",
        &[("spec.security.runAsNonRoot", Some(8))],
    ),
];

fn invalid_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests/invalid")
}

#[test]
fn every_invalid_manifest_fails_with_exact_paths_and_lines() {
    let on_disk: Vec<String> = files_in(&invalid_dir())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let listed: Vec<String> = INVALID.iter().map(|(f, _)| (*f).to_owned()).collect();
    assert_eq!(
        on_disk, listed,
        "every invalid file has an expectation, and every expectation a file"
    );
    assert!(listed.len() >= 25);
    let mut failures = Vec::new();
    for (file, expected) in INVALID {
        let errs = match parse_file(invalid_dir().join(file)) {
            Ok(_) => {
                failures.push(format!("{file}: parsed, but must fail"));
                continue;
            }
            Err(e) => e,
        };
        let got: Vec<(&str, Option<usize>)> = errs
            .errors
            .iter()
            .map(|e| (e.path.as_str(), e.line))
            .collect();
        if got != *expected {
            failures.push(format!(
                "{file}:\n  expected {expected:?}\n  got      {got:?}\n{errs}"
            ));
        }
        for e in &errs.errors {
            assert!(!e.message.is_empty(), "{file}: every error has a message");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn messages_say_what_is_wrong() {
    let msg = |file: &str| {
        parse_file(invalid_dir().join(file))
            .unwrap_err()
            .to_string()
    };
    let quantity = msg("bad-quantity.yaml");
    assert!(quantity.ends_with(
        "bad-quantity.yaml:9: spec.resources.requests.memory: invalid memory quantity \"12XB\": \
         expected a number with a unit like \"512Mi\" or \"1Gi\", within range"
    ), "{quantity}");
    assert!(msg("alias-bomb.yaml").contains("alias bomb"));
    assert!(msg("too-deep.yaml").contains("nesting too deep"));
    assert!(msg("too-deep.json").contains("nesting too deep"));
    assert!(msg("duplicate-key.yaml").contains("duplicate key \"memory\""));
    assert!(msg("unknown-field.yaml").contains("unknown field `memroy`"));
    assert!(msg("unknown-kind.yaml").contains("unknown kind \"Deployment\""));
    assert!(msg("missing-spec.yaml").contains("missing field `spec`"));
    let second = parse_file(invalid_dir().join("second-document-bad.yaml")).unwrap_err();
    assert_eq!(second.errors[0].document, 1, "errors name their document");
}

/// Host programs run by the process runtime: `process:///abs/path`, or a bare `process://` with
/// the program in `command`. Everything else after the scheme is refused at `spec.image`.
#[test]
fn process_images_are_accepted_and_checked() {
    let workload = |image: &str, command: &str| {
        format!(
            "apiVersion: cloudless.dev/v1\nkind: Workload\nmetadata: {{name: p}}\n\
             spec:\n  image: {image:?}\n  command: {command}\n"
        )
    };
    for (image, command) in [
        ("process:///bin/sleep", "[]"),
        ("process:///usr/local/bin/my server", "[]"),
        ("process://", "[\"/bin/sleep\", \"60\"]"),
    ] {
        let ms = parse_str(&workload(image, command), Format::Yaml)
            .unwrap_or_else(|e| panic!("{image:?} must be accepted: {e}"));
        let ManifestSpec::Workload(w) = &ms[0].spec else {
            panic!("not a workload")
        };
        assert_eq!(w.image, image);
    }
    let msg = |file: &str, doc: usize| {
        let errs = parse_file(invalid_dir().join(file)).unwrap_err();
        errs.errors
            .iter()
            .find(|e| e.document == doc)
            .map(|e| format!("{}: {}", e.path, e.message))
            .unwrap_or_default()
    };
    let relative = msg("process-images.yaml", 0);
    assert!(
        relative.starts_with("spec.image: invalid image reference \"process://usr/bin/app\"")
            && relative.contains("absolute program path"),
        "{relative}"
    );
    let dotdot = msg("process-images.yaml", 1);
    assert!(dotdot.contains("'..'"), "{dotdot}");
    let bare = msg("process-images.yaml", 2);
    assert!(bare.contains("spec.command"), "{bare}");
    let nul = parse_str(&workload("process:///bin/s\0h", "[]"), Format::Yaml).unwrap_err();
    assert_eq!(nul.paths(), ["spec.image"], "{nul}");
    assert!(nul.to_string().contains("NUL"), "{nul}");
}

#[test]
fn alias_bomb_fails_fast() {
    // Fast means bounded work, not a wall-clock figure (a loaded CI machine must not fail a
    // timing bound): the parse stops at the alias replay limit and says so. The deadline only
    // turns an unbounded expansion (10^9 events) into a failure instead of a hung test.
    let text = std::fs::read_to_string(invalid_dir().join("alias-bomb.yaml")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(parse_str(&text, Format::Yaml).map(|_| ()));
    });
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the alias bomb is refused instead of expanded");
    let err = result.expect_err("an alias bomb is refused");
    let msg = err.to_string();
    assert!(
        msg.contains("alias bomb") && msg.contains("replayed events"),
        "refused at the alias replay limit: {msg}"
    );
}

#[test]
fn oversize_input_is_refused_before_parsing() {
    let mut text = String::from(
        "apiVersion: cloudless.dev/v1\nkind: Secret\nmetadata:\n  name: big\nspec:\n  stringData:\n    k: ",
    );
    text.push_str(&"x".repeat((1 << 20) + 1));
    let err = parse_str(&text, Format::Yaml).unwrap_err();
    assert_eq!(err.paths(), [""]);
    assert!(
        err.errors[0].message.starts_with("input too large"),
        "{err}"
    );
    let limits = cloudless_core::manifest::Limits {
        max_bytes: 64,
        ..Default::default()
    };
    let small = "apiVersion: cloudless.dev/v1\nkind: Bucket\nmetadata: {name: b}\nspec: {}\n";
    assert!(cloudless_core::manifest::parse_str_with(small, Format::Yaml, &limits).is_err());
}

#[test]
fn too_many_documents_are_refused() {
    let doc = "apiVersion: cloudless.dev/v1\nkind: Bucket\nmetadata: {name: b}\nspec: {}\n---\n";
    let err = parse_str(&doc.repeat(101), Format::Yaml).unwrap_err();
    assert!(err.to_string().contains("too many documents"), "{err}");
    assert_eq!(
        parse_str(&doc.repeat(100), Format::Yaml).unwrap().len(),
        100
    );
}

#[test]
fn empty_input_is_an_error() {
    assert!(parse_str("", Format::Auto).is_err());
    assert!(parse_str("# only a comment\n---\n", Format::Yaml).is_err());
}

/// The checked-in schema must match the types. To update it after changing a spec type:
/// `UPDATE_SCHEMA=1 cargo test -p cloudless-core --test manifests schema`.
#[test]
fn schema_is_current() {
    let path = repo_root().join("docs/schema/cloudless.dev_v1.json");
    let fresh =
        serde_json::to_string_pretty(&cloudless_core::manifest::json_schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "{} is stale; regenerate it with:\n  UPDATE_SCHEMA=1 cargo test -p cloudless-core --test manifests schema",
        path.display()
    );
}

/// The examples are documentation: keep every section of a workload spec shown somewhere.
#[test]
fn examples_cover_every_workload_section() {
    use cloudless_core::workload::WorkloadSpec;
    let mut specs: Vec<WorkloadSpec> = Vec::new();
    for f in files_in(&repo_root().join("examples/manifests")) {
        for m in parse_file(&f).unwrap() {
            if let ManifestSpec::Workload(w) = m.spec {
                specs.push(w);
            }
        }
    }
    let any = |f: &dyn Fn(&WorkloadSpec) -> bool| specs.iter().any(f);
    assert!(any(&|w| w.platform.is_some()));
    assert!(any(&|w| !w.command.is_empty() && !w.args.is_empty()));
    assert!(any(&|w| !w.env.is_empty() && w.working_dir.is_some()));
    let req = |w: &WorkloadSpec| w.resources.requests.clone();
    assert!(any(
        &|w| req(w).storage.gib() > 0 && req(w).egress.mbps() > 0
    ));
    assert!(any(&|w| req(w).gpus > 0));
    assert!(any(
        &|w| w.resources.limits.cpu.is_some() && w.resources.limits.pids.is_some()
    ));
    assert!(any(&|w| w.replicas > 1 && w.min_available.is_some()));
    let pl = |w: &WorkloadSpec| w.placement.clone();
    assert!(any(
        &|w| pl(w).spread.is_some() && !pl(w).node_selector.is_empty()
    ));
    assert!(any(
        &|w| !pl(w).node_affinity.required.is_empty() && !pl(w).node_affinity.preferred.is_empty()
    ));
    assert!(any(&|w| !pl(w).workload_affinity.preferred.is_empty()));
    assert!(any(&|w| !pl(w).workload_anti_affinity.required.is_empty()));
    assert!(any(&|w| !pl(w).tolerations.is_empty()));
    assert!(any(&|w| w.restart.max_retries.is_some()));
    assert!(any(&|w| w
        .probes
        .liveness
        .as_ref()
        .is_some_and(|p| p.exec.is_some())));
    assert!(any(&|w| w
        .probes
        .liveness
        .as_ref()
        .is_some_and(|p| p.http.is_some())));
    assert!(any(&|w| w
        .probes
        .readiness
        .as_ref()
        .is_some_and(|p| p.tcp.is_some())));
    assert!(any(&|w| !w.ports.is_empty() && w.service.is_some()));
    let sec = |w: &WorkloadSpec| w.security.clone();
    assert!(any(
        &|w| !sec(w).capabilities.add.is_empty() && sec(w).runtime_class.is_some()
    ));
    assert!(any(&|w| sec(w).seccomp_profile.localhost_profile.is_some()));
    assert!(any(&|w| w.secrets.iter().any(|s| s.env.is_some())
        && w.secrets.iter().any(|s| s.mount_path.is_some())));
    assert!(any(&|w| !w.volumes.is_empty()));
}

#[test]
fn parser_errors_in_many_documents_each_get_their_path() {
    let doc = "apiVersion: cloudless.dev/v1\nkind: Bucket\nmetadata:\n  name: b\n  labels:\n    a: x\n    a: y\nspec: {}\n---\n";
    let err = parse_str(&doc.repeat(50), Format::Yaml).unwrap_err();
    assert_eq!(err.len(), 50);
    for (i, e) in err.errors.iter().enumerate() {
        assert_eq!(
            (e.document, e.path.as_str(), e.line),
            (i, "metadata.labels.a", Some(i * 9 + 7))
        );
    }
}
