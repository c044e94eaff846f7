//! The OpenAPI document at `/openapi.json`: it says exactly what the handlers accept.
//!
//! Most of it is derived: each resource module's `#[utoipa::path]`s and `ToSchema`s. What a
//! derive cannot say is written here as JSON Schema, under a name the derived schemas refer
//! to (`#[schema(value_type = Id)]` and the like): the text rules of ids, names and secrets,
//! the filter grammar, and what only the running server knows — its event catalog (which
//! operators extend in configuration), its installed connectors with their config schemas,
//! its batch bound. So the document is completed for each request from the server's state.
//!
//! Every operation documents its 401 and every error its `{"error": {"code", "message"}}`
//! body ([`complete_responses`]). What no schema can say is in the descriptions: destination
//! URLs whose host is a non-public address (refused unless the server allows private
//! destinations), filter depth and size, a connector upload that is not a valid component.
//! `tests/e2e/openapi.rs` runs schemathesis over the document against the real server.

use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema};

use super::{connector_versions, connectors, deliveries, events, sources, stats, tokens, webhooks, zapier};
use crate::server::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "wasmhook", description = "Webhook host with WebAssembly plugins"),
    paths(
        events::event_types, events::ingest, events::ingest_batch,
        webhooks::create, webhooks::list, webhooks::read, webhooks::update, webhooks::delete,
        webhooks::rotate_secret,
        deliveries::log, deliveries::message, deliveries::retry, deliveries::recover, deliveries::test, stats::stats,
        tokens::create, tokens::list, tokens::revoke, tokens::me,
        connectors::list, connectors::upload, connectors::remove, connectors::preview,
        connector_versions::list, connector_versions::promote, connector_versions::roll_back,
        connector_versions::start_shadow, connector_versions::stop_shadow, connector_versions::shadow_report,
        zapier::subscribe, zapier::unsubscribe,
        sources::list, sources::dead_letters,
    ),
    components(schemas(super::error::ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Declares schemas that [`document`] writes: the derives only refer to them by name.
macro_rules! written_here {
    ($($(#[$doc:meta])* $ty:ident => $name:literal;)*) => {$(
        $(#[$doc])*
        pub struct $ty;

        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new().build().into()
            }
        }

        impl utoipa::ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
        }
    )*};
}

written_here! {
    /// An event type of the server's catalog.
    EventName => "EventName";
    /// An id the sender chose: event, company, project.
    Id => "Id";
    /// A webhook's name.
    WebhookName => "WebhookName";
    /// A webhook's signing secret.
    SecretText => "Secret";
    /// Where a webhook delivers.
    DestinationUrl => "DestinationUrl";
    /// A connector's name.
    ConnectorName => "ConnectorName";
    /// An installed connector and a config its schema accepts.
    ConnectorChoice => "ConnectorChoice";
    /// A payload filter.
    FilterSchema => "Filter";
    /// `POST /v1/tokens`: who the token is for.
    CreateTokenSchema => "CreateToken";
    /// An `Idempotency-Key` header.
    IdempotencyKey => "IdempotencyKey";
    /// A connector's component, uploaded as is.
    WasmComponent => "WasmComponent";
}

/// Control characters (Unicode `Cc`, what Rust's `char::is_control` means).
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
/// Whitespace as Rust's `str::trim` means it (Unicode `White_Space`), spelled out: regex
/// engines disagree on `\s`.
const SPACE: &str = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Bidirectional overrides and isolates, refused in names.
const BIDI: &str = r"\u202a-\u202e\u2066-\u2069";

/// The document for this server: the derived part, completed from its state.
pub fn document(state: &AppState) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    let schemas = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
        .expect("the derived document has schemas");
    for (name, schema) in written_schemas(state) {
        schemas.insert(name.to_owned(), schema);
    }
    if let Some(batch) = schemas.get_mut("Batch") {
        batch["properties"]["events"]["maxItems"] = json!(state.config.limits.batch_events);
    }
    complete_responses(&mut doc);
    doc
}

/// The schemas declared by [`written_here!`] (and those they refer to), as this server
/// accepts them.
fn written_schemas(state: &AppState) -> Vec<(&'static str, Value)> {
    let catalog: Vec<String> =
        state.catalog.list().into_iter().filter(|t| !t.operator_only).map(|t| t.name).collect();
    let mut schemas = vec![
        (
            "EventName",
            json!({"type": "string", "enum": catalog,
                "description": "An event type of this server's catalog (`GET /v1/event-types`). Operators' \
                    webhooks may also name the host's own reports (`operatorOnly` there), which no \
                    application sends."}),
        ),
        ("ConnectorChoice", connector_choice(state)),
    ];
    schemas.extend(fixed_schemas());
    schemas
}

