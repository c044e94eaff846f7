//! The `json` connector: sends the standard payload as it is, as JSON, to the webhook's URL.

use wasmhook_plugin_sdk::{Config, Error, Event, Info, Plugin, Request, export_plugin};

struct Json;

impl Plugin for Json {
    fn describe() -> Info {
        Info::new("json", env!("CARGO_PKG_VERSION"), "Sends the standard event payload as JSON, unchanged.")
    }

    fn transform(event: Event, _config: Config) -> Result<Vec<Request>, Error> {
        // Forward the host's bytes untouched: no parse, no re-serialisation.
        let request = Request::new(event.raw()).header("content-type", "application/json");
        Ok(vec![request])
    }
}

export_plugin!(Json);
