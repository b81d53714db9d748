//! From a document tree to a typed [`Manifest`]: the envelope, then each section decoded with
//! serde_path_to_error so a structural error names its field, then the semantic checks.

use serde::de::DeserializeOwned;

use super::error::ManifestError;
use super::path::FieldPath;
use super::tree::{Entry, Node, Value};
use super::{API_VERSION, Kind, Manifest, ManifestSpec, Metadata, Source, validate};

const TOP_LEVEL: [&str; 4] = ["apiVersion", "kind", "metadata", "spec"];

/// Errors of one document, with positions looked up in its tree.
pub(crate) struct Report<'a> {
    pub(crate) document: usize,
    pub(crate) root: Option<&'a Node>,
    pub(crate) errors: Vec<ManifestError>,
}

impl Report<'_> {
    /// Records a problem at `path`.
    pub(crate) fn fail(&mut self, path: &FieldPath, message: impl Into<String>) {
        let pos = self.root.and_then(|r| r.locate(path));
        self.errors.push(ManifestError {
            document: self.document,
            path: path.to_string(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column).filter(|c| *c > 0),
            message: message.into(),
        });
    }
}

/// Decodes and validates one document.
pub(crate) fn document(index: usize, root: &Node) -> Result<Manifest, Vec<ManifestError>> {
    let mut report = Report {
        document: index,
        root: Some(root),
        errors: Vec::new(),
    };
    let top = FieldPath::root();
    let Value::Map(entries) = &root.value else {
        report.fail(
            &top,
            "a manifest must be a mapping with apiVersion, kind, metadata and spec",
        );
        return Err(report.errors);
    };
    for e in entries
        .iter()
        .filter(|e| !TOP_LEVEL.contains(&e.key.as_str()))
    {
        report.fail(
            &top.key(&e.key),
            format!(
                "unknown field `{}`, expected one of apiVersion, kind, metadata, spec",
                e.key
            ),
        );
    }

    let api_version = string_field(&mut report, entries, "apiVersion");
    if let Some(v) = &api_version
        && v != API_VERSION
    {
        report.fail(
            &top.key("apiVersion"),
            format!("unsupported apiVersion {v:?}, expected {API_VERSION:?}"),
        );
    }
    let kind = string_field(&mut report, entries, "kind").and_then(|k| {
        let kind = Kind::from_name(&k);
        if kind.is_none() {
            report.fail(
                &top.key("kind"),
                format!(
                    "unknown kind {k:?}, expected one of Workload, Service, Bucket, Secret, Policy"
                ),
            );
        }
        kind
    });
    let metadata = section(&mut report, entries, "metadata")
        .and_then(|n| typed::<Metadata>(&mut report, n, "metadata"));
    let spec_node = section(&mut report, entries, "spec");
    let spec = match (kind, spec_node) {
        (Some(kind), Some(n)) => spec_of(&mut report, kind, n),
        _ => None,
    };

    let (Some(api_version), Some(metadata), Some(spec)) = (api_version, metadata, spec) else {
        return Err(report.errors);
    };
    if !report.errors.is_empty() {
        return Err(report.errors);
    }
    let manifest = Manifest {
        api_version,
        metadata,
        spec,
        source: Source {
            document: index,
            line: root.at.map(|p| p.line),
        },
    };
    validate::check(&manifest, &mut report);
    if report.errors.is_empty() {
        Ok(manifest)
    } else {
        Err(report.errors)
    }
}

fn spec_of(report: &mut Report<'_>, kind: Kind, node: &Node) -> Option<ManifestSpec> {
    Some(match kind {
        Kind::Workload => ManifestSpec::Workload(typed(report, node, "spec")?),
        Kind::Service => ManifestSpec::Service(typed(report, node, "spec")?),
        Kind::Bucket => ManifestSpec::Bucket(typed(report, node, "spec")?),
        Kind::Secret => ManifestSpec::Secret(typed(report, node, "spec")?),
        Kind::Policy => ManifestSpec::Policy(typed(report, node, "spec")?),
    })
}

fn section<'n>(report: &mut Report<'_>, entries: &'n [Entry], key: &str) -> Option<&'n Node> {
    let found = entries.iter().find(|e| e.key == key).map(|e| &e.value);
    if found.is_none() {
        report.fail(&FieldPath::root(), format!("missing field `{key}`"));
    }
    found
}

fn string_field(report: &mut Report<'_>, entries: &[Entry], key: &str) -> Option<String> {
    match &section(report, entries, key)?.value {
        Value::Str(s) => Some(s.clone()),
        _ => {
            report.fail(&FieldPath::root().key(key), "expected a string");
            None
        }
    }
}

/// Decodes one section into its type; on failure records the error at the field it names.
fn typed<T: DeserializeOwned>(report: &mut Report<'_>, node: &Node, section: &str) -> Option<T> {
    let base = FieldPath::root().key(section);
    let json = match node.to_json(&base) {
        Ok(j) => j,
        Err(at) => {
            report.fail(&at, "numbers must be finite");
            return None;
        }
    };
    match serde_path_to_error::deserialize::<_, T>(json) {
        Ok(v) => Some(v),
        Err(e) => {
            let mut path = FieldPath::join_serde(&base, e.path());
            let message = friendly(&e.into_inner().to_string());
            // serde names an unknown or missing field in the message while the path stops at
            // the enclosing struct; point at the field itself.
            let field = quoted_field(&message, "unknown field `")
                .or_else(|| quoted_field(&message, "missing field `"));
            if let Some(field) = field.filter(|f| !path.ends_with_key(f)) {
                path = path.key(field);
            }
            report.fail(&path, message);
            None
        }
    }
}

fn quoted_field<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// Rewrites serde's messages that mention Rust type names into manifest terms.
fn friendly(message: &str) -> String {
    if message.contains("untagged enum PortRef") {
        return "expected a port number (1-65535) or the name of a container port".to_owned();
    }
    message.to_owned()
}