/// The written schemas that are the same on every server.
fn fixed_schemas() -> Vec<(&'static str, Value)> {
    // Not all whitespace, no control characters.
    let id = format!("^[^{CONTROL}]*[^{SPACE}{CONTROL}][^{CONTROL}]*$");
    vec![
        (
            "Id",
            json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": id,
                "description": "1 to 255 characters, not all whitespace, no control characters."}),
        ),
        (
            "CompanyId",
            json!({"type": "string", "pattern": trimmed(255, CONTROL),
                "description": "1 to 255 characters once leading and trailing whitespace is trimmed \
                    (it is), no control characters."}),
        ),
        (
            "UserId",
            json!({"type": "string",
                "allOf": [
                    {"pattern": format!("^{}$", core(200, CONTROL))},
                    {"not": {"pattern": format!("^(?:{})$", reserved_user_ids())}},
                ],
                "description": "1 to 200 characters, no control characters, no leading or trailing \
                    whitespace; `operator`, `wasmhook`, `system`, `admin` and `root` (in any case) \
                    are reserved for the host itself."}),
        ),
        (
            "WebhookName",
            json!({"type": "string", "pattern": trimmed(200, &format!("{CONTROL}{BIDI}")),
                "description": "1 to 200 characters once leading and trailing whitespace is trimmed \
                    (it is); no control characters or bidirectional overrides."}),
        ),
        (
            "Secret",
            json!({"type": "string", "pattern": SECRET_PATTERN, "example": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "description": "`whsec_` + standard base64 (padded) of 24 to 64 random bytes, e.g. \
                    `echo whsec_$(openssl rand -base64 32)`."}),
        ),
        (
            "DestinationUrl",
            json!({"type": "string", "format": "uri", "pattern": URL_PATTERN,
                "example": "https://example.com/hooks/wasmhook",
                "description": "Where deliveries go, as RFC 3986 writes it (other characters percent-encoded, \
                    an international host in punycode); its scheme picks the transport. `http(s)://host/path` \
                    (no credentials); `amqp(s)://[user:password@]host[:port][/vhost]?exchange=X&routingKey=K` \
                    (RabbitMQ); `nats://[user:password@ | token@]host[:port]/subject` (NATS JetStream); \
                    `redis(s)://[user:password@]host[:port][/db]?stream=S[&maxlen=N]` (Redis Streams); \
                    `mqtt(s)://[user:password@]host[:port]/topic[?qos=0|1|2][&version=5|3.1.1]` (MQTT). A broker's \
                    credentials are sealed at rest and shown back as `***`; its parameters are checked when \
                    saved. A host that is a loopback, private, link-local or otherwise non-public IP address \
                    (or `localhost`) is refused unless the server allows private destinations or that host; \
                    delivery checks the resolved addresses again."}),
        ),
        (
            "ConnectorName",
            json!({"type": "string", "pattern": "^[a-z0-9_-]{1,64}$",
                "description": "1 to 64 characters: a-z, 0-9, - and _."}),
        ),
        ("Filter", filter()),
        ("FilterLeaf", filter_leaf()),
        ("CreateToken", create_token()),
        (
            "WasmComponent",
            json!({"type": "string", "format": "binary", "contentMediaType": "application/wasm"}),
        ),
        (
            "IdempotencyKey",
            // HTTP drops the spaces and tabs around a header value before the server sees it.
            json!({"type": "string",
                "pattern": r"^[ \t]*[\x21-\x7e](?:[\t\x20-\x7e]{0,253}[\x21-\x7e])?[ \t]*$",
                "description": "1 to 255 visible ASCII characters (spaces and tabs inside)."}),
        ),
    ]
}

/// 1 to `max` characters none of which is in `refused`, starting and ending with
/// non-whitespace.
fn core(max: usize, refused: &str) -> String {
    format!("[^{SPACE}{refused}](?:[^{refused}]{{0,{}}}[^{SPACE}{refused}])?", max - 2)
}

/// Text that is [`core`] once trimmed.
fn trimmed(max: usize, refused: &str) -> String {
    format!("^[{SPACE}]*{}[{SPACE}]*$", core(max, refused))
}

