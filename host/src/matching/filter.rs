//! Payload filters: the optional per-webhook condition over the standard payload.
//!
//! A filter is JSON: leaves `{"path": "currentValue.todoList.project.id", "op": "eq", "value":
//! "p1"}` and combinators `{"all": [...]}`, `{"any": [...]}`, `{"not": {...}}`. Paths are
//! dot-separated keys; `[n]` indexes an array and `[*]` means any element. A leaf holds when
//! any value its path reaches satisfies the op — except `ne`, which holds when none equals.
//! Filters are parsed once, when the webhook is saved; a bad one is refused with the place
//! it went wrong (`filter.all[1].op: …`).
//!
//! Filters run inside the ingest request, so their work is bounded twice over: at parse time
//! (depth, leaves, values of an `in`, which is compiled into a hash set) and at evaluation,
//! which draws on a [`Budget`] of work units shared by all the filters of one event. A
//! filter that runs out does not match (fail closed), and the budget says it ran out.

use std::collections::HashSet;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Filters nest at most this deep…
const MAX_DEPTH: usize = 16;
/// …have at most this many leaves…
const MAX_LEAVES: usize = 128;
/// …and an `in` at most this many values.
const MAX_IN_VALUES: usize = 1_000;

/// Work units the filters of one event may spend together: a unit per value a path visits
/// and per comparison. Typical filters spend tens; this keeps a crafted filter or payload
/// from stalling ingest (an audit saw 2.2 s for one event before `in` was a set).
pub const EVENT_BUDGET: u64 = 100_000;

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
    In(ValueSet),
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

/// The values of an `in`, compiled so that a lookup costs the same for 1 value as for 1,000.
/// It answers exactly as `==` over the list did (and as `eq` does).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueSet {
    strings: HashSet<String>,
    scalars: HashSet<Scalar>,
    /// Arrays and objects, rare in an `in`: compared one by one…
    composites: Vec<Value>,
    /// …which costs, in work units, their size in values.
    composite_units: u64,
}

/// Null, a boolean or a number, keyed so that two keys are equal exactly when the values are
/// `==`: serde_json keeps integers and floats apart (`1` ≠ `1.0`), and `0.0` = `-0.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scalar {
    Null,
    Bool(bool),
    Unsigned(u64),
    Negative(i64),
    /// The bits of a float; JSON has no NaN, so equal bits mean equal floats once `-0.0` is
    /// written as `0.0`.
    Float(u64),
}

/// Work left for the filters of one event. Once spent, filters do not match.
#[derive(Debug, Clone)]
pub struct Budget {
    left: u64,
    exhausted: bool,
}

