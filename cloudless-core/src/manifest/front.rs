//! Front ends: YAML and JSON text to document trees, with bounds and error positions.

use std::io::Cursor;

use serde_saphyr::{DuplicateKeyPolicy, Options};

use super::error::ManifestError;
use super::parse::Limits;
use super::path::FieldPath;
use super::tree::{JsonNode, Node, Pos, YamlNode};

/// One document: its index and tree, or why it could not be read.
pub(crate) type DocResult = Result<(usize, Node), ManifestError>;

fn yaml_options(limits: &Limits, duplicates: DuplicateKeyPolicy) -> Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(limits.max_bytes),
            max_depth: limits.max_depth,
            max_documents: limits.max_documents,
            max_aliases: limits.max_alias_events,
            max_anchors: limits.max_alias_events,
            // A manifest of at most `max_bytes` never needs more events than this; the cap
            // bounds the work alias expansion can cause even below the replay limit.
            max_events: limits.max_bytes.saturating_add(limits.max_alias_events),
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: limits.max_alias_events,
            max_replay_stack_depth: limits.max_depth,
        },
        duplicate_keys: duplicates,
        // `no`/`yes`/`on`/`off` stay strings: a boolean field given `yes` is a type error
        // rather than a silent guess (and `country: no` stays "no").
        strict_booleans: true,
        with_snippet: false,
    }
}

/// Reads every YAML document. After a syntax error or a breached limit the stream ends; a
/// document that fails for another reason (a duplicate key) does not stop the next one.
pub(crate) fn read_yaml(text: &str, limits: &Limits) -> Vec<DocResult> {
    let mut out = Vec::new();
    let mut lenient = Lenient {
        text,
        limits,
        docs: None,
    };
    let mut cursor = Cursor::new(text.as_bytes());
    let docs = serde_saphyr::read_with_options::<_, YamlNode>(
        &mut cursor,
        yaml_options(limits, DuplicateKeyPolicy::Error),
    );
    for (index, doc) in docs.enumerate() {
        if index >= limits.max_documents {
            out.push(Err(ManifestError {
                document: index,
                ..ManifestError::input(format!(
                    "too many documents (the limit is {})",
                    limits.max_documents
                ))
            }));
            break;
        }
        match doc {
            Ok(YamlNode(node)) => {
                let depth = node.depth();
                if depth > limits.max_depth {
                    out.push(Err(too_deep(index, depth, limits)));
                } else {
                    out.push(Ok((index, node)));
                }
            }
            Err(e) => out.push(Err(yaml_error(&mut lenient, index, &e))),
        }
    }
    out
}

/// The stream read again leniently (first duplicate wins, later ones are skipped), done at most
/// once per input and only when an error needs a path. That read succeeds for errors such as
/// duplicate keys; for syntax errors it fails too and the path stays empty: the line is then the
/// best pointer.
struct Lenient<'a> {
    text: &'a str,
    limits: &'a Limits,
    docs: Option<Vec<Option<Node>>>,
}

impl Lenient<'_> {
    /// The path of the field at `pos` in document `document` (see [`Node::path_at`]).
    fn path_at(&mut self, document: usize, pos: Pos, duplicate: Option<&str>) -> FieldPath {
        let (text, limits) = (self.text, self.limits);
        let docs = self.docs.get_or_insert_with(|| {
            let mut cursor = Cursor::new(text.as_bytes());
            let options = yaml_options(limits, DuplicateKeyPolicy::FirstWins);
            serde_saphyr::read_with_options::<_, YamlNode>(&mut cursor, options)
                .take(limits.max_documents)
                .map(|d| d.ok().map(|n| n.0))
                .collect()
        });
        match docs.get(document) {
            Some(Some(node)) => node.path_at(pos, duplicate),
            _ => FieldPath::root(),
        }
    }
}

fn yaml_error(
    lenient: &mut Lenient<'_>,
    document: usize,
    e: &serde_saphyr::Error,
) -> ManifestError {
    let limits = lenient.limits;
    let e = e.without_snippet();
    let pos = e.location().and_then(|l| {
        let line = usize::try_from(l.line()).ok().filter(|l| *l > 0)?;
        Some(Pos {
            line,
            column: usize::try_from(l.column()).unwrap_or(0),
        })
    });
    let duplicate = match e {
        serde_saphyr::Error::DuplicateMappingKey { key, .. } => key.as_deref(),
        _ => None,
    };
    let path = pos
        .map(|p| lenient.path_at(document, p, duplicate))
        .unwrap_or_default();
    ManifestError {
        document,
        path: path.to_string(),
        line: pos.map(|p| p.line),
        column: pos.map(|p| p.column).filter(|c| *c > 0),
        message: yaml_message(e, limits),
    }
}