/// The user ids `crate::access::check_user_id` keeps for the host itself (a test checks it
/// refuses each).
const RESERVED_USER_IDS: &[&str] = &["operator", "wasmhook", "system", "admin", "root"];

/// The reserved user ids, case-insensitive without an inline flag (not every regex engine
/// that reads JSON Schema has one).
fn reserved_user_ids() -> String {
    let any_case = |word: &str| -> String {
        word.chars().map(|c| format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())).collect()
    };
    RESERVED_USER_IDS.iter().map(|id| any_case(id)).collect::<Vec<_>>().join("|")
}

/// `whsec_` + canonical padded base64 of 24 to 64 bytes: groups of four, then a tail that
/// encodes one byte (`xx==`) or two (`xxx=`) with its unused bits zero.
const SECRET_PATTERN: &str = concat!(
    "^whsec_(?:",
    "(?:[A-Za-z0-9+/]{4}){8,21}(?:[A-Za-z0-9+/][AQgw]==)?",
    "|(?:[A-Za-z0-9+/]{4}){8,20}[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=",
    ")$"
);

/// http(s), a host (a name or a bracketed IPv6 address), a port up to 65535, no
/// `user:password@`.
const URL_PATTERN: &str = concat!(
    r"^(?:[hH][tT][tT][pP][sS]?://",
    // A broker's URL may carry a login.
    r"|(?:[aA][mM][qQ][pP][sS]?|[nN][aA][tT][sS]|[rR][eE][dD][iI][sS][sS]?|[mM][qQ][tT][tT][sS]?)://(?:[^/?#@\s]*@)?)",
    r"(?:\[[^\]/?#@]*\]|[^/?#@\s:\[\]]+)",
    r"(?::0*(?:[0-9]{0,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    r"(?:[/?#].*)?$"
);

/// One branch per installed connector: its name and a config its schema accepts.
fn connector_choice(state: &AppState) -> Value {
    let branches: Vec<Value> = state
        .connectors
        .list()
        .into_iter()
        .map(|(name, plugin)| {
            let schema = &plugin.info().config_schema;
            // A schema with references of its own cannot be embedded: they would resolve
            // against this document. Such a connector's config is described by reference.
            let config = if mentions_ref(schema) {
                json!({"type": "object",
                    "description": "A config that the connector's `configSchema` (`GET /v1/connectors`) accepts."})
            } else {
                json!({"allOf": [{"type": "object"}, schema]})
            };
            let mut versions: Vec<Value> = state.connectors.versions(&name).into_iter().map(Value::from).collect();
            versions.push(Value::Null);
            let version = json!({"enum": versions,
                "description": "A version to keep using (`GET /v1/connectors/{name}/versions`; 0: the built-in); \
                    absent or null, the live one."});
            let mut branch = json!({
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"const": name}, "config": config, "version": version},
            });
            // An absent config is `{}`: required when the schema refuses that.
            if plugin.schema().validate(&json!({})).is_err() {
                branch["required"] = json!(["name", "config"]);
            }
            branch
        })
        .collect();
    json!({"oneOf": branches,
        "description": "An installed connector (`GET /v1/connectors`) and its config (default `{}`), \
            which must satisfy the connector's config schema."})
}

fn mentions_ref(schema: &Value) -> bool {
    match schema {
        Value::Object(members) => {
            members.keys().any(|k| k == "$ref" || k == "$dynamicRef") || members.values().any(mentions_ref)
        }
        Value::Array(items) => items.iter().any(mentions_ref),
        _ => false,
    }
}

