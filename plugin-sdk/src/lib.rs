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
//!
//! Components built with this crate implement the contract `wasmhook:plugin@0.2.0`. Beyond
//! `describe` and `transform` they may declare a delivery [`Policy`] in their [`Info`], give
//! requests an [ordering key](Request::ordering_key), keep [`state`] per webhook, and judge
//! receivers' answers themselves ([`OnResponse`], exported with `export_plugin!(T, on_response)`).

mod error;
mod event;
pub mod flatten;
pub mod log;
mod request;
mod response;
pub mod state;
pub mod template;

pub use error::Error;
pub use event::{Config, Event};
pub use request::Request;
pub use response::{Judgement, Response};
pub use serde_json::{self, Map, Value, json};

/// A connector. Implement it on one (usually empty) type and export it with
/// [`export_plugin!`].
pub trait Plugin {
    /// Name, version, description and config schema; must not depend on any event.
    fn describe() -> Info;

    /// Turn one delivery into the requests to send. An empty list filters it out.
    fn transform(event: Event, config: Config) -> Result<Vec<Request>, Error>;
}

/// A connector that judges receivers' answers itself; export it with
/// `export_plugin!(T, on_response)`. Without it, a 2xx is success, 410 disables the webhook
/// and anything else is retried (after `Retry-After` on 429 and 503).
///
/// ```
/// use wasmhook_plugin_sdk::{export_plugin, Config, Error, Event, Info, Judgement, OnResponse, Plugin, Request, Response};
///
/// struct Chat;
///
/// impl Plugin for Chat {
///     fn describe() -> Info {
///         Info::new("chat", "0.1.0", "Posts titles to a chat.")
///     }
///
///     fn transform(event: Event, _config: Config) -> Result<Vec<Request>, Error> {
///         Ok(event.str("currentValue.title").map(Request::new).into_iter().collect())
///     }
/// }
///
/// impl OnResponse for Chat {
///     fn on_response(_request: Request, response: Response) -> Result<Judgement, Error> {
///         Ok(match response.status() {
///             200..=299 => Judgement::success(),
///             // This chat answers 400 to a message it will never take: retrying is no use.
///             400 => Judgement::fail(response.body()),
///             _ => Judgement::retry(),
///         })
///     }
/// }
///
/// export_plugin!(Chat, on_response);
/// ```
pub trait OnResponse: Plugin {
    /// Judge `response`, the receiver's answer to `request` (as `transform` returned it).
    /// Called for every HTTP answer; not when none came, nor for message brokers. An error
    /// fails the attempt as a plugin error, without counting against the webhook's health.
    fn on_response(request: Request, response: Response) -> Result<Judgement, Error>;
}

/// What a connector says about itself.
#[derive(Debug, Clone)]
pub struct Info {
    name: String,
    version: String,
    description: String,
    config_schema: Value,
    policy: Option<Policy>,
}

impl Info {
    /// A connector that takes no config (its schema is an empty object).
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Info {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            config_schema: json!({"type": "object", "additionalProperties": false}),
            policy: None,
        }
    }

    /// How this connector's receivers want to be treated: every webhook using it gets these
    /// limits (or tighter ones of its own).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The JSON Schema a webhook's connector config must satisfy. Mark secret properties
    /// `"writeOnly": true` so the host never shows or logs them.
    pub fn config_schema(mut self, schema: Value) -> Self {
        self.config_schema = schema;
        self
    }
}

/// Limits a connector's receivers want, each optional: the defaults of every webhook using
/// it, which a webhook may tighten but never loosen.
///
/// ```
/// # use wasmhook_plugin_sdk::Policy;
/// // A HubSpot-like API: 100 requests per 10 s, four at once, retry only when told to wait.
/// let policy = Policy::new().rate(100, 10).concurrency(4).retry_statuses(&[429, 503]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    rate: Option<(u32, u32)>,
    concurrency: Option<u32>,
    attempts: Option<u32>,
    retry_statuses: Option<Vec<u16>>,
}

impl Policy {
    pub fn new() -> Self {
        Policy::default()
    }