/// Evaluation stopped because the budget ran out.
#[derive(Debug)]
struct Exhausted;

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

    /// Whether the standard payload satisfies the filter, spending from `budget`; when that
    /// runs out the answer is `false` and `budget.exhausted()` is set. The payload's `webhook`
    /// member may be given apart: the rest of the payload is built once per event and shared
    /// by every webhook it reaches.
    pub fn matches(&self, payload: &Value, webhook: Option<&Value>, budget: &mut Budget) -> bool {
        self.eval(payload, webhook, budget).unwrap_or(false)
    }

    fn eval(&self, payload: &Value, webhook: Option<&Value>, budget: &mut Budget) -> Result<bool, Exhausted> {
        match self {
            Filter::All(parts) => {
                for part in parts {
                    if !part.eval(payload, webhook, budget)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Filter::Any(parts) => {
                for part in parts {
                    if part.eval(payload, webhook, budget)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            // Running out propagates as an error, so `not` cannot turn it into a match.
            Filter::Not(inner) => Ok(!inner.eval(payload, webhook, budget)?),
            Filter::Leaf { path, op } => {
                let (root, from) = match (&path.0[..], webhook) {
                    ([Step::Key(first), ..], Some(webhook)) if first == "webhook" => (webhook, 1),
                    _ => (payload, 0),
                };
                match op {
                    Op::Ne(value) => Ok(!path.any(root, from, budget, &mut |found, budget| {
                        budget.spend(1)?;
                        Ok(found == value)
                    })?),
                    _ => path.any(root, from, budget, &mut |found, budget| op.holds(found, budget)),
                }
            }
        }
    }
}

impl Budget {
    pub fn new(units: u64) -> Budget {
        Budget { left: units, exhausted: false }
    }

    /// Whether an evaluation ran out, and so did not match.
    pub fn exhausted(&self) -> bool {
        self.exhausted
    }

    fn spend(&mut self, units: u64) -> Result<(), Exhausted> {
        if units > self.left {
            self.left = 0;
            self.exhausted = true;
            return Err(Exhausted);
        }
        self.left -= units;
        Ok(())
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(EVENT_BUDGET)
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
            Value::Array(values) if values.len() > MAX_IN_VALUES => {
                return Err(error(&value_at, format!("op \"in\" takes at most {MAX_IN_VALUES} values")));
            }
            Value::Array(values) => Op::In(ValueSet::new(values)),
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

    /// Whether any value the path reaches from `value` (at step `from`) passes `test`; stops
    /// at the first that does. Each value visited costs a unit.
    fn any<'v>(
        &self,
        value: &'v Value,
        from: usize,
        budget: &mut Budget,
        test: &mut impl FnMut(&'v Value, &mut Budget) -> Result<bool, Exhausted>,
    ) -> Result<bool, Exhausted> {
        budget.spend(1)?;
        let next = match self.0.get(from) {
            None => return test(value, budget),
            Some(Step::Key(key)) => value.get(key),
            Some(Step::Index(i)) => value.get(*i),
            Some(Step::AnyElement) => {
                for element in value.as_array().into_iter().flatten() {
                    if self.any(element, from + 1, budget, test)? {
                        return Ok(true);
                    }
                }
                return Ok(false);
            }
        };
        match next {
            Some(next) => self.any(next, from + 1, budget, test),
            None => Ok(false),
        }
    }
}

impl ValueSet {
    fn new(values: Vec<Value>) -> ValueSet {
        let mut set = ValueSet {
            strings: HashSet::new(),
            scalars: HashSet::new(),
            composites: Vec::new(),
            composite_units: 0,
        };
        for value in values {
            if let Value::String(s) = value {
                set.strings.insert(s);
            } else if let Some(key) = Scalar::of(&value) {
                set.scalars.insert(key);
            } else {
                set.composite_units += size(&value);
                set.composites.push(value);
            }
        }
        set
    }

    /// Whether `found` is one of the values. Hashing costs no more than the unit of the
    /// comparison it replaces; arrays and objects cost the size of those in the set, the most
    /// comparing with all of them can take.
    fn contains(&self, found: &Value, budget: &mut Budget) -> Result<bool, Exhausted> {
        if let Value::String(s) = found {
            return Ok(self.strings.contains(s.as_str()));
        }
        if let Some(key) = Scalar::of(found) {
            return Ok(self.scalars.contains(&key));
        }
        budget.spend(self.composite_units)?;
        Ok(self.composites.contains(found))
    }
}

impl Scalar {
    /// The key of null, a boolean or a number; `None` for anything else.
    fn of(value: &Value) -> Option<Scalar> {
        match value {
            Value::Null => Some(Scalar::Null),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            // serde_json holds a number as a u64 when it can, else as an i64 (so a negative),
            // else as a float, and `==` holds only between numbers held alike.
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Some(Scalar::Unsigned(u))
                } else if let Some(i) = n.as_i64() {
                    Some(Scalar::Negative(i))
                } else {
                    let f = n.as_f64()?;
                    Some(Scalar::Float(if f == 0.0 { 0.0f64.to_bits() } else { f.to_bits() }))
                }
            }
            _ => None,
        }
    }
}

/// How many values `value` holds, itself included.
fn size(value: &Value) -> u64 {
    1 + match value {
        Value::Array(items) => items.iter().map(size).sum(),
        Value::Object(members) => members.values().map(size).sum(),
        _ => 0,
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
    /// Whether `found` satisfies the op; a comparison costs a unit, a scan a unit per item.
    fn holds(&self, found: &Value, budget: &mut Budget) -> Result<bool, Exhausted> {
        budget.spend(1)?;
        Ok(match self {
            Op::Eq(value) => found == value,
            Op::Ne(_) => unreachable!("ne is decided over all values at once"),
            Op::In(values) => values.contains(found, budget)?,
            Op::Exists => !found.is_null(),
            Op::Contains(value) => match (found, value) {
                (Value::String(haystack), Value::String(needle)) => {
                    // A substring search reads the haystack: a further unit per 64 bytes.
                    budget.spend(haystack.len() as u64 / 64)?;
                    haystack.contains(needle.as_str())
                }
                (Value::Array(items), _) => {
                    budget.spend(items.len() as u64)?;
                    items.contains(value)
                }
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
        })
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
        Filter::parse(&filter).unwrap().matches(&payload(), None, &mut Budget::default())
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
        assert!(filter.matches(&payload(), Some(&webhook), &mut Budget::default()));
        assert!(!filter.matches(&payload(), Some(&json!({"name": "Slack"})), &mut Budget::default()));
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
            (
                json!({"all": [{"path": "a", "op": "exists"}, {"path": "a", "op": "in", "value": (0..=1_000).collect::<Vec<_>>()}]}),
                "filter.all[1].value: op \"in\" takes at most 1000 values",
            ),
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
        let values: Vec<usize> = (0..MAX_IN_VALUES).collect();
        assert!(Filter::parse(&json!({"path": "a", "op": "in", "value": values})).is_ok());
    }

    #[test]
    fn in_answers_as_eq_and_the_list_did() {
        let mut values = vec![
            json!("a"),
            json!(""),
            json!("1"),
            json!(1),
            json!(1.0),
            json!(-1),
            json!(-1.0),
            json!(0),
            json!(0.0),
            json!(-0.0),
            json!(0.5),
            json!(1e300),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(true),
            json!(false),
            json!(null),
            json!([]),
            json!([1, "a"]),
            json!([1.0, "a"]),
            json!({}),
            json!({"a": 1, "b": [null]}),
            json!({"b": [null], "a": 1}),
            json!({"a": 1.0, "b": [null]}),
        ];
        // As the parser makes them: "-0" is a float, "1e0" too.
        values.extend(
            ["-0", "1e0", "18446744073709551615", "-9223372036854775808"]
                .map(|t| serde_json::from_str::<Value>(t).unwrap()),
        );
        let verdict = |op: &str, value: Value, found: &Value| {
            let filter = Filter::parse(&json!({"path": "x", "op": op, "value": value})).unwrap();
            filter.matches(&json!({"x": found}), None, &mut Budget::default())
        };
        for found in &values {
            for value in &values {
                let eq = verdict("eq", value.clone(), found);
                assert_eq!(eq, found == value, "{found} eq {value}");
                assert_eq!(verdict("in", json!([value]), found), eq, "{found} in [{value}]");
            }
            assert_eq!(verdict("in", json!(values), found), values.contains(found), "{found} in all");
        }
        // What that means for numbers: integers and floats differ, zeros do not.
        assert!(!verdict("in", json!([1.0]), &json!(1)) && !verdict("eq", json!(1.0), &json!(1)));
        assert!(verdict("in", json!([0.0]), &json!(-0.0)) && verdict("eq", json!(0.0), &json!(-0.0)));
    }

    /// The audit's case: a large `in` over every element of a large array.
    #[test]
    fn work_is_bounded_by_the_budget() {
        let items: Vec<String> = (0..60_000).map(|i| format!("item{i}")).collect();
        let payload = json!({"currentValue": {"items": items}});
        let filter = |present: &str, op: &str| {
            let mut values: Vec<String> = (0..999).map(|i| format!("absent{i}")).collect();
            values.push(present.to_owned());
            Filter::parse(&json!({"path": "currentValue.items[*]", "op": op, "value": values})).unwrap()
        };
        // Payload, currentValue, items, then a visit and a lookup per element up to the match.
        let mut budget = Budget::default();
        assert!(filter("item500", "in").matches(&payload, None, &mut budget));
        assert_eq!(EVENT_BUDGET - budget.left, 3 + 2 * 501);
        assert!(!budget.exhausted());

        // Absent, every element is looked up: 120,003 units, more than an event has.
        let mut budget = Budget::default();
        assert!(!filter("absent", "in").matches(&payload, None, &mut budget));
        assert!(budget.exhausted());
        let mut budget = Budget::new(1_000_000);
        assert!(!filter("absent", "in").matches(&payload, None, &mut budget));
        assert_eq!(1_000_000 - budget.left, 3 + 2 * 60_000);
        assert!(!budget.exhausted());

        // Running out fails closed, under `not` too, and the budget stays spent for the
        // event's other filters.
        let not_in = Filter::Not(Box::new(filter("absent", "in")));
        let mut budget = Budget::default();
        assert!(!not_in.matches(&payload, None, &mut budget));
        assert!(budget.exhausted());
        let cheap = Filter::parse(&json!({"path": "currentValue", "op": "exists"})).unwrap();
        assert!(!cheap.matches(&payload, None, &mut budget));
        assert!(cheap.matches(&payload, None, &mut Budget::default()));
    }

    #[test]
    fn scans_cost_a_unit_per_item() {
        let payload = json!({"labels": vec!["x"; 500], "text": "y".repeat(6_400)});
        let spent = |filter: Value| {
            let mut budget = Budget::default();
            Filter::parse(&filter).unwrap().matches(&payload, None, &mut budget);
            EVENT_BUDGET - budget.left
        };
        // A visit per step, a unit for the comparison, then the scan.
        assert_eq!(spent(json!({"path": "labels", "op": "contains", "value": "z"})), 3 + 500);
        assert_eq!(spent(json!({"path": "text", "op": "contains", "value": "z"})), 3 + 100);
        let composites: Vec<Value> = (0..10).map(|i| json!({"i": [i, i]})).collect();
        assert_eq!(spent(json!({"path": "labels", "op": "in", "value": composites})), 3 + 10 * 4);
    }
}