/// The filter grammar of [`crate::filter`].
fn filter() -> Value {
    let list = |key: &str| {
        json!({"type": "object", "required": [key], "additionalProperties": false,
            "properties": {key: {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Filter"}}}})
    };
    json!({
        "oneOf": [
            {"$ref": "#/components/schemas/FilterLeaf"},
            list("all"),
            list("any"),
            {"type": "object", "required": ["not"], "additionalProperties": false,
                "properties": {"not": {"$ref": "#/components/schemas/Filter"}}},
        ],
        "description": "A condition over the standard payload: a leaf, or `all`/`any` of a non-empty list, \
            or `not`. At most 16 levels deep and 128 leaves.",
        "example": {"all": [{"path": "currentValue.todoList.project.id", "op": "eq", "value": "p1"},
            {"not": {"path": "currentValue.done", "op": "eq", "value": true}}]},
    })
}

fn filter_leaf() -> Value {
    let index = r"\[(?:\*|\+?[0-9]{1,19})\]";
    let path = format!(r"^[^.\[]+(?:{index})*(?:\.(?:[^.\[]+(?:{index})*|(?:{index})+))*$");
    let leaf = |ops: &[&str], value: Option<Value>| {
        let mut leaf = json!({
            "type": "object",
            "required": ["path", "op"],
            "additionalProperties": false,
            "properties": {
                "path": {"type": "string", "pattern": path,
                    "description": "Dot-separated keys; `[n]` indexes an array, `[*]` is any element."},
                "op": {"enum": ops},
            },
        });
        match value {
            Some(value) => {
                leaf["required"] = json!(["path", "op", "value"]);
                leaf["properties"]["value"] = value;
            }
            None => leaf["properties"]["value"] = json!(false),
        }
        leaf
    };
    json!({"oneOf": [
        leaf(&["eq", "ne", "contains"], Some(json!({}))),
        leaf(&["in"], Some(json!({"type": "array", "maxItems": 1000}))),
        leaf(&["exists"], None),
        leaf(&["gt", "gte", "lt", "lte"],
            Some(json!({"oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}))),
    ]})
}

/// `POST /v1/tokens`: companies, or all of them said explicitly — one or the other.
fn create_token() -> Value {
    let company = json!({"$ref": "#/components/schemas/CompanyId"});
    json!({
        "type": "object",
        "required": ["userId"],
        "additionalProperties": false,
        "properties": {
            "userId": {"$ref": "#/components/schemas/UserId"},
            "companies": {"type": "array", "items": company,
                "description": "The companies the user may see from now on (for all their tokens and webhooks)."},
            "allCompanies": {"type": "boolean", "description": "Every company, said explicitly."},
            "scope": {"oneOf": [{"type": "null"}, {"enum": ["user", "ingest"]}],
                "description": "`user` (default) or `ingest`; operator tokens come from configuration."},
            "description": {"type": ["string", "null"]},
        },
        "oneOf": [
            {"required": ["companies"], "properties": {"companies": {"minItems": 1}, "allCompanies": {"const": false}}},
            {"required": ["allCompanies"], "properties": {"companies": {"maxItems": 0}, "allCompanies": {"const": true}}},
        ],
        "description": "A token for one user (or sending application) and the companies that user may see: \
            name them, or set `allCompanies: true`.",
    })
}

/// Every operation needs a bearer token (401 without one), and every error answers
/// `{"error": {"code", "message"}}`.
fn complete_responses(doc: &mut Value) {
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for operation in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|item| item.values_mut()) {
        let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
        responses
            .entry("401")
            .or_insert_with(|| json!({"description": "missing, unknown or revoked bearer token"}));
        for (status, response) in responses.iter_mut() {
            if status.starts_with(['4', '5']) && response.get("content").is_none() {
                response["content"] = error.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the written schema `name` accepts `value`.
    fn accepts(name: &str, value: &Value) -> bool {
        let mut defs: serde_json::Map<String, Value> =
            fixed_schemas().into_iter().map(|(n, s)| (n.into(), s)).collect();
        defs.insert("EventName".into(), json!({"type": "string"}));
        let root = json!({"$ref": format!("#/components/schemas/{name}"), "components": {"schemas": defs}});
        jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .expect("schema compiles")
            .is_valid(value)
    }

    /// The schema of each text says yes exactly where the check it documents does.
    #[test]
    fn text_schemas_agree_with_the_checks() {
        let samples = [
            "a",
            "p1",
            " ",
            "",
            "  a  ",
            "\ta",
            "a\n",
            "a\u{0}b",
            "a\u{85}",
            "\u{2003}x\u{3000}",
            "x\u{1c}",
            "é",
            "pay\u{202E}lpaypal",
            "Admin",
            "operator",
            "ROOT",
            "rooted",
            "tab\there",
            "a b",
        ];
        let long = |n: usize| "é".repeat(n);
        let mut samples: Vec<String> = samples.iter().map(|s| s.to_string()).collect();
        for n in [199, 200, 201, 254, 255, 256] {
            samples.push(long(n));
            samples.push(format!("  {}\t", long(n)));
        }
        let webhook_name = |s: &str| crate::domain::webhook::check_name(s.trim()).is_ok();
        let company = |s: &str| {
            let s = s.trim();
            !s.is_empty() && s.chars().count() <= 255 && !s.chars().any(char::is_control)
        };
        type Check<'a> = &'a dyn Fn(&str) -> bool;
        let checks: [(&str, Check); 4] = [
            ("Id", &|s| crate::domain::event::check_id(s).is_ok()),
            ("WebhookName", &webhook_name),
            ("UserId", &|s| crate::access::check_user_id(s).is_ok()),
            ("CompanyId", &company),
        ];
        for (name, check) in checks {
            for sample in &samples {
                assert_eq!(accepts(name, &json!(sample)), check(sample), "{name}: {sample:?}");
            }
        }
        for reserved in RESERVED_USER_IDS {
            assert!(crate::access::check_user_id(reserved).is_err(), "{reserved} is not reserved");
        }
    }

    #[test]
    fn the_secret_schema_agrees_with_secret_parse() {
        use base64::Engine as _;
        let encode =
            |bytes: &[u8]| format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes));
        let mut samples: Vec<String> = (20..=68).map(|n| encode(&vec![0xa7; n])).collect();
        samples.extend(["whsec_", "hunter2", "whsec_!!!"].map(String::from));
        // Padding that decodes, with unused bits set: not canonical.
        samples.push(format!("{}B==", &encode(&[7; 25])[..encode(&[7; 25]).len() - 3]));
        samples.push(encode(&[7; 32]).trim_end_matches('=').to_owned());
        for sample in samples {
            let parses = crate::secret::Secret::parse(&sample).is_ok();
            assert_eq!(accepts("Secret", &json!(sample)), parses, "{sample}");
        }
    }

    #[test]
    fn the_url_schema_accepts_what_the_destination_check_does_short_of_the_address() {
        for url in [
            "https://example.com/hook",
            "http://example.com",
            "HTTP://EXAMPLE.COM/x?y#z",
            "https://[2001:db8::1]:8443/",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "https:///x",
            "example.com",
            "https://exa mple.com/",
            "https:example.com",
            "https://ex%41mple.com/%7e",
            "https://example.com/100%",
            "https://bücher.example/",
            "https://example.com/a\\b",
            "https://example.com/{x}",
            "https://example.com:99999/",
            "https://example.com:065535/",
            "https://example.com:/",
            "https://example.com:65536/",
            "https://[::1/",
            "https://exa\tmple.com/",
            "amqp://app:pw@rabbit.example.com/prod?exchange=events&routingKey=k",
            "AMQPS://rabbit.example.com:5671/?routingKey=k",
            "nats://t0ken@nats.example.com/orders.created",
            "rediss://:pw@redis.example.com:6380/1?stream=s",
            "mqtt://broker.example.com/plant/7?qos=0",
            "mqtts://u:p@[2001:db8::1]:8883/t",
            "kafka://broker.example.com/t",
            "amqp://rabbit.example.com:99999/?routingKey=k",
        ] {
            let allowed = super::webhooks::check_url_text(url).is_ok()
                && crate::destination::check_url(url, &crate::destination::Allow::private(true)).is_ok();
            assert_eq!(accepts("DestinationUrl", &json!(url)), allowed, "{url}");
        }
    }

    #[test]
    fn the_filter_schema_agrees_with_the_filter_parser() {
        let filters = [
            json!({"path": "currentValue.title", "op": "eq", "value": "x"}),
            json!({"path": "a[0].b[*]", "op": "in", "value": [1, 2]}),
            json!({"path": "a.[3]", "op": "exists"}),
            json!({"path": "a", "op": "gt", "value": "2026-01-31T00:00:00Z"}),
            json!({"all": [{"path": "a", "op": "lte", "value": 3}, {"not": {"path": "b", "op": "exists"}}]}),
            json!({"path": "a", "op": "exists", "value": 1}),
            json!({"path": "a", "op": "eq"}),
            json!({"path": "a", "op": "in", "value": 1}),
            json!({"path": "a", "op": "gt", "value": "soon"}),
            json!({"path": "a", "op": "equals", "value": 1}),
            json!({"path": ".a", "op": "exists"}),
            json!({"path": "a[x]", "op": "exists"}),
            json!({"all": []}),
            json!({"any": [{"path": "a", "op": "exists"}], "extra": 1}),
            json!({"path": "a", "op": "exists", "extra": 1}),
            json!([]),
        ];
        for filter in filters {
            let parses = crate::matching::filter::Filter::parse(&filter).is_ok();
            assert_eq!(accepts("Filter", &filter), parses, "{filter}");
        }
    }
}
