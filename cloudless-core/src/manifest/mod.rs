//! Manifests (CLD-REQ-081): strict YAML/JSON parsing and validation with field-path errors.
//!
//! ```text
//!  text ──size check──▶ YAML (serde-saphyr, budgeted) ─┐
//!                      JSON (serde_json)  ─────────────┴─▶ Node tree (positions, no duplicate keys)
//!        ──envelope──▶ apiVersion, kind, metadata, spec ──typed decode (serde_path_to_error)──▶
//!        Manifest ──validate (all semantic errors)──▶ Ok(Vec<Manifest>) | Err(ManifestErrors)
//! ```
//!
//! A manifest is `apiVersion: cloudless.dev/v1`, a `kind`, `metadata` and the kind's spec type
//! (the spec types in this crate *are* the manifest types). Every error carries the document
//! index, the field path (`spec.ports[1].containerPort`) and, for YAML, the line and column.
//! Structural errors (syntax, unknown field, wrong type) stop a section of a document;
//! semantic errors (ranges, names, contradictions) are all reported together.
//!
//! ```rust
//! use cloudless_core::manifest::{Format, Kind, ManifestSpec, parse_str};
//!
//! let text = "\
//! apiVersion: cloudless.dev/v1
//! kind: Workload
//! metadata:
//!   name: web
//!   namespace: shop
//!   labels: {app: web}
//! spec:
//!   image: nginx:1.27
//!   replicas: 3
//!   resources:
//!     requests: {cpu: 250m, memory: 128Mi}
//! ";
//! let manifests = parse_str(text, Format::Yaml)?;
//! assert_eq!(manifests[0].kind(), Kind::Workload);
//! assert_eq!(manifests[0].metadata.namespace, "shop");
//! let ManifestSpec::Workload(spec) = &manifests[0].spec else { unreachable!() };
//! assert_eq!(spec.replicas, 3);
//!
//! // Every semantic problem at once, each with its field path and line.
//! let bad = text.replace("name: web", "name: Web_1").replace("replicas: 3", "replicas: 3\n  minAvailable: 9");
//! let errors = parse_str(&bad, Format::Yaml).unwrap_err();
//! let paths = errors.paths();
//! assert!(paths.contains(&"metadata.name"), "{errors}");
//! assert!(paths.contains(&"spec.minAvailable"), "{errors}");
//! assert!(errors.errors.iter().all(|e| e.line.is_some()));
//! # Ok::<(), cloudless_core::manifest::ManifestErrors>(())
//! ```

mod decode;
mod error;
mod front;
mod parse;
mod path;
mod schema;
mod tree;
mod validate;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use error::{ManifestError, ManifestErrors};
pub use parse::{Format, Limits, parse_file, parse_str, parse_str_with};
pub use schema::{SCHEMA_ID, json_schema};

use crate::policy::PolicySpec;
use crate::secret::SecretSpec;
use crate::service::ServiceSpec;
use crate::storage::BucketSpec;
use crate::workload::WorkloadSpec;

/// The only manifest API version this release reads.
pub const API_VERSION: &str = "cloudless.dev/v1";

/// The kinds of object a manifest can declare.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Kind {
    /// A containerized workload ([`WorkloadSpec`]).
    Workload,
    /// A service in front of workload replicas ([`ServiceSpec`]).
    Service,
    /// An object-store bucket ([`BucketSpec`]).
    Bucket,
    /// A secret ([`SecretSpec`]).
    Secret,
    /// An admission policy ([`PolicySpec`]).
    Policy,
}

impl Kind {
    /// Every kind, in documentation order.
    pub const ALL: [Kind; 5] = [
        Kind::Workload,
        Kind::Service,
        Kind::Bucket,
        Kind::Secret,
        Kind::Policy,
    ];

    /// The kind as spelled in manifests.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Workload => "Workload",
            Kind::Service => "Service",
            Kind::Bucket => "Bucket",
            Kind::Secret => "Secret",
            Kind::Policy => "Policy",
        }
    }

    /// Parses the manifest spelling (case-sensitive, like Kubernetes).
    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn default_namespace() -> String {
    "default".to_owned()
}

