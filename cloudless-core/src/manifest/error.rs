//! Manifest errors: every one names its document, field path and (for YAML) line.

use std::fmt;

/// One problem found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// 0-based index of the document in a multi-document input (0 for JSON).
    pub document: usize,
    /// Field path, e.g. `spec.ports[1].containerPort`; empty when the problem is the whole input
    /// (a syntax error before any field, an oversize file).
    pub path: String,
    /// 1-based line, when known (always for YAML documents that were read at all).
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong and, where it helps, what is expected.
    pub message: String,
}

impl ManifestError {
    /// An error about the input as a whole (no document position).
    pub(crate) fn input(message: impl Into<String>) -> Self {
        Self {
            document: 0,
            path: String::new(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{line}: ")?,
            None => write!(f, "document {}: ", self.document)?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// All problems found in one input, in document order, then in the order they were found.
///
/// Displayed one per line as `file.yaml:12: spec.resources.requests.memory: message`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManifestErrors {
    /// Name of the input (a file path), used as the prefix of every displayed line.
    pub source_name: Option<String>,
    /// The problems; never empty when returned as an `Err`.
    pub errors: Vec<ManifestError>,
}

impl ManifestErrors {
    /// Wraps a list of problems.
    pub fn new(errors: Vec<ManifestError>) -> Self {
        Self {
            source_name: None,
            errors,
        }
    }

    /// Sets the name shown in front of every line (usually the file path).
    pub fn with_source_name(mut self, name: impl Into<String>) -> Self {
        self.source_name = Some(name.into());
        self
    }

    /// The field paths of all problems, in order (handy in tests and for tooling).
    pub fn paths(&self) -> Vec<&str> {
        self.errors.iter().map(|e| e.path.as_str()).collect()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// True if there are no problems.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.source_name.as_deref().unwrap_or("<input>");
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{name}:{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

impl From<Vec<ManifestError>> for ManifestErrors {
    fn from(errors: Vec<ManifestError>) -> Self {
        Self::new(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_file_line_path_message() {
        let e = ManifestError {
            document: 0,
            path: "spec.resources.requests.memory".into(),
            line: Some(12),
            column: Some(15),
            message: "invalid memory quantity \"12XB\"".into(),
        };
        let all = ManifestErrors::new(vec![e]).with_source_name("file.yaml");
        assert_eq!(
            all.to_string(),
            "file.yaml:12: spec.resources.requests.memory: invalid memory quantity \"12XB\""
        );
    }
}
