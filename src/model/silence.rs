//! Silences, as Alertmanager has them: label matchers, a start, an end, an author and a
//! comment. A notification whose alert's labels every matcher of an active silence matches
//! is not sent but recorded `silenced`, and waits for the silence's end (`notify::dispatch`).
//!
//! Matching follows Alertmanager (`pkg/labels/matcher.go`): `=`, `!=`, `=~`, `!~`; regular
//! expressions are anchored at both ends; a label the alert lacks matches as the empty
//! string. A silence must have a matcher that does not match the empty string, so that it
//! cannot silence every alert by accident.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`: equal.
    Equal,
    /// `!=`: not equal.
    NotEqual,
    /// `=~`: the whole value matches the regular expression.
    Regex,
    /// `!~`: the whole value does not match it.
    NotRegex,
}

impl MatchOp {
    /// `=`, `!=`, `=~` or `!~`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One label matcher. Serialized as Alertmanager's API v2 has it:
/// `{"name", "value", "isRegex", "isEqual"}`; read from that or from its text
/// (`check=~"db-.*"`).
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value, or the regular expression's text.
    pub value: String,
    /// The anchored expression (`=~`, `!~`).
    regex: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

/// Why a matcher or a silence is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SilenceError(pub String);

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Matcher {
    /// A matcher; the label name must be a Prometheus label name, a regular expression must
    /// compile.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, SilenceError> {
        if !is_label_name(name) {
            return Err(SilenceError(format!(
                "`{name}` is not a label name (letters, digits, `_`, not starting with a digit)"
            )));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                    SilenceError(format!("`{value}` is not a regular expression: {e}"))
                })?)
            }
            _ => None,
        };
        Ok(Matcher {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Reads `name<op>value`: the value may be quoted (`"…"`, with `\"` and `\\` escapes) or
    /// bare (`check=db`).
    pub fn parse(text: &str) -> Result<Matcher, SilenceError> {
        let text = text.trim();
        let at = text.find(['=', '!']).ok_or_else(|| {
            SilenceError(format!("`{text}` is not a matcher like name=\"value\""))
        })?;
        let name = text[..at].trim();
        let rest = &text[at..];
        let (op, value) = [
            ("=~", MatchOp::Regex),
            ("!~", MatchOp::NotRegex),
            ("!=", MatchOp::NotEqual),
            ("=", MatchOp::Equal),
        ]
        .into_iter()
        .find_map(|(sign, op)| rest.strip_prefix(sign).map(|v| (op, v.trim())))
        .ok_or_else(|| {
            SilenceError(format!(
                "`{text}`: the operator must be one of =, !=, =~, !~"
            ))
        })?;
        let value = match value.strip_prefix('"') {
            Some(quoted) => {
                let mut out = String::new();
                let mut chars = quoted.chars();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some('n') => out.push('\n'),
                            Some(c) => out.push(c),
                            None => break,
                        },
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => out.push(c),
                    }
                }
                if !closed || !chars.as_str().trim().is_empty() {
                    return Err(SilenceError(format!(
                        "`{text}`: the quoted value is not closed"
                    )));
                }
                out
            }
            None => value.to_owned(),
        };
        Matcher::new(name, op, &value)
    }

    /// Whether `labels` satisfy this matcher (a missing label is the empty string).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.name).map_or("", String::as_str))
    }

    fn matches_value(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    /// `name<op>"value"`, quoted as Alertmanager writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let escaped = self.value.replace('\\', "\\\\").replace('"', "\\\"");
        write!(f, "{}{}\"{}\"", self.name, self.op.as_str(), escaped)
    }
}

/// Alertmanager's v2 shape of a matcher.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct MatcherV2 {
    name: String,
    value: String,
    #[serde(default)]
    is_regex: bool,
    #[serde(default = "yes")]
    is_equal: bool,
}

fn yes() -> bool {
    true
}

impl Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MatcherV2 {
            name: self.name.clone(),
            value: self.value.clone(),
            is_regex: matches!(self.op, MatchOp::Regex | MatchOp::NotRegex),
            is_equal: matches!(self.op, MatchOp::Equal | MatchOp::Regex),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            V2(MatcherV2),
        }
        match Either::deserialize(d)? {
            Either::Text(text) => Matcher::parse(&text).map_err(serde::de::Error::custom),
            Either::V2(m) => {
                let op = match (m.is_regex, m.is_equal) {
                    (false, true) => MatchOp::Equal,
                    (false, false) => MatchOp::NotEqual,
                    (true, true) => MatchOp::Regex,
                    (true, false) => MatchOp::NotRegex,
                };
                Matcher::new(&m.name, op, &m.value).map_err(serde::de::Error::custom)
            }
        }
    }
}

/// Where a silence stands at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SilenceState {
    /// Starts later.
    Pending,
    /// Silencing now.
    Active,
    /// Ended (or expired by hand).
    Expired,
}

impl SilenceState {
    /// `pending`, `active` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// A silence: while `starts_at_ms <= now < ends_at_ms`, notifications of alerts its matchers
/// all match are recorded `silenced` instead of sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Silence {
    /// A UUIDv7.
    pub id: String,
    /// Every one must match.
    #[schema(value_type = Vec<Object>)]
    pub matchers: Vec<Matcher>,
    /// Unix ms.
    pub starts_at_ms: i64,
    /// Unix ms (set to the moment it was expired, when expired by hand).
    pub ends_at_ms: i64,
    /// Who made it (defaults to the token's name).
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Unix ms: created or expired.
    pub updated_at_ms: i64,
    /// The token that expired it by hand, if one did.
    #[serde(default)]
    pub expired_by: Option<String>,
}

