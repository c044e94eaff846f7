//! The `zapier` connector: one flat JSON object per event, for Zapier REST-hook triggers.
//!
//! Zapier dedupes a trigger's items on their top-level `id` (the event's id here) and shows
//! nested keys joined by `__` as readable labels ("Current Value Todo List Title"), with
//! comma-separated values as line items — so the payload is flattened that way.

use wasmhook_plugin_sdk::flatten::{Members, Style, flat_request};
use wasmhook_plugin_sdk::{Config, Error, Event, Info, Plugin, Request, export_plugin};

struct Zapier;

impl Plugin for Zapier {
    fn describe() -> Info {
        Info::new(
            "zapier",
            env!("CARGO_PKG_VERSION"),
            "One flat object per event for Zapier, keyed by the event id.",
        )
        .config_schema(Members::schema())
    }

    fn transform(event: Event, config: Config) -> Result<Vec<Request>, Error> {
        Ok(vec![flat_request(&event, &config, Style::ZAPIER)?])
    }
}

export_plugin!(Zapier);
