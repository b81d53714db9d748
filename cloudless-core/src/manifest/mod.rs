//! Manifests (CLD-REQ-081): strict YAML/JSON parsing and validation with field-path errors.