/// Name, namespace, labels and annotations of a manifest object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Object name (DNS-1123 label), unique per kind within the namespace.
    pub name: String,
    /// Namespace (DNS-1123 label); `default` when absent. Ignored for buckets and policies,
    /// which are cluster-wide.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Labels: `[prefix/]name` keys (Kubernetes rules) and short values; used by selectors.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations for tools; keys follow the label key rules.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The spec of a manifest, by kind.
// Unboxed on purpose: manifests are few and short-lived, and callers match on the variants.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestSpec {
    /// `kind: Workload`.
    Workload(WorkloadSpec),
    /// `kind: Service`.
    Service(ServiceSpec),
    /// `kind: Bucket`.
    Bucket(BucketSpec),
    /// `kind: Secret`.
    Secret(SecretSpec),
    /// `kind: Policy`.
    Policy(PolicySpec),
}

impl ManifestSpec {
    /// The kind this spec belongs to.
    pub fn kind(&self) -> Kind {
        match self {
            ManifestSpec::Workload(_) => Kind::Workload,
            ManifestSpec::Service(_) => Kind::Service,
            ManifestSpec::Bucket(_) => Kind::Bucket,
            ManifestSpec::Secret(_) => Kind::Secret,
            ManifestSpec::Policy(_) => Kind::Policy,
        }
    }
}

/// Where a manifest came from in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Source {
    /// 0-based document index (counting only non-empty documents).
    pub document: usize,
    /// 1-based line where the document starts, for YAML.
    pub line: Option<usize>,
}

/// One parsed and validated manifest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Always [`API_VERSION`] for a parsed manifest.
    pub api_version: String,
    /// Name, namespace, labels, annotations.
    pub metadata: Metadata,
    /// The kind's spec; [`ManifestSpec::kind`] gives the kind.
    pub spec: ManifestSpec,
    /// Where in the input it came from.
    pub source: Source,
}

impl Manifest {
    /// The manifest's kind.
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// Runs the semantic checks again (e.g. on a manifest built in code). Errors carry paths
    /// but no lines.
    ///
    /// ```rust
    /// use cloudless_core::manifest::{API_VERSION, Manifest, ManifestSpec, Metadata, Source};
    /// use cloudless_core::workload::WorkloadSpec;
    ///
    /// let mut spec = WorkloadSpec::new("nginx:1.27");
    /// spec.replicas = 2;
    /// let mut manifest = Manifest {
    ///     api_version: API_VERSION.into(),
    ///     metadata: Metadata {
    ///         name: "web".into(),
    ///         namespace: "default".into(),
    ///         labels: Default::default(),
    ///         annotations: Default::default(),
    ///     },
    ///     spec: ManifestSpec::Workload(spec),
    ///     source: Source::default(),
    /// };
    /// assert!(manifest.validate().is_ok());
    /// assert_eq!(manifest.to_document()?["spec"]["replicas"], 2);
    ///
    /// manifest.metadata.name = "Web".into();
    /// let errors = manifest.validate().unwrap_err();
    /// assert_eq!(errors.paths(), ["metadata.name"]);
    /// assert_eq!(errors.errors[0].line, None);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn validate(&self) -> Result<(), ManifestErrors> {
        let errors = validate::manifest(self, self.source.document, None);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ManifestErrors::new(errors))
        }
    }

    /// The manifest as a JSON document (`apiVersion`, `kind`, `metadata`, `spec`), which parses
    /// back to an equal manifest.
    pub fn to_document(&self) -> Result<serde_json::Value, serde_json::Error> {
        let spec = match &self.spec {
            ManifestSpec::Workload(s) => serde_json::to_value(s)?,
            ManifestSpec::Service(s) => serde_json::to_value(s)?,
            ManifestSpec::Bucket(s) => serde_json::to_value(s)?,
            ManifestSpec::Secret(s) => serde_json::to_value(s)?,
            ManifestSpec::Policy(s) => serde_json::to_value(s)?,
        };
        Ok(serde_json::json!({
            "apiVersion": self.api_version,
            "kind": self.kind().as_str(),
            "metadata": serde_json::to_value(&self.metadata)?,
            "spec": spec,
        }))
    }
}
