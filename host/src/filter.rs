//! Payload filters: the optional per-webhook condition over the standard payload.
//!
//! A filter is JSON: leaves `{"path": "currentValue.todoList.project.id", "op": "eq", "value":
//! "p1"}` and combinators `{"all": [...]}`, `{"any": [...]}`, `{"not": {...}}`. Paths are
//! dot-separated keys; `[n]` indexes an array and `[*]` means any element. A leaf holds when
//! any value its path reaches satisfies the op — except `ne`, which holds when none equals.
//! Filters are parsed once, when the webhook is saved; a bad one is refused with the place
//! it went wrong (`filter.all[1].op: …`).

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Filters nest at most this deep…
const MAX_DEPTH: usize = 16;
/// …and have at most this many leaves.
const MAX_LEAVES: usize = 128;

/// A parsed, valid filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Leaf { path: Path, op: Op },
}

/// Where a path leads: keys, indexes and "any element".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(Vec<Step>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    AnyElement,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Exists,
    Contains(Value),
    Compare(Comparison, Bound),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// What `gt`/`gte`/`lt`/`lte` compare against: a number, or an ISO-8601 (RFC 3339) time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Number(f64),
    Time(OffsetDateTime),
}

/// Where in the filter JSON something is wrong, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct FilterError {
    pub at: String,
    pub message: String,
}

const OPS: &str = "eq, ne, in, exists, contains, gt, gte, lt, lte";

impl Filter {
    /// Parses and validates a filter; the error names the offending part.
    pub fn parse(json: &Value) -> Result<Filter, FilterError> {
        let mut leaves = 0;
        parse_node(json, "filter", 0, &mut leaves)
    }

    /// Whether the standard payload satisfies the filter.
    pub fn matches(&self, payload: &Value) -> bool {
        self.matches_split(payload, None)
    }

    /// The same, with the payload's `webhook` member given apart: the rest of the payload is
    /// built once per event and shared by every webhook it reaches.
    pub fn matches_split(&self, payload: &Value, webhook: Option<&Value>) -> bool {
        match self {
            Filter::All(parts) => parts.iter().all(|f| f.matches_split(payload, webhook)),
            Filter::Any(parts) => parts.iter().any(|f| f.matches_split(payload, webhook)),
            Filter::Not(inner) => !inner.matches_split(payload, webhook),
            Filter::Leaf { path, op } => {
                let mut found = Vec::new();
                match (&path.0[..], webhook) {
                    ([Step::Key(first), ..], Some(webhook)) if first == "webhook" => {
                        path.collect(webhook, 1, &mut found)
                    }
                    _ => path.collect(payload, 0, &mut found),
                }
                match op {
                    Op::Ne(value) => !found.contains(&value),
                    _ => found.iter().any(|v| op.holds(v)),
                }
            }
        }
    }
}

fn error(at: &str, message: impl Into<String>) -> FilterError {
    FilterError { at: at.to_owned(), message: message.into() }
}

fn parse_node(json: &Value, at: &str, depth: usize, leaves: &mut usize) -> Result<Filter, FilterError> {
    if depth > MAX_DEPTH {
        return Err(error(at, format!("filters nest at most {MAX_DEPTH} deep")));
    }
    let Some(object) = json.as_object() else {
        return Err(error(
            at,
            "expected an object: a leaf {\"path\", \"op\", \"value\"} or {\"all\"|\"any\"|\"not\": …}",
        ));
    };
    for combinator in ["all", "any", "not"] {
        if let Some(inner) = object.get(combinator) {
            if object.len() != 1 {
                return Err(error(at, format!("\"{combinator}\" must be the object's only key")));
            }
            let at = format!("{at}.{combinator}");
            if combinator == "not" {
                return Ok(Filter::Not(Box::new(parse_node(inner, &at, depth + 1, leaves)?)));
            }
            let Some(parts) = inner.as_array().filter(|parts| !parts.is_empty()) else {
                return Err(error(&at, "expected a non-empty array of filters"));
            };
            let parts = parts
                .iter()
                .enumerate()
                .map(|(i, part)| parse_node(part, &format!("{at}[{i}]"), depth + 1, leaves))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if combinator == "all" { Filter::All(parts) } else { Filter::Any(parts) });
        }
    }
    *leaves += 1;
    if *leaves > MAX_LEAVES {
        return Err(error(at, format!("a filter has at most {MAX_LEAVES} conditions")));
    }
    parse_leaf(object, at)
}

