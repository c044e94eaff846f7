//! A webhook's connector config against its connector's JSON Schema (from `describe`).
//!
//! The schema is compiled once, when the plugin loads (a plugin whose schema does not compile
//! is refused). A config is validated when a webhook is saved, so a plugin never sees one its
//! schema rejects. Properties the schema marks `"writeOnly": true` (API keys, Slack URLs) are
//! secrets: views leave them out, an update that omits them keeps the stored ones, and their
//! values are scrubbed from everything the delivery log shows (requests, responses, errors,
//! plugin logs), in every form a plugin may have written them in there: as they are,
//! JSON-escaped, percent-encoded and in base64. Only top-level properties can be write-only.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};

/// A compiled config schema.
pub struct ConfigSchema {
    validator: jsonschema::Validator,
    write_only: Vec<String>,
}

impl std::fmt::Debug for ConfigSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSchema").field("write_only", &self.write_only).finish_non_exhaustive()
    }
}

/// What the delivery log shows in place of a write-only value.
pub const REDACTED: &str = "[redacted]";

impl ConfigSchema {
    pub fn compile(schema: &Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(schema).map_err(|e| e.to_string())?;
        let write_only = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| {
                properties
                    .iter()
                    .filter(|(_, p)| p.get("writeOnly").and_then(Value::as_bool) == Some(true))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default();
        Ok(ConfigSchema { validator, write_only })
    }

    /// The first problem with `config`, as `connector.config.<path>: <what is wrong>`; a
    /// write-only value is never quoted back.
    pub fn validate(&self, config: &Value) -> Result<(), String> {
        match self.problems(config).into_iter().next() {
            None => Ok(()),
            Some((field, message)) => Err(format!("{field}: {message}")),
        }
    }

    /// Everything wrong with `config`: each as the field's path (`connector.config.channel`)
    /// and what is wrong with it, never showing a write-only value.
    pub fn problems(&self, config: &Value) -> Vec<(String, String)> {
        self.validator
            .iter_errors(config)
            .map(|error| {
                let pointer = error.instance_path().as_str();
                let mut path: String = pointer.split('/').skip(1).map(|step| format!(".{step}")).collect();
                // A missing property is reported at its parent: name the property itself.
                if let jsonschema::error::ValidationErrorKind::Required { property } = error.kind()
                    && let Some(name) = property.as_str()
                {
                    path.push('.');
                    path.push_str(name);
                }
                let first = pointer.split('/').nth(1).unwrap_or_default();
                let message = if self.write_only.iter().any(|name| name == first) {
                    error.masked_with("the value").to_string()
                } else {
                    error.to_string()
                };
                (format!("connector.config{path}"), message)
            })
            .collect()
    }

    /// The names of the write-only (top-level) members.
    pub fn write_only(&self) -> &[String] {
        &self.write_only
    }

    /// `config` without its write-only members, for views.
    pub fn hide(&self, config: &Value) -> Value {
        match config {
            Value::Object(members) => Value::Object(
                members
                    .iter()
                    .filter(|(name, _)| !self.write_only.contains(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect::<Map<_, _>>(),
            ),
            other => other.clone(),
        }
    }

    /// Copies into `new` the write-only members of `old` that `new` leaves out: views never
    /// show them, so a client that edits what it was shown must not erase them.
    pub fn keep_write_only(&self, new: &mut Value, old: &Value) {
        let (Some(new), Some(old)) = (new.as_object_mut(), old.as_object()) else { return };
        for name in &self.write_only {
            if let (false, Some(value)) = (new.contains_key(name), old.get(name)) {
                new.insert(name.clone(), value.clone());
            }
        }
    }

    /// The secrets a delivery log for `config` must not show.
    pub fn scrubber(&self, config: &Value) -> Scrubber {
        let secrets = self
            .write_only
            .iter()
            .filter_map(|name| config.get(name))
            .filter_map(|value| match value {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect();
        Scrubber::new(secrets)
    }
}

/// Replaces a webhook's write-only config values in text shown to users.
#[derive(Debug, Default, Clone)]
pub struct Scrubber {
    /// Every secret in the forms of [`forms`], longest first.
    variants: Vec<String>,
}

impl Scrubber {
    /// Scrubs every string in `config`'s top level (when nobody can say which are secret).
    pub fn every_value(config: &Value) -> Self {
        let members = config.as_object().into_iter().flat_map(|members| members.values());
        Scrubber::new(members.filter_map(|v| v.as_str().map(str::to_owned)).collect())
    }

    fn new(secrets: Vec<String>) -> Self {
        let mut variants: Vec<String> =
            secrets.iter().filter(|s| !s.is_empty()).flat_map(|s| forms(s)).collect();
        // Longest first, so a secret that contains another is replaced whole.
        variants.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        variants.dedup();
        Scrubber { variants }
    }

    /// Whether there is nothing to scrub (the usual case: no write-only config).
    pub fn is_empty(&self) -> bool {
        self.variants.is_empty()
    }

    pub fn scrub(&self, text: &mut String) {
        let mut scrubbed = String::new();
        let (mut copied, mut at) = (0, 0);
        while let Some(c) = text[at..].chars().next() {
            match self.variants.iter().find_map(|variant| spelled_at(&text[at..], variant)) {
                Some(len) => {
                    scrubbed.push_str(&text[copied..at]);
                    scrubbed.push_str(REDACTED);
                    at += len;
                    copied = at;
                }
                None => at += c.len_utf8(),
            }
        }
        if copied > 0 {
            scrubbed.push_str(&text[copied..]);
            *text = scrubbed;
        }
    }

    pub fn scrub_option(&self, text: &mut Option<String>) {
        if let Some(text) = text {
            self.scrub(text);
        }
    }
}

/// `secret` as it is and in the forms a plugin writes it in a JSON string or a header;
/// percent-encoding, whose forms differ by encoder, is undone as text is read ([`spelled_at`]).
fn forms(secret: &str) -> Vec<String> {
    let quoted = Value::from(secret).to_string();
    let json = &quoted[1..quoted.len() - 1];
    // Python's `json.dumps` also escapes non-ASCII, as `\u00e9` (a surrogate pair past U+FFFF).
    let mut ascii_json = String::new();
    for c in json.chars() {
        if c.is_ascii() {
            ascii_json.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                ascii_json += &format!("\\u{unit:04x}");
            }
        }
    }
    let mut forms = vec![secret.to_owned(), json.to_owned(), ascii_json];
    // Base64 of a secret under 4 bytes is 2 to 4 characters, which other text holds by chance.
    if secret.len() >= 4 {
        forms.extend([STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].map(|b64| b64.encode(secret)));
    }
    forms
}

/// The length of `variant` at the start of `text`, where any of its characters may be
/// percent-encoded (hex in either case, `+` for a space): query strings, forms and paths each
/// encode a different set of characters.
fn spelled_at(text: &str, variant: &str) -> Option<usize> {
    // As it is first: a variant holding "%25" is itself, not an encoded "%".
    if text.starts_with(variant) {
        return Some(variant.len());
    }
    let mut rest = text;
    for c in variant.chars() {
        rest = strip_percent_encoded(rest, c)
            .or_else(|| rest.strip_prefix(c))
            .or_else(|| rest.strip_prefix('+').filter(|_| c == ' '))?;
    }
    Some(text.len() - rest.len())
}

/// `text` after `c`'s UTF-8 bytes percent-encoded at its start.
fn strip_percent_encoded(mut text: &str, c: char) -> Option<&str> {
    for &byte in c.encode_utf8(&mut [0; 4]).as_bytes() {
        let hex = text.strip_prefix('%')?.get(..2)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) || u8::from_str_radix(hex, 16) != Ok(byte) {
            return None;
        }
        text = &text[3..];
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> ConfigSchema {
        ConfigSchema::compile(&json!({
            "type": "object", "additionalProperties": false, "required": ["apiKey"],
            "properties": {
                "apiKey": {"type": "string", "minLength": 8, "writeOnly": true},
                "fields": {"type": "array", "items": {"type": "object", "required": ["label"]}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn errors_name_the_field_and_never_quote_a_secret() {
        let s = schema();
        assert!(s.validate(&json!({"apiKey": "long enough"})).is_ok());
        let error = s.validate(&json!({"apiKey": "short"})).unwrap_err();
        assert!(error.starts_with("connector.config.apiKey: "), "{error}");
        assert!(!error.contains("short\""), "{error}");
        let error = s.validate(&json!({"apiKey": "long enough", "fields": [{}, {"x": 1}]})).unwrap_err();
        assert!(
            error.starts_with("connector.config.fields.0.label: "),
            "a missing property is named: {error}"
        );
        let error = s.validate(&json!({})).unwrap_err();
        assert!(error.starts_with("connector.config.apiKey: "), "{error}");
        let error = s.validate(&json!({"apiKey": "long enough", "colour": 1})).unwrap_err();
        assert!(error.contains("colour"), "{error}");
    }

    #[test]
    fn write_only_members_are_hidden_kept_and_scrubbed() {
        let s = schema();
        let stored = json!({"apiKey": "sk-12345678", "fields": []});
        assert_eq!(s.hide(&stored), json!({"fields": []}));
        let mut edited = json!({"fields": [{"label": "x"}]});
        s.keep_write_only(&mut edited, &stored);
        assert_eq!(edited["apiKey"], "sk-12345678");
        let mut text = "Bearer sk-12345678 refused".to_owned();
        s.scrubber(&stored).scrub(&mut text);
        assert_eq!(text, "Bearer [redacted] refused");
    }

    /// Every character a plugin's encoders treat specially; letters lowercase, so that
    /// lowercasing an encoding lowercases only its hex.
    const SECRET: &str = r#"k"ey\/ a&b=c+d é"#;

    fn scrubbed(secrets: &[&str], text: &str) -> String {
        let mut text = text.to_owned();
        Scrubber::new(secrets.iter().map(|s| s.to_string()).collect()).scrub(&mut text);
        text
    }

    #[test]
    fn a_secret_is_scrubbed_json_escaped() {
        let body = json!({"k": SECRET, "n": 1}).to_string();
        assert_eq!(scrubbed(&[SECRET], &body), r#"{"k":"[redacted]","n":1}"#);
        let ascii_only = body.replace('é', "\\u00e9");
        assert_eq!(scrubbed(&[SECRET], &ascii_only), r#"{"k":"[redacted]","n":1}"#);
    }

    #[test]
    fn a_secret_is_scrubbed_percent_encoded() {
        let mut url = url::Url::parse("https://example.com/hook").unwrap();
        url.query_pairs_mut().append_pair("key", SECRET).append_pair("n", "1");
        let query = url.to_string();
        assert_eq!(scrubbed(&[SECRET], &query), "https://example.com/hook?key=[redacted]&n=1");
        for variant in [query.to_lowercase(), query.replace('+', "%20")] {
            assert_eq!(scrubbed(&[SECRET], &variant), "https://example.com/hook?key=[redacted]&n=1");
        }
        let mut url = url::Url::parse("https://example.com/hook").unwrap();
        url.path_segments_mut().unwrap().push(SECRET).push("x");
        assert_eq!(scrubbed(&[SECRET], url.as_str()), "https://example.com/hook/[redacted]/x");
        let every_byte: String = SECRET.bytes().map(|b| format!("%{b:02X}")).collect();
        assert_eq!(scrubbed(&[SECRET], &format!("/{every_byte}/")), "/[redacted]/");
    }

    #[test]
    fn a_secret_is_scrubbed_in_base64() {
        for b64 in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            let header = format!("Bearer {}", b64.encode(SECRET));
            assert_eq!(scrubbed(&[SECRET], &header), "Bearer [redacted]");
        }
    }

    #[test]
    fn text_without_a_secret_is_left_alone() {
        let text = r#"{"k":"k\"ey\\/ a&b=c+d e"} k%22ey %41 a+b YWI "#;
        assert_eq!(scrubbed(&[SECRET, "ab"], text), text);
    }

    #[test]
    fn short_nested_and_percent_holding_secrets() {
        assert_eq!(
            scrubbed(&["ab"], "ab %61%62 YWI"),
            "[redacted] [redacted] YWI",
            "no base64 under 4 bytes"
        );
        assert_eq!(scrubbed(&["%25x", "%"], "%25x %2525x %"), "[redacted] [redacted] [redacted]");
        assert_eq!(scrubbed(&["1234", "x1234x"], "x1234x 1234"), "[redacted] [redacted]");
    }

    #[test]
    fn a_schema_that_does_not_compile_is_an_error() {
        assert!(ConfigSchema::compile(&json!({"type": "no such type"})).is_err());
    }
}
