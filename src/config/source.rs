//! Reading a configuration: TOML text, then `JOBWATCH__SECTION__KEY` environment overrides,
//! then the typed `Raw*` structs — reporting **every** problem with its full dotted key
//! (`checks[0].log_max_bytes`), the type actually found, and the environment variable a bad
//! value came from. A value of a secret field is never echoed, not even from a TOML syntax
//! error on its line.
//!
//! The typed step is serde's (through `serde_path_to_error` for the key): an unknown key or a
//! wrong type is recorded, that key is taken out, and the rest is read again, until it reads.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::ConfigIssue;

/// Field names whose values are secrets: never quoted in an error.
const SECRET_FIELDS: &[&str] = &["app_secret", "token", "secret", "password", "url"];

/// Whether the last segment of `key` names a secret field.
fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit(['.', '[']).next().unwrap_or(key);
    SECRET_FIELDS.contains(&last)
}

/// One step of a key: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The dotted key a line of TOML sets (`[table]` headers before it included), if it reads as
/// `key = …`; only bare keys are named.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let bare = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let mut table = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if i + 1 == line {
            let (k, _) = t.split_once('=')?;
            let k = k.trim();
            if !bare(k) {
                return None;
            }
            return Some(if table.is_empty() {
                k.to_owned()
            } else {
                format!("{table}.{k}")
            });
        }
        if let Some(header) = t.strip_prefix('[') {
            let name = header
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            if bare(name) {
                table = name.to_owned();
            }
        }
    }
    None
}

/// Parses TOML text. A syntax error is one issue keyed by its position (and the key of its
/// line when there is one); no text of the file is quoted, so a secret on that line stays
/// out of the message.
pub(super) fn parse_toml(text: &str) -> Result<Table, ConfigIssue> {
    text.parse::<Table>().map_err(|e| {
        let (line, col) = e.span().map_or((0, 0), |s| line_col(text, s.start));
        let position = format!("line {line}, column {col}");
        let key = match key_at_line(text, line) {
            Some(k) => format!("{k} ({position})"),
            None => position,
        };
        ConfigIssue {
            key,
            message: format!("TOML syntax error: {}", e.message().trim()),
        }
    })
}

/// A value from the environment: `true`/`false`, an integer, a float, else the text.
fn env_value(text: &str) -> Value {
    match text {
        "true" => return Value::Boolean(true),
        "false" => return Value::Boolean(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Integer(i);
    }
    if text.contains('.')
        && let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return Value::Float(f);
    }
    Value::String(text.to_owned())
}

impl Layered {
    /// Names the variable behind `issue`'s key, when the environment set it.
    pub(super) fn blame(&self, issue: &mut ConfigIssue) {
        if let Some((var, _)) = self.from_env.get(&issue.key)
            && !issue.message.contains(var.as_str())
        {
            issue.message.push_str(&format!(" (set by {var})"));
        }
    }
}

/// The configuration as a tree, with where environment overrides went.
pub(super) struct Layered {
    /// The whole tree.
    pub(super) root: Table,
    /// Rendered key → the variable that set it and its text as given.
    pub(super) from_env: HashMap<String, (String, String)>,
}

/// Applies `JOBWATCH__A__B__C=value` overrides to `root` (`a.b.c`; a number steps into a
/// list: `JOBWATCH__CHECKS__0__TIMEOUT`). Segments match existing keys whatever their case,
/// and are lower-case when new. Setting a secret from the environment replaces the file's
/// choice of source (`app_secret` replaces `app_secret_file` and the other way round): the
/// environment wins, as for any key. Problems are issues naming the variable.
pub(super) fn overlay_env(
    root: Table,
    env: impl IntoIterator<Item = (String, String)>,
    issues: &mut Vec<ConfigIssue>,
) -> Layered {
    let mut layered = Layered {
        root,
        from_env: HashMap::new(),
    };
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("JOBWATCH__"))
        .collect();
    vars.sort();
    for (var, value) in vars {
        let segments: Vec<String> = var["JOBWATCH__".len()..]
            .split("__")
            .map(str::to_lowercase)
            .collect();
        if segments.iter().any(String::is_empty) {
            issues.push(ConfigIssue {
                key: var.clone(),
                message:
                    "not a key: use JOBWATCH__SECTION__KEY (double underscores, no empty part)"
                        .into(),
            });
            continue;
        }
        match set_path(&mut layered.root, &segments, env_value(&value)) {
            Ok(path) => {
                layered.from_env.insert(render(&path), (var, value));
            }
            Err(why) => issues.push(ConfigIssue {
                key: var,
                message: why,
            }),
        }
    }
    layered
}

/// Sets `segments` in `root` to `value`, returning the path it took.
fn set_path(root: &mut Table, segments: &[String], value: Value) -> Result<Vec<Step>, String> {
    let mut path = Vec::new();
    set_in_table(root, segments, value, &mut path)?;
    Ok(path)
}

