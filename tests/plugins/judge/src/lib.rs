//! A contract-0.2 connector for the tests of what 0.2 adds: it judges answers and keeps state
//! as its config says. Test-only.
//!
//! `{"mode": …}` picks the behaviour; `transform` passes it to `on-response` in an
//! `x-judge-mode` header (on-response gets no config):
//! - `echo`: sends the payload; an answer's JSON `id` becomes the remote id.
//! - `error`, `trap`: on-response fails, or panics.
//! - `count`: sends how many deliveries of this webhook came before (kept in state).
//! - `quota`: sends what the state said to a value over 64 KiB, and to key number 1,001.
//! - `ordered`: sends the payload with the event's `currentValue.id` as the ordering key.

use wasmhook_plugin_sdk::{
    Config, Error, Event, Info, Judgement, OnResponse, Plugin, Request, Response, Value, export_plugin, json,
    state,
};

struct Judge;

#[derive(serde::Deserialize)]
struct Mode {
    mode: String,
}

impl Plugin for Judge {
    fn describe() -> Info {
        Info::new("judge", "0.0.1", "Judges answers and keeps state on demand (tests only).").config_schema(
            json!({"type": "object", "required": ["mode"], "properties": {"mode": {"type": "string"}}}),
        )
    }

    fn transform(event: Event, config: Config) -> Result<Vec<Request>, Error> {
        let Mode { mode } = config.parse()?;
        let request = match mode.as_str() {
            "count" => {
                let seen: u64 = state::get("seen")?.and_then(|n| n.parse().ok()).unwrap_or(0);
                state::set("seen", &(seen + 1).to_string())?;
                Request::new(seen.to_string())
            }
            "quota" => {
                Request::json(&json!({"tooLarge": refusal(&"x".repeat(65 << 10)), "tooMany": too_many()}))
            }
            "ordered" => {
                let key = event.str("currentValue.id").unwrap_or("none").to_owned();
                Request::new(event.raw()).ordering_key(key)
            }
            _ => Request::new(event.raw()),
        };
        Ok(vec![request.header("content-type", "application/json").header("x-judge-mode", mode)])
    }
}

/// What the state says to keeping `value`.
fn refusal(value: &str) -> String {
    match state::set("big", value) {
        Ok(()) => "kept".into(),
        Err(error) => format!("{error:?}"),
    }
}

/// Fills the store with keys until one is refused: which, and why.
fn too_many() -> String {
    for i in 0..2_000 {
        if let Err(error) = state::set(&format!("k{i:04}"), "") {
            return format!("key {i}: {error:?}");
        }
    }
    "all kept".into()
}

impl OnResponse for Judge {
    fn on_response(request: Request, response: Response) -> Result<Judgement, Error> {
        match request.header_value("x-judge-mode") {
            Some("error") => Err(Error::failed("cannot make sense of this answer")),
            Some("trap") => panic!("deliberate panic in on-response"),
            _ if !response.is_success() => Ok(Judgement::retry()),
            _ => {
                let id =
                    response.json::<Value>().and_then(|body| body.get("id")?.as_str().map(str::to_owned));
                Ok(id.map_or_else(Judgement::success, |id| Judgement::success().remote_id(id)))
            }
        }
    }
}

export_plugin!(Judge, on_response);
