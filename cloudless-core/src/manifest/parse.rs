//! Public entry points and the bounds applied to untrusted input.

use std::io::Read;
use std::path::Path;

use super::error::{ManifestError, ManifestErrors};
use super::{Manifest, decode, front};

/// Which syntax the input is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// YAML, possibly several documents separated by `---`.
    Yaml,
    /// One JSON object.
    Json,
    /// JSON if the first non-blank character is `{`, YAML otherwise.
    #[default]
    Auto,
}

impl Format {
    /// The format a file name suggests: `.json` → JSON, `.yaml`/`.yml` → YAML, else `Auto`.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Auto,
        }
    }

    fn resolve(self, text: &str) -> Format {
        match self {
            Format::Auto => {
                let first = text
                    .trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n'])
                    .chars()
                    .next();
                if first == Some('{') {
                    Format::Json
                } else {
                    Format::Yaml
                }
            }
            f => f,
        }
    }
}

/// Bounds on untrusted input. Every limit fails with a message naming the limit, fast and
/// before memory use grows with the attacker's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub max_bytes: usize,
    /// Most documents in one YAML stream.
    pub max_documents: usize,
    /// Deepest nesting of maps and sequences (a real manifest needs about 8).
    pub max_depth: usize,
    /// Most parser events that YAML aliases may replay in total (alias-bomb guard).
    pub max_alias_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            max_documents: 100,
            max_depth: 32,
            max_alias_events: 10_000,
        }
    }
}

impl Limits {
    /// Checks the limits are usable (all non-zero).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_bytes == 0 || self.max_documents == 0 || self.max_depth == 0 {
            return Err("manifest limits must be non-zero".to_owned());
        }
        Ok(())
    }
}

/// Parses and validates every manifest in `text` with the default [`Limits`].
///
/// Returns all manifests, or every problem found (never some of each).
pub fn parse_str(text: &str, format: Format) -> Result<Vec<Manifest>, ManifestErrors> {
    parse_str_with(text, format, &Limits::default())
}

/// [`parse_str`] with explicit limits.
pub fn parse_str_with(
    text: &str,
    format: Format,
    limits: &Limits,
) -> Result<Vec<Manifest>, ManifestErrors> {
    if let Err(e) = limits.validate() {
        return Err(ManifestErrors::new(vec![ManifestError::input(e)]));
    }
    if text.len() > limits.max_bytes {
        return Err(too_large(&text.len().to_string(), limits.max_bytes));
    }
    let docs = match format.resolve(text) {
        Format::Json => front::read_json(text, limits),
        _ => front::read_yaml(text, limits),
    };
    let mut manifests = Vec::new();
    let mut errors = Vec::new();
    for doc in docs {
        match doc {
            Ok((index, node)) => match decode::document(index, &node) {
                Ok(m) => manifests.push(m),
                Err(es) => errors.extend(es),
            },
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() && manifests.is_empty() {
        errors.push(ManifestError::input(
            "the input contains no manifest document",
        ));
    }
    if errors.is_empty() {
        Ok(manifests)
    } else {
        Err(ManifestErrors::new(errors))
    }
}

/// Reads and parses a file; the format comes from its extension (see [`Format::from_path`]).
/// Errors are displayed with the file path in front.
pub fn parse_file(path: impl AsRef<Path>) -> Result<Vec<Manifest>, ManifestErrors> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let limits = Limits::default();
    let fail =
        |msg: String| ManifestErrors::new(vec![ManifestError::input(msg)]).with_source_name(&name);
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    // Read at most one byte past the limit so a huge file is refused without being loaded.
    let cap = u64::try_from(limits.max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut bytes = Vec::new();
    file.take(cap)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() > limits.max_bytes {
        return Err(
            too_large(&format!("more than {}", limits.max_bytes), limits.max_bytes)
                .with_source_name(&name),
        );
    }
    let text = String::from_utf8(bytes).map_err(|e| fail(format!("not valid UTF-8: {e}")))?;
    parse_str_with(&text, Format::from_path(path), &limits).map_err(|e| e.with_source_name(&name))
}

fn too_large(len: &str, max: usize) -> ManifestErrors {
    ManifestErrors::new(vec![ManifestError::input(format!(
        "input too large: {len} bytes (the limit is {max} bytes)"
    ))])
}
