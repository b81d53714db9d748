//! JSON Schema of manifest documents, generated from the types with schemars.
//!
//! The schema is for editors and CI linting; the parser does not use it (the Rust types and the
//! semantic checks are the authority, and say more than a schema can, e.g. `limits ≥ requests`).

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Value, json};

use super::{API_VERSION, Kind, Metadata};
use crate::policy::PolicySpec;
use crate::secret::SecretSpec;
use crate::service::ServiceSpec;
use crate::storage::BucketSpec;
use crate::workload::WorkloadSpec;

/// Where the schema is published; also its `$id`.
pub const SCHEMA_ID: &str = "https://cloudless.dev/schema/cloudless.dev_v1.json";

/// The JSON Schema (draft 2020-12) of one manifest document: a `oneOf` with one branch per
/// kind, each fixing `apiVersion` and `kind` and referencing the kind's spec type.
///
/// Editors and CI tools can validate manifests against it:
///
/// ```rust
/// use cloudless_core::manifest::{Kind, SCHEMA_ID, json_schema};
///
/// let schema = json_schema();
/// assert_eq!(schema["$id"], SCHEMA_ID);
/// assert_eq!(schema["oneOf"].as_array().map(Vec::len), Some(Kind::ALL.len()));
/// ```
pub fn json_schema() -> Value {
    let mut generator: SchemaGenerator = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    let metadata = generator.subschema_for::<Metadata>().to_value();
    let branches: Vec<Value> = Kind::ALL
        .into_iter()
        .map(|kind| {
            let spec = match kind {
                Kind::Workload => spec_ref::<WorkloadSpec>(&mut generator),
                Kind::Service => spec_ref::<ServiceSpec>(&mut generator),
                Kind::Bucket => spec_ref::<BucketSpec>(&mut generator),
                Kind::Secret => spec_ref::<SecretSpec>(&mut generator),
                Kind::Policy => spec_ref::<PolicySpec>(&mut generator),
            };
            json!({
                "title": kind.as_str(),
                "type": "object",
                "additionalProperties": false,
                "required": ["apiVersion", "kind", "metadata", "spec"],
                "properties": {
                    "apiVersion": { "const": API_VERSION },
                    "kind": { "const": kind.as_str() },
                    "metadata": metadata,
                    "spec": spec,
                },
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": format!("Cloudless manifest ({API_VERSION})"),
        "description": "One manifest document. YAML streams hold several, separated by `---`.",
        "oneOf": branches,
        "$defs": Value::Object(generator.take_definitions(true)),
    })
}

fn spec_ref<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_branch_per_kind_with_fixed_kind() {
        let schema = json_schema();
        let branches = schema["oneOf"].as_array().expect("oneOf");
        assert_eq!(branches.len(), Kind::ALL.len());
        assert_eq!(branches[0]["properties"]["kind"]["const"], "Workload");
        assert_eq!(
            branches[0]["properties"]["spec"]["$ref"],
            "#/$defs/WorkloadSpec"
        );
        assert!(schema["$defs"]["Metadata"].is_object());
    }
}