/// Our wording for the errors a user is likely to meet; the parser's own text otherwise.
fn yaml_message(e: &serde_saphyr::Error, limits: &Limits) -> String {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    match e {
        E::DuplicateMappingKey { key: Some(k), .. } => format!("duplicate key {k:?}"),
        E::DuplicateMappingKey { key: None, .. } => "duplicate key".to_owned(),
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::Budget {
            breach: B::Aliases { .. } | B::AliasAnchorRatio { .. } | B::Anchors { .. },
            ..
        } => format!(
            "YAML aliases expand too much (limit: {} replayed events); refusing a possible alias bomb",
            limits.max_alias_events
        ),
        E::Budget {
            breach: B::Depth { .. },
            ..
        } => {
            format!(
                "nesting too deep (the limit is {} levels)",
                limits.max_depth
            )
        }
        E::Budget {
            breach: B::Documents { .. },
            ..
        } => {
            format!("too many documents (the limit is {})", limits.max_documents)
        }
        E::Budget { breach, .. } => format!("input exceeds a parser limit: {breach:?}"),
        other => {
            let text = other.to_string();
            // Alias-limit errors can arrive wrapped (with the alias's location); match the text.
            if text.contains("alias replay") || text.contains("alias expansion") {
                format!(
                    "YAML aliases expand too much (limit: {} replayed events); refusing a possible alias bomb",
                    limits.max_alias_events
                )
            } else {
                clean_message(&text)
            }
        }
    }
}

/// Drops the "at line N column M" suffixes: the line and column are reported separately.
fn clean_message(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg).trim();
    let cut = [" at line ", " at  line "]
        .iter()
        .filter_map(|p| first.find(p))
        .min();
    match cut {
        Some(i) => first[..i].trim_end_matches([',', ':']).to_owned(),
        None => first.to_owned(),
    }
}

fn too_deep(document: usize, depth: usize, limits: &Limits) -> ManifestError {
    ManifestError {
        document,
        ..ManifestError::input(format!(
            "nesting too deep: {depth} levels (the limit is {})",
            limits.max_depth
        ))
    }
}

/// Reads one JSON object. serde_json refuses nesting beyond 128 levels on its own (guarding the
/// stack); our tighter depth limit is checked on the tree.
pub(crate) fn read_json(text: &str, limits: &Limits) -> Vec<DocResult> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result = serde_path_to_error::deserialize::<_, JsonNode>(&mut de)
        .map_err(|e| {
            (
                FieldPath::join_serde(&FieldPath::root(), e.path()),
                e.into_inner(),
            )
        })
        .and_then(|n| de.end().map(|()| n).map_err(|e| (FieldPath::root(), e)));
    match result {
        Ok(JsonNode(mut node)) => {
            let depth = node.depth();
            if depth > limits.max_depth {
                return vec![Err(too_deep(0, depth, limits))];
            }
            // Best effort: if the YAML reader accepts the text too, take its line numbers.
            let mut cursor = Cursor::new(text.as_bytes());
            let options = yaml_options(limits, DuplicateKeyPolicy::FirstWins);
            if let Some(Ok(YamlNode(spanned))) =
                serde_saphyr::read_with_options::<_, YamlNode>(&mut cursor, options).next()
            {
                node.adopt_positions(&spanned);
            }
            vec![Ok((0, node))]
        }
        Err((mut path, inner)) => {
            // Our duplicate-key error is raised in the map holding the key; name the key itself.
            let text = inner.to_string();
            if let Some(key) = text
                .strip_prefix("duplicate key \"")
                .and_then(|r| r.split('"').next())
            {
                path = path.key(key);
            }
            let message = if inner.to_string().contains("recursion limit exceeded") {
                format!(
                    "nesting too deep (the limit is {} levels)",
                    limits.max_depth
                )
            } else {
                clean_message(&inner.to_string())
            };
            vec![Err(ManifestError {
                document: 0,
                path: path.to_string(),
                line: Some(inner.line()).filter(|l| *l > 0),
                column: Some(inner.column()).filter(|c| *c > 0),
                message,
            })]
        }
    }
}