fn parse_leaf(object: &serde_json::Map<String, Value>, at: &str) -> Result<Filter, FilterError> {
    if let Some(key) = object.keys().find(|k| !matches!(k.as_str(), "path" | "op" | "value")) {
        return Err(error(at, format!("unknown key {key:?}; a leaf has \"path\", \"op\" and \"value\"")));
    }
    let path = match object.get("path") {
        Some(Value::String(path)) => Path::parse(path).map_err(|m| error(&format!("{at}.path"), m))?,
        Some(_) => return Err(error(&format!("{at}.path"), "expected a string")),
        None => return Err(error(at, "missing \"path\"")),
    };
    let op_at = format!("{at}.op");
    let op = object
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| error(&op_at, format!("expected one of {OPS}")))?;
    let value = object.get("value");
    let value_at = format!("{at}.value");
    let need_value = || value.cloned().ok_or_else(|| error(at, format!("op {op:?} needs a \"value\"")));
    let op = match op {
        "eq" => Op::Eq(need_value()?),
        "ne" => Op::Ne(need_value()?),
        "contains" => Op::Contains(need_value()?),
        "in" => match need_value()? {
            Value::Array(values) => Op::In(values),
            _ => return Err(error(&value_at, "op \"in\" needs an array")),
        },
        "exists" => {
            if value.is_some() {
                return Err(error(&value_at, "op \"exists\" takes no value"));
            }
            Op::Exists
        }
        "gt" | "gte" | "lt" | "lte" => {
            let comparison = match op {
                "gt" => Comparison::Gt,
                "gte" => Comparison::Gte,
                "lt" => Comparison::Lt,
                _ => Comparison::Lte,
            };
            let bound = Bound::from_value(&need_value()?).ok_or_else(|| {
                error(
                    &value_at,
                    format!("op {op:?} needs a number or an ISO-8601 time such as \"2026-01-31T00:00:00Z\""),
                )
            })?;
            Op::Compare(comparison, bound)
        }
        other => return Err(error(&op_at, format!("unknown op {other:?}; expected one of {OPS}"))),
    };
    Ok(Filter::Leaf { path, op })
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, String> {
        let mut steps = Vec::new();
        for segment in text.split('.') {
            let (key, mut rest) = segment.find('[').map_or((segment, ""), |at| segment.split_at(at));
            if key.is_empty() && (steps.is_empty() || rest.is_empty()) {
                return Err(format!(
                    "{text:?} has an empty key; use keys joined by dots, e.g. currentValue.title"
                ));
            }
            if !key.is_empty() {
                steps.push(Step::Key(key.to_owned()));
            }
            while !rest.is_empty() {
                let inner = rest
                    .strip_prefix('[')
                    .and_then(|r| r.split_once(']'))
                    .ok_or_else(|| format!("{text:?}: expected [n] or [*] after {key:?}"))?;
                steps.push(match inner.0 {
                    "*" => Step::AnyElement,
                    n => Step::Index(
                        n.parse()
                            .map_err(|_| format!("{text:?}: [{n}] is not an index; use [0], [1]… or [*]"))?,
                    ),
                });
                rest = inner.1;
            }
        }
        Ok(Path(steps))
    }

    fn collect<'v>(&self, value: &'v Value, from: usize, out: &mut Vec<&'v Value>) {
        let Some(step) = self.0.get(from) else {
            out.push(value);
            return;
        };
        match step {
            Step::Key(key) => {
                if let Some(next) = value.get(key) {
                    self.collect(next, from + 1, out);
                }
            }
            Step::Index(i) => {
                if let Some(next) = value.get(*i) {
                    self.collect(next, from + 1, out);
                }
            }
            Step::AnyElement => {
                for next in value.as_array().into_iter().flatten() {
                    self.collect(next, from + 1, out);
                }
            }
        }
    }
}

