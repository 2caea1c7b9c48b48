//! YAML to a tree that remembers lines, with the Python server's YAML 1.1 scalar rules.
//!
//! The Python server reads its config with PyYAML's `safe_load`, which follows YAML 1.1: `yes`
//! and `on` are booleans, `0644` is the octal integer 420, `0o644` is a *string*, `1e5` is a
//! string (a float needs a dot). A config copied from it must mean the same thing here, so plain
//! scalars are resolved by PyYAML's rules rather than the YAML 1.2 core schema yaml-rust2 uses.
//! `${VAR}` references are expanded in values before they are resolved, so `port: ${PORT:-5432}`
//! is the integer 5432 while `"${NAME}"` stays a string.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::env::{expand, Lookup};

/// A resolved YAML node and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) line: usize,
    pub(crate) value: Value,
}

/// A resolved YAML value; mappings keep their order and the line of each key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One `key: value` of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_line: usize,
    pub(crate) value: Node,
}

impl Node {
    /// A short name of the node's type, for "expected a mapping, found a list" messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node as JSON, for plugin and link options (which are JSON across the ABI).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A problem found while reading the YAML, at a line (0 when the whole file is concerned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlProblem {
    pub(crate) line: usize,
    pub(crate) key: String,
    pub(crate) message: String,
}

/// Parses one YAML document. Syntax errors stop at the first; every other problem (a missing
/// environment variable, a duplicate key) is collected so the operator sees them all at once.
pub(crate) fn parse(text: &str, env: &Lookup<'_>) -> Result<Option<Node>, Vec<YamlProblem>> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(err) = parser.load(&mut builder, true) {
        return Err(vec![YamlProblem {
            line: err.marker().line(),
            key: String::new(),
            message: format!("invalid YAML: {}", err.info()),
        }]);
    }
    let mut problems = builder.problems;
    if builder.documents.len() > 1 {
        problems.push(YamlProblem {
            line: builder.documents[1].line,
            key: String::new(),
            message: "the file holds more than one YAML document (`---`); keep one".into(),
        });
    }
    let root = builder.documents.into_iter().next();
    let resolved = root.map(|raw| resolve(raw, "", env, &mut problems));
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(problems)
    }
}

/// A node as the parser produced it: scalars still as text.
#[derive(Debug, Clone)]
struct Raw {
    line: usize,
    kind: RawKind,
}

#[derive(Debug, Clone)]
enum RawKind {
    Scalar {
        text: String,
        style: TScalarStyle,
        tag: Option<Tag>,
    },
    Seq(Vec<Raw>),
    /// Keys and values alternate.
    Map(Vec<Raw>),
}

/// Turns parser events into a [`Raw`] tree, keeping anchors for aliases.
#[derive(Default)]
struct Builder {
    stack: Vec<(Raw, usize)>,
    documents: Vec<Raw>,
    anchors: HashMap<usize, Raw>,
    problems: Vec<YamlProblem>,
}

impl Builder {
    fn finish(&mut self, node: Raw, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            Some((
                Raw {
                    kind: RawKind::Seq(items) | RawKind::Map(items),
                    ..
                },
                _,
            )) => {
                items.push(node);
            }
            Some(_) | None => self.documents.push(node),
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let node = Raw {
                    line,
                    kind: RawKind::Scalar { text, style, tag },
                };
                self.finish(node, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push((
                    Raw {
                        line,
                        kind: RawKind::Seq(Vec::new()),
                    },
                    anchor,
                ));
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push((
                    Raw {
                        line,
                        kind: RawKind::Map(Vec::new()),
                    },
                    anchor,
                ));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, anchor)) = self.stack.pop() {
                    self.finish(node, anchor);
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or_else(|| {
                    self.problems.push(YamlProblem {
                        line,
                        key: String::new(),
                        message: "an alias (`*name`) refers to an anchor that is not defined"
                            .into(),
                    });
                    Raw {
                        line,
                        kind: RawKind::Scalar {
                            text: String::new(),
                            style: TScalarStyle::Plain,
                            tag: None,
                        },
                    }
                });
                self.finish(Raw { line, ..node }, 0);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// Resolves scalars, expands `${VAR}` in values, applies `<<` merge keys and refuses duplicate
/// keys (PyYAML silently keeps the last one, which hides mistakes).
fn resolve(raw: Raw, path: &str, env: &Lookup<'_>, problems: &mut Vec<YamlProblem>) -> Node {
    let line = raw.line;
    let value = match raw.kind {
        RawKind::Scalar { text, style, tag } => match expand(&text, env) {
            Ok(expanded) => resolve_scalar(expanded, style, tag.as_ref()),
            Err(message) => {
                problems.push(YamlProblem {
                    line,
                    key: path.to_owned(),
                    message,
                });
                Value::Null
            }
        },
        RawKind::Seq(items) => Value::Seq(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| resolve(item, &format!("{path}[{i}]"), env, problems))
                .collect(),
        ),
        RawKind::Map(flat) => Value::Map(resolve_map(flat, path, env, problems)),
    };
    Node { line, value }
}

fn resolve_map(
    flat: Vec<Raw>,
    path: &str,
    env: &Lookup<'_>,
    problems: &mut Vec<YamlProblem>,
) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut merged: Vec<Entry> = Vec::new();
    let mut iter = flat.into_iter();
    while let (Some(key), Some(value)) = (iter.next(), iter.next()) {
        let key_line = key.line;
        let RawKind::Scalar { text: key, .. } = key.kind else {
            problems.push(YamlProblem {
                line: key_line,
                key: path.to_owned(),
                message: "a key must be plain text, not a list or mapping".into(),
            });
            continue;
        };
        let child_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let value = resolve(value, &child_path, env, problems);
        if key == "<<" {
            // A merge key: the mapping(s) it names supply keys this mapping does not set.
            let sources = match value.value {
                Value::Map(entries) => vec![entries],
                Value::Seq(items) => items
                    .into_iter()
                    .filter_map(|n| match n.value {
                        Value::Map(entries) => Some(entries),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            merged.extend(sources.into_iter().flatten());
            continue;
        }
        if let Some(first) = entries.iter().find(|e| e.key == key) {
            problems.push(YamlProblem {
                line: key_line,
                key: child_path,
                message: format!(
                    "duplicate key (first set on line {}); remove one of them",
                    first.key_line
                ),
            });
            continue;
        }
        entries.push(Entry {
            key,
            key_line,
            value,
        });
    }
    for entry in merged {
        if !entries.iter().any(|e| e.key == entry.key) {
            entries.push(entry);
        }
    }
    entries
}

static INT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    )
    .expect("valid regex")
});