impl Silence {
    /// Checks a new silence: matchers (one not matching the empty string), times (start
    /// before end, the end still ahead), author and comment.
    pub fn validate(&self, now_ms: i64) -> Result<(), SilenceError> {
        if self.matchers.is_empty() {
            return Err(SilenceError("a silence needs at least one matcher".into()));
        }
        if self.matchers.iter().all(|m| m.matches_value("")) {
            return Err(SilenceError(
                "every matcher matches an empty label: this would silence every alert; add one that does not (e.g. check=\"…\")".into(),
            ));
        }
        if self.ends_at_ms <= self.starts_at_ms {
            return Err(SilenceError("ends_at must be after starts_at".into()));
        }
        if self.ends_at_ms <= now_ms {
            return Err(SilenceError("ends_at is in the past".into()));
        }
        if self.created_by.trim().is_empty() {
            return Err(SilenceError("created_by is empty".into()));
        }
        if self.comment.trim().is_empty() {
            return Err(SilenceError(
                "comment is empty: say why (it is what the next person on call reads)".into(),
            ));
        }
        Ok(())
    }

    /// Where it stands at `now_ms`.
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms >= self.ends_at_ms {
            SilenceState::Expired
        } else if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// Whether every matcher matches `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    /// The matchers as text: `a="x", b=~"y"`.
    pub fn matchers_text(&self) -> String {
        self.matchers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The silences active at one moment, to check notifications against.
#[derive(Debug, Clone, Default)]
pub struct Silences(pub Vec<Silence>);

impl Silences {
    /// Of the silences active at `now_ms` that cover `labels`, the one that ends last.
    pub fn covering(&self, labels: &BTreeMap<String, String>, now_ms: i64) -> Option<&Silence> {
        self.0
            .iter()
            .filter(|s| s.state(now_ms) == SilenceState::Active && s.matches(labels))
            .max_by_key(|s| s.ends_at_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn matchers_read_and_match_as_alertmanager_does() {
        let l = labels(&[("alertname", "JobFailed"), ("check", "db-backup")]);
        for (text, want) in [
            ("check=\"db-backup\"", true),
            ("check=db-backup", true),
            ("check!=\"db-backup\"", false),
            ("check=~\"db-.*\"", true),
            ("check=~\"db\"", false), // anchored
            ("check!~\"web-.*\"", true),
            ("severity=\"\"", true), // a missing label is empty
            ("severity!=\"\"", false),
            ("alertname = \"JobFailed\"", true),
        ] {
            let m = Matcher::parse(text).unwrap();
            assert_eq!(m.matches(&l), want, "{text}");
        }
        let m = Matcher::parse(r#"comment="say \"hi\"""#).unwrap();
        assert_eq!(m.value, "say \"hi\"");
        assert_eq!(m.to_string(), r#"comment="say \"hi\"""#);
        assert_eq!(Matcher::parse(&m.to_string()).unwrap(), m);
        for bad in [
            "check",
            "1x=\"a\"",
            "check=~\"(\"",
            "check=\"open",
            "check~\"x\"",
        ] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matchers_are_read_from_text_or_alertmanagers_json() {
        let list: Vec<Matcher> = serde_json::from_str(
            r#"["check=~\"db.*\"", {"name":"severity","value":"page","isRegex":false,"isEqual":false}]"#,
        )
        .unwrap();
        assert_eq!(list[0].op, MatchOp::Regex);
        assert_eq!(list[1].op, MatchOp::NotEqual);
        let back = serde_json::to_value(&list[1]).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"name":"severity","value":"page","isRegex":false,"isEqual":false})
        );
        assert!(serde_json::from_str::<Matcher>(r#"{"name":"a b","value":"x"}"#).is_err());
    }

    #[test]
    fn a_silence_covers_while_active_and_cannot_cover_everything() {
        let s = Silence {
            id: "s".into(),
            matchers: vec![Matcher::parse("check=\"a\"").unwrap()],
            starts_at_ms: 1_000,
            ends_at_ms: 2_000,
            created_by: "ops".into(),
            comment: "maintenance".into(),
            created_at_ms: 500,
            updated_at_ms: 500,
            expired_by: None,
        };
        assert!(s.validate(500).is_ok());
        let set = Silences(vec![s.clone()]);
        let l = labels(&[("check", "a")]);
        assert!(set.covering(&l, 999).is_none());
        assert!(set.covering(&l, 1_000).is_some());
        assert!(set.covering(&l, 2_000).is_none());
        assert!(set.covering(&labels(&[("check", "b")]), 1_500).is_none());
        let mut all = s.clone();
        all.matchers = vec![Matcher::parse("check=~\".*\"").unwrap()];
        assert!(all.validate(500).is_err());
        let mut past = s.clone();
        past.ends_at_ms = 400;
        past.starts_at_ms = 300;
        assert!(past.validate(500).is_err());
        let mut silent = s;
        silent.comment = " ".into();
        assert!(silent.validate(500).is_err());
    }
}