    /// At most `requests` messages per webhook every `seconds` seconds, evenly spaced.
    pub fn rate(mut self, requests: u32, seconds: u32) -> Self {
        self.rate = Some((requests, seconds));
        self
    }

    /// At most this many messages of a webhook in flight at once.
    pub fn concurrency(mut self, messages: u32) -> Self {
        self.concurrency = Some(messages);
        self
    }

    /// Attempts per message in all, the first included.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// Retry only these HTTP statuses; any other failure fails the message at once.
    pub fn retry_statuses(mut self, statuses: &[u16]) -> Self {
        self.retry_statuses = Some(statuses.to_vec());
        self
    }

    fn into_wit(self) -> __bindings::wasmhook::plugin::types::DeliveryPolicy {
        use __bindings::wasmhook::plugin::types::{DeliveryPolicy, Rate};
        DeliveryPolicy {
            rate: self.rate.map(|(requests, seconds)| Rate { requests, seconds }),
            concurrency: self.concurrency,
            attempts: self.attempts,
            retry_statuses: self.retry_statuses,
        }
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

    /// The world with `on-response`, sharing the interfaces above.
    pub mod responsive {
        wit_bindgen::generate!({
            path: "../wit",
            world: "responsive-connector",
            pub_export_macro: true,
            export_macro_name: "__export_responsive_connector",
            default_bindings_module: "::wasmhook_plugin_sdk::__bindings::responsive",
            with: {
                "wasmhook:plugin/types@0.2.0": crate::__bindings::wasmhook::plugin::types,
                "wasmhook:plugin/host@0.2.0": crate::__bindings::wasmhook::plugin::host,
                "wasmhook:plugin/state@0.2.0": crate::__bindings::wasmhook::plugin::state,
            },
        });
    }
}

#[doc(hidden)]
pub fn __describe<P: Plugin>() -> __bindings::PluginInfo {
    let info = P::describe();
    __bindings::PluginInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        config_schema: info.config_schema.to_string(),
        policy: info.policy.map(Policy::into_wit),
    }
}

#[doc(hidden)]
pub fn __on_response<P: OnResponse>(
    request: __bindings::OutgoingRequest,
    response: __bindings::wasmhook::plugin::types::IncomingResponse,
) -> Result<__bindings::wasmhook::plugin::types::Judgement, __bindings::PluginError> {
    let judged = P::on_response(Request::from_wit(request), Response::from_wit(response));
    judged.map(Judgement::into_wit).map_err(Error::into_wit)
}

#[doc(hidden)]
pub fn __transform<P: Plugin>(
    event: String,
    config: String,
) -> Result<Vec<__bindings::OutgoingRequest>, __bindings::PluginError> {
    let requests = P::transform(Event::new(event), Config::new(config)).map_err(Error::into_wit)?;
    Ok(requests.into_iter().map(Request::into_wit).collect())
}

/// Export a [`Plugin`] implementation as the component's connector; with `, on_response`,
/// its [`OnResponse`] judgement of answers too.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty, on_response) => {
        const _: () = {
            struct Exported;

            impl $crate::__bindings::responsive::Guest for Exported {
                $crate::__connector_exports!($plugin);

                fn on_response(
                    request: $crate::__bindings::OutgoingRequest,
                    response: $crate::__bindings::wasmhook::plugin::types::IncomingResponse,
                ) -> ::std::result::Result<
                    $crate::__bindings::wasmhook::plugin::types::Judgement,
                    $crate::__bindings::PluginError,
                > {
                    $crate::__on_response::<$plugin>(request, response)
                }
            }

            $crate::__bindings::responsive::__export_responsive_connector!(Exported with_types_in $crate::__bindings::responsive);
        };
    };
    ($plugin:ty) => {
        const _: () = {
            struct Exported;

            impl $crate::__bindings::Guest for Exported {
                $crate::__connector_exports!($plugin);
            }

            $crate::__bindings::__export_connector!(Exported with_types_in $crate::__bindings);
        };
    };
}

/// The exports every connector world has, for [`export_plugin!`]'s `Guest` impls.
#[doc(hidden)]
#[macro_export]
macro_rules! __connector_exports {
    ($plugin:ty) => {
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
    };
}