impl Bound {
    fn from_value(value: &Value) -> Option<Bound> {
        match value {
            Value::Number(n) => n.as_f64().map(Bound::Number),
            Value::String(s) => OffsetDateTime::parse(s, &Rfc3339).ok().map(Bound::Time),
            _ => None,
        }
    }
}

impl Op {
    fn holds(&self, found: &Value) -> bool {
        match self {
            Op::Eq(value) => found == value,
            Op::Ne(_) => unreachable!("ne is decided over all values at once"),
            Op::In(values) => values.contains(found),
            Op::Exists => !found.is_null(),
            Op::Contains(value) => match (found, value) {
                (Value::String(haystack), Value::String(needle)) => haystack.contains(needle.as_str()),
                (Value::Array(items), _) => items.contains(value),
                _ => false,
            },
            Op::Compare(comparison, bound) => {
                let ordering = match (bound, Bound::from_value(found)) {
                    (Bound::Number(b), Some(Bound::Number(f))) => f.partial_cmp(b),
                    (Bound::Time(b), Some(Bound::Time(f))) => Some(f.cmp(b)),
                    _ => None,
                };
                ordering.is_some_and(|o| match comparison {
                    Comparison::Gt => o.is_gt(),
                    Comparison::Gte => o.is_ge(),
                    Comparison::Lt => o.is_lt(),
                    Comparison::Lte => o.is_le(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn payload() -> Value {
        json!({
            "event": "TODO_CREATED",
            "currentValue": {
                "title": "Draft the launch announcement",
                "position": 3.5,
                "duedAt": "2026-11-30T17:00:00Z",
                "done": false,
                "note": null,
                "todoList": {"project": {"id": "p1"}},
                "tags": [{"title": "Launch"}, {"title": "Q4"}],
                "labels": ["a", "b"]
            }
        })
    }

    fn check(filter: Value) -> bool {
        Filter::parse(&filter).unwrap().matches(&payload())
    }

    #[test]
    fn every_op() {
        let cases = [
            (json!({"path": "currentValue.todoList.project.id", "op": "eq", "value": "p1"}), true),
            (json!({"path": "currentValue.todoList.project.id", "op": "eq", "value": "p2"}), false),
            (json!({"path": "currentValue.done", "op": "ne", "value": true}), true),
            (json!({"path": "currentValue.missing", "op": "ne", "value": 1}), true),
            (json!({"path": "event", "op": "in", "value": ["TODO_CREATED", "TODO_DELETED"]}), true),
            (json!({"path": "event", "op": "in", "value": ["TODO_DELETED"]}), false),
            (json!({"path": "currentValue.title", "op": "exists"}), true),
            (json!({"path": "currentValue.note", "op": "exists"}), false),
            (json!({"path": "currentValue.nothing", "op": "exists"}), false),
            (json!({"path": "currentValue.title", "op": "contains", "value": "launch ann"}), true),
            (json!({"path": "currentValue.title", "op": "contains", "value": "Launch"}), false),
            (json!({"path": "currentValue.labels", "op": "contains", "value": "b"}), true),
            (json!({"path": "currentValue.labels", "op": "contains", "value": "c"}), false),
            (json!({"path": "currentValue.position", "op": "gt", "value": 3}), true),
            (json!({"path": "currentValue.position", "op": "gte", "value": 3.5}), true),
            (json!({"path": "currentValue.position", "op": "lt", "value": 3.5}), false),
            (json!({"path": "currentValue.position", "op": "lte", "value": 3.5}), true),
            (json!({"path": "currentValue.duedAt", "op": "lt", "value": "2026-12-01T00:00:00Z"}), true),
            (json!({"path": "currentValue.duedAt", "op": "gt", "value": "2026-12-01T00:00:00+02:00"}), false),
            (json!({"path": "currentValue.title", "op": "gt", "value": 1}), false),
        ];
        for (filter, expected) in cases {
            assert_eq!(check(filter.clone()), expected, "{filter}");
        }
    }

    #[test]
    fn paths_index_and_wildcard_arrays() {
        assert!(check(json!({"path": "currentValue.tags[1].title", "op": "eq", "value": "Q4"})));
        assert!(!check(json!({"path": "currentValue.tags[0].title", "op": "eq", "value": "Q4"})));
        assert!(check(json!({"path": "currentValue.tags[*].title", "op": "eq", "value": "Q4"})));
        assert!(!check(json!({"path": "currentValue.tags[*].title", "op": "ne", "value": "Q4"})));
        assert!(check(json!({"path": "currentValue.labels[*]", "op": "in", "value": ["x", "a"]})));
    }

    #[test]
    fn webhook_members_can_be_given_apart() {
        let webhook = json!({"name": "CRM"});
        let filter = Filter::parse(&json!({"all": [
            {"path": "webhook.name", "op": "eq", "value": "CRM"},
            {"path": "currentValue.done", "op": "eq", "value": false}
        ]}))
        .unwrap();
        assert!(filter.matches_split(&payload(), Some(&webhook)));
        assert!(!filter.matches_split(&payload(), Some(&json!({"name": "Slack"}))));
    }

    #[test]
    fn combinators() {
        let p1 = json!({"path": "currentValue.todoList.project.id", "op": "eq", "value": "p1"});
        let no = json!({"path": "event", "op": "eq", "value": "COMMENT_CREATED"});
        assert!(check(json!({"all": [p1, {"not": no}]})));
        assert!(!check(json!({"all": [p1, no]})));
        assert!(check(json!({"any": [no, p1]})));
        assert!(!check(json!({"any": [no]})));
    }

    #[test]
    fn bad_filters_say_where_and_what() {
        let cases = [
            (json!("eq"), "filter: expected an object"),
            (json!({"all": []}), "filter.all: expected a non-empty array"),
            (
                json!({"all": [{"path": "a", "op": "equals", "value": 1}]}),
                "filter.all[0].op: unknown op \"equals\"",
            ),
            (
                json!({"any": [{"path": "a", "op": "eq", "value": 1}, {"op": "eq", "value": 1}]}),
                "filter.any[1]: missing \"path\"",
            ),
            (json!({"not": {"path": "a..b", "op": "exists"}}), "filter.not.path: \"a..b\" has an empty key"),
            (json!({"path": "a[x]", "op": "exists"}), "filter.path: \"a[x]\": [x] is not an index"),
            (json!({"path": "a", "op": "in", "value": "x"}), "filter.value: op \"in\" needs an array"),
            (json!({"path": "a", "op": "exists", "value": 1}), "filter.value: op \"exists\" takes no value"),
            (
                json!({"path": "a", "op": "gt", "value": "tomorrow"}),
                "filter.value: op \"gt\" needs a number or an ISO-8601",
            ),
            (json!({"path": "a", "op": "eq"}), "filter: op \"eq\" needs a \"value\""),
            (json!({"path": "a", "op": "eq", "value": 1, "extra": 2}), "filter: unknown key \"extra\""),
            (
                json!({"all": [{"path": "a", "op": "exists"}], "any": []}),
                "filter: \"all\" must be the object's only key",
            ),
        ];
        for (filter, expected) in cases {
            let error = Filter::parse(&filter).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{filter}: {error}");
        }
    }

    #[test]
    fn filters_are_bounded() {
        let mut deep = json!({"path": "a", "op": "exists"});
        for _ in 0..=MAX_DEPTH {
            deep = json!({"not": deep});
        }
        assert!(Filter::parse(&deep).unwrap_err().message.contains("nest at most"));
        let wide = json!({"any": vec![json!({"path": "a", "op": "exists"}); MAX_LEAVES + 1]});
        assert!(Filter::parse(&wide).unwrap_err().message.contains("at most 128 conditions"));
    }
}