fn set_in_table(
    table: &mut Table,
    segments: &[String],
    value: Value,
    path: &mut Vec<Step>,
) -> Result<(), String> {
    let (segment, rest) = segments.split_first().ok_or("empty key")?;
    let key = table
        .keys()
        .find(|k| k.eq_ignore_ascii_case(segment))
        .cloned()
        .unwrap_or_else(|| segment.clone());
    path.push(Step::Key(key.clone()));
    if rest.is_empty() {
        let sibling = match key.strip_suffix("_file") {
            Some(inline) => inline.to_owned(),
            None => format!("{key}_file"),
        };
        table.remove(&sibling);
        table.insert(key, value);
        return Ok(());
    }
    let child = table
        .entry(key)
        .or_insert_with(|| Value::Table(Table::new()));
    set_in_value(child, rest, value, path)
}

fn set_in_value(
    node: &mut Value,
    segments: &[String],
    value: Value,
    path: &mut Vec<Step>,
) -> Result<(), String> {
    match node {
        Value::Table(t) => set_in_table(t, segments, value, path),
        Value::Array(list) => {
            let (segment, rest) = segments.split_first().ok_or("empty key")?;
            let index: usize = segment.parse().map_err(|_| {
                format!(
                    "`{}` is a list: the next part must be an index",
                    render(path)
                )
            })?;
            let len = list.len();
            let item = list.get_mut(index).ok_or_else(|| {
                format!(
                    "`{}` has {len} entries; there is no [{index}]",
                    render(path)
                )
            })?;
            path.push(Step::Index(index));
            if rest.is_empty() {
                *item = value;
                Ok(())
            } else {
                set_in_value(item, rest, value, path)
            }
        }
        _ => Err(format!(
            "`{}` is a single value here; it has no `{}`",
            render(path),
            segments[0]
        )),
    }
}

/// The node at `path`, if any.
fn node_mut<'a>(root: &'a mut Table, path: &[Step]) -> Option<&'a mut Value> {
    let (Step::Key(first), rest) = path.split_first()? else {
        return None;
    };
    let mut node = root.get_mut(first)?;
    for step in rest {
        node = match (step, node) {
            (Step::Key(k), Value::Table(t)) => t.get_mut(k)?,
            (Step::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Takes the node at `path` out of the tree (a list element takes its whole list, so that the
/// indexes of the others stay true). Returns whether something was removed.
fn remove(root: &mut Table, path: &[Step]) -> bool {
    let mut path = path.to_vec();
    while matches!(path.last(), Some(Step::Index(_))) {
        path.pop();
    }
    let Some((Step::Key(last), parent)) = path.split_last() else {
        return false;
    };
    if parent.is_empty() {
        return root.remove(last).is_some();
    }
    match node_mut(root, parent) {
        Some(Value::Table(t)) => t.remove(last).is_some(),
        _ => false,
    }
}

/// What serde said, made safe to show: for a secret key, everything serde quoted in
/// backticks or double quotes (the value) is dropped.
fn describe(key: &str, message: &str) -> String {
    let message = message.trim();
    if !is_secret_key(key) {
        return message.to_owned();
    }
    let kept: String = message.split('`').step_by(2).collect();
    let kept: String = kept.split('"').step_by(2).collect();
    kept.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ,", ",")
}

/// Reads the tree into `T`, recording every unknown key and wrong type as an issue (with the
/// variable, for a value from the environment) and reading the rest. A number or boolean from
/// the environment where text is expected is taken as text (no issue).
pub(super) fn deserialize<T: DeserializeOwned>(
    layered: &mut Layered,
    issues: &mut Vec<ConfigIssue>,
) -> Option<T> {
    // Each round removes or fixes one key, so this ends; the bound is a guard.
    for _ in 0..10_000 {
        let value = Value::Table(layered.root.clone());
        let error = match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let mut path: Vec<Step> = error
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                _ => None,
            })
            .collect();
        let message = error.into_inner().message().to_owned();
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
            && path.last() != Some(&Step::Key(field.to_owned()))
        {
            path.push(Step::Key(field.to_owned()));
        }
        let key = render(&path);
        // An environment value that read as a number or boolean where text is wanted: the
        // text as given.
        if let Some((_, given)) = layered.from_env.get(&key)
            && message.starts_with("invalid type")
            && let Some(node) = node_mut(&mut layered.root, &path)
            && !matches!(node, Value::String(_))
        {
            *node = Value::String(given.clone());
            continue;
        }
        let mut text = describe(&key, &message);
        if let Some((var, _)) = layered.from_env.get(&key) {
            text.push_str(&format!(" (set by {var})"));
        }
        issues.push(ConfigIssue {
            key: if key.is_empty() {
                "(top level)".into()
            } else {
                key
            },
            message: text,
        });
        if path.is_empty() || !remove(&mut layered.root, &path) {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_keys_of_lines() {
        let text = "a = 1\n[platforms.bk]\napp_secret = \"x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 8), (2, 3));
        assert_eq!(
            key_at_line(text, 3).as_deref(),
            Some("platforms.bk.app_secret")
        );
        assert_eq!(key_at_line(text, 1).as_deref(), Some("a"));
    }

    #[test]
    fn a_secret_value_is_never_quoted() {
        assert_eq!(
            describe(
                "platforms.bk.app_secret",
                "invalid type: integer `12345`, expected a string"
            ),
            "invalid type: integer, expected a string"
        );
        assert_eq!(
            describe(
                "checks[0].timeout",
                "invalid type: integer `-5`, expected a duration"
            ),
            "invalid type: integer `-5`, expected a duration"
        );
    }
}
