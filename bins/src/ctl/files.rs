//! `-f FILE|DIR|-`: reading manifest inputs and checking them offline.

use std::io::Read;
use std::path::{Path, PathBuf};

use cloudless_core::manifest::{self, Format, Limits, Manifest, ManifestErrors};
use serde::Serialize;

use super::error::{CtlError, CtlResult};

/// One input: a file, or stdin.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    /// The name errors show (`-` is `<stdin>`).
    pub(crate) name: String,
    pub(crate) format: Format,
    pub(crate) text: String,
}

fn read_capped(mut r: impl Read, name: &str) -> CtlResult<String> {
    let max = Limits::default().max_bytes;
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    r.by_ref()
        .take(cap)
        .read_to_end(&mut bytes)
        .map_err(|e| CtlError::general(format!("{name}: cannot read: {e}")))?;
    if bytes.len() > max {
        return Err(CtlError::general(format!(
            "{name}: larger than the manifest limit of {max} bytes; split it into several files"
        )));
    }
    String::from_utf8(bytes).map_err(|e| CtlError::general(format!("{name}: not valid UTF-8: {e}")))
}

fn is_manifest_file(p: &Path) -> bool {
    p.is_file()
        && matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        )
}

/// Reads every input: files as given, directories' `*.yaml|*.yml|*.json` (sorted, not
/// recursive), `-` as stdin (once).
pub(crate) fn read_inputs(paths: &[PathBuf]) -> CtlResult<Vec<Input>> {
    let mut inputs = Vec::new();
    let mut stdin_used = false;
    for p in paths {
        if p.as_os_str() == "-" {
            if stdin_used {
                return Err(CtlError::general("-f -: stdin can be given only once"));
            }
            stdin_used = true;
            inputs.push(Input {
                name: "<stdin>".into(),
                format: Format::Auto,
                text: read_capped(std::io::stdin().lock(), "<stdin>")?,
            });
        } else if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| CtlError::general(format!("{}: cannot list: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| is_manifest_file(f))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(CtlError::general(format!(
                    "{}: no *.yaml, *.yml or *.json files in the directory",
                    p.display()
                )));
            }
            for f in files {
                inputs.push(read_file(&f)?);
            }
        } else {
            inputs.push(read_file(p)?);
        }
    }
    Ok(inputs)
}

fn read_file(p: &Path) -> CtlResult<Input> {
    let name = p.display().to_string();
    let f = std::fs::File::open(p).map_err(|e| {
        CtlError::general(format!(
            "{name}: cannot open: {e}; check the path given to -f"
        ))
    })?;
    Ok(Input {
        text: read_capped(f, &name)?,
        format: Format::from_path(p),
        name,
    })
}

impl Input {
    /// Parses and validates the input offline.
    pub(crate) fn parse(&self) -> Result<Vec<Manifest>, ManifestErrors> {
        manifest::parse_str_with(&self.text, self.format, &Limits::default())
            .map_err(|e| e.with_source_name(&self.name))
    }
}

/// One problem of `validate -o json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProblemView {
    pub(crate) file: String,
    pub(crate) document: usize,
    pub(crate) line: Option<usize>,
    pub(crate) column: Option<usize>,
    pub(crate) path: String,
    pub(crate) message: String,
}

/// One object a manifest declares.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectRef {
    pub(crate) kind: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl From<&Manifest> for ObjectRef {
    fn from(m: &Manifest) -> Self {
        Self {
            kind: m.kind().as_str().to_owned(),
            namespace: m.metadata.namespace.clone(),
            name: m.metadata.name.clone(),
        }
    }
}

/// One file of `validate -o json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileReport {
    pub(crate) file: String,
    pub(crate) valid: bool,
    pub(crate) objects: Vec<ObjectRef>,
    pub(crate) errors: Vec<ProblemView>,
}

/// Checks every input; the reports, in input order.
pub(crate) fn check(inputs: &[Input]) -> Vec<FileReport> {
    inputs
        .iter()
        .map(|i| match i.parse() {
            Ok(ms) => FileReport {
                file: i.name.clone(),
                valid: true,
                objects: ms.iter().map(ObjectRef::from).collect(),
                errors: Vec::new(),
            },
            Err(es) => FileReport {
                file: i.name.clone(),
                valid: false,
                objects: Vec::new(),
                errors: es
                    .errors
                    .iter()
                    .map(|e| ProblemView {
                        file: i.name.clone(),
                        document: e.document,
                        line: e.line,
                        column: e.column,
                        path: e.path.clone(),
                        message: super::error::one_line(&e.message),
                    })
                    .collect(),
            },
        })
        .collect()
}

/// `file:12: spec.replicas: message` for a problem.
pub(crate) fn problem_line(p: &ProblemView) -> String {
    let mut s = p.file.clone();
    match p.line {
        Some(l) => s.push_str(&format!(":{l}")),
        None => s.push_str(&format!(": document {}", p.document)),
    }
    s.push_str(": ");
    if !p.path.is_empty() {
        s.push_str(&p.path);
        s.push_str(": ");
    }
    s.push_str(&p.message);
    s
}

/// Every input parsed, or a validation error listing every problem (one per line).
pub(crate) fn parse_all(inputs: &[Input]) -> CtlResult<Vec<(usize, Vec<Manifest>)>> {
    let reports = check(inputs);
    let problems: Vec<String> = reports
        .iter()
        .flat_map(|r| r.errors.iter().map(problem_line))
        .collect();
    if !problems.is_empty() {
        return Err(CtlError::general(format!(
            "{}\nnothing was sent to the cluster; fix the manifests (`cloudlessctl validate -f ...` checks them offline)",
            problems.join("\n")
        )));
    }
    let mut out = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        out.push((i, input.parse().unwrap_or_default()));
    }
    Ok(out)
}