static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    )
    .expect("valid regex")
});

/// PyYAML's implicit resolvers for a plain scalar; quoted and block scalars are strings.
fn resolve_scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag {
        if tag.suffix == "str" || tag.suffix.ends_with(":str") {
            return Value::Str(text);
        }
    }
    if style != TScalarStyle::Plain {
        return Value::Str(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true)
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false)
        }
        _ => {}
    }
    if INT.is_match(&text) {
        if let Some(int) = parse_int(&text) {
            return Value::Int(int);
        }
    }
    if FLOAT.is_match(&text) {
        if let Some(float) = parse_float(&text) {
            return Value::Float(float);
        }
    }
    Value::Str(text)
}

/// Parses a YAML 1.1 integer: `0b`, leading-`0` octal, `0x`, base 60 and `_` separators.
fn parse_int(text: &str) -> Option<i64> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (negative, digits) = match cleaned.as_bytes().first() {
        Some(b'-') => (true, &cleaned[1..]),
        Some(b'+') => (false, &cleaned[1..]),
        _ => (false, cleaned.as_str()),
    };
    let magnitude = if let Some(bin) = digits.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.contains(':') {
        digits.split(':').try_fold(0i64, |acc, part| {
            acc.checked_mul(60)?.checked_add(part.parse().ok()?)
        })?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

fn parse_float(text: &str) -> Option<f64> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    match cleaned
        .trim_start_matches(['-', '+'])
        .to_ascii_lowercase()
        .as_str()
    {
        ".inf" => Some(if cleaned.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
        ".nan" => Some(f64::NAN),
        _ => cleaned.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(text: &str) -> Value {
        resolve_scalar(text.to_owned(), TScalarStyle::Plain, None)
    }

    #[test]
    fn yaml_1_1_scalars_resolve_as_pyyaml_does() {
        assert_eq!(scalar("0644"), Value::Int(420));
        assert_eq!(scalar("0o644"), Value::Str("0o644".into()));
        assert_eq!(scalar("644"), Value::Int(644));
        assert_eq!(scalar("yes"), Value::Bool(true));
        assert_eq!(scalar("Off"), Value::Bool(false));
        assert_eq!(scalar("~"), Value::Null);
        assert_eq!(scalar("1e5"), Value::Str("1e5".into()));
        assert_eq!(scalar("1.5"), Value::Float(1.5));
        assert_eq!(scalar("0x1F"), Value::Int(31));
        assert_eq!(scalar("-0b101"), Value::Int(-5));
        assert_eq!(scalar("1:30"), Value::Int(90));
        assert_eq!(scalar("1_000"), Value::Int(1000));
        assert_eq!(scalar("08"), Value::Str("08".into()));
        assert_eq!(scalar("y"), Value::Str("y".into()));
        assert_eq!(
            resolve_scalar("0644".into(), TScalarStyle::DoubleQuoted, None),
            Value::Str("0644".into())
        );
    }

    #[test]
    fn huge_integers_stay_text_instead_of_wrapping() {
        assert_eq!(
            scalar("99999999999999999999"),
            Value::Str("99999999999999999999".into())
        );
    }
}
