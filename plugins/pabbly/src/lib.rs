//! The `pabbly` connector: flat key/value JSON for Pabbly Connect's webhook trigger.
//!
//! Pabbly Connect maps a webhook's fields by the keys it finds in the first request it
//! captures; nested objects and arrays there become awkward to map. So every value sits at one
//! level, under its path with `_` between steps and array indexes kept
//! (`currentValue_users_0_email`).

use wasmhook_plugin_sdk::flatten::{Members, Style, flat_request};
use wasmhook_plugin_sdk::{Config, Error, Event, Info, Plugin, Request, export_plugin};

struct Pabbly;

impl Plugin for Pabbly {
    fn describe() -> Info {
        Info::new(
            "pabbly",
            env!("CARGO_PKG_VERSION"),
            "Flat key/value JSON for Pabbly Connect's webhook trigger.",
        )
        .config_schema(Members::schema())
    }

    fn transform(event: Event, config: Config) -> Result<Vec<Request>, Error> {
        Ok(vec![flat_request(&event, &config, Style::PABBLY)?])
    }
}

export_plugin!(Pabbly);
