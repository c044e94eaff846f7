//! Write wasmhook connectors in Rust.
//!
//! A connector is a WebAssembly component that turns one delivery — the standard payload
//! of an event, as JSON — into the HTTP requests wasmhook should send. This crate hides the
//! component-model plumbing: implement [`Plugin`] on one type and name it in
//! [`export_plugin!`], then build with `cargo build --release --target wasm32-wasip2`
//! (the crate must be a `cdylib`).
//!
//! ```
//! use wasmhook_plugin_sdk::{export_plugin, json, Config, Error, Event, Info, Plugin, Request};
//!
//! struct TitleOnly;
//!
//! impl Plugin for TitleOnly {
//!     fn describe() -> Info {
//!         Info::new("title-only", "0.1.0", "Sends just the record's title.")
//!             .config_schema(json!({"type": "object", "additionalProperties": false}))
//!     }
//!
//!     fn transform(event: Event, _config: Config) -> Result<Vec<Request>, Error> {
//!         let Some(title) = event.str("currentValue.title") else {
//!             return Ok(vec![]); // nothing to send: the delivery is recorded as filtered
//!         };
//!         wasmhook_plugin_sdk::log::info(&format!("sending {title}"));
//!         Ok(vec![Request::json(&json!({"id": event.id(), "title": title}))])
//!     }
//! }
//!
//! export_plugin!(TitleOnly);
//! ```
//!
//! The host gives a plugin no network, no files and no environment: whatever it needs comes
//! in the event and the config, and whatever it wants sent goes out as a [`Request`].

mod error;
mod event;
pub mod flatten;
pub mod log;
mod request;
pub mod template;

pub use error::Error;
pub use event::{Config, Event};
pub use request::Request;
pub use serde_json::{self, Map, Value, json};

/// A connector. Implement it on one (usually empty) type and export it with
/// [`export_plugin!`].
pub trait Plugin {
    /// Name, version, description and config schema; must not depend on any event.
    fn describe() -> Info;

    /// Turn one delivery into the requests to send. An empty list filters it out.
    fn transform(event: Event, config: Config) -> Result<Vec<Request>, Error>;
}

/// What a connector says about itself.
#[derive(Debug, Clone)]
pub struct Info {
    name: String,
    version: String,
    description: String,
    config_schema: Value,
}

impl Info {
    /// A connector that takes no config (its schema is an empty object).
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Info {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            config_schema: json!({"type": "object", "additionalProperties": false}),
        }
    }

    /// The JSON Schema a webhook's connector config must satisfy. Mark secret properties
    /// `"writeOnly": true` so the host never shows or logs them.
    pub fn config_schema(mut self, schema: Value) -> Self {
        self.config_schema = schema;
        self
    }
}

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "connector",
        pub_export_macro: true,
        export_macro_name: "__export_connector",
        default_bindings_module: "::wasmhook_plugin_sdk::__bindings",
    });
}

#[doc(hidden)]
pub fn __describe<P: Plugin>() -> __bindings::PluginInfo {
    let info = P::describe();
    __bindings::PluginInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        config_schema: info.config_schema.to_string(),
    }
}

#[doc(hidden)]
pub fn __transform<P: Plugin>(
    event: String,
    config: String,
) -> Result<Vec<__bindings::OutgoingRequest>, __bindings::PluginError> {
    let requests = P::transform(Event::new(event), Config::new(config)).map_err(Error::into_wit)?;
    Ok(requests.into_iter().map(Request::into_wit).collect())
}

/// Export a [`Plugin`] implementation as the component's connector.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            struct Exported;

            impl $crate::__bindings::Guest for Exported {
                fn describe() -> $crate::__bindings::PluginInfo {
                    $crate::__describe::<$plugin>()
                }

                fn transform(
                    event: ::std::string::String,
                    config: ::std::string::String,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::__bindings::OutgoingRequest>,
                    $crate::__bindings::PluginError,
                > {
                    $crate::__transform::<$plugin>(event, config)
                }
            }

    $crate::__bindings::__export_connector!(Exported with_types_in $crate::__bindings);
        };
    };
}
