//! Why a connector could not produce requests.

use crate::__bindings::PluginError;

/// A connector's failure, recorded on the delivery as `plugin_error` with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The webhook's connector config is unusable; say which field and why.
    InvalidConfig(String),
    /// The event lacks something this connector needs.
    InvalidEvent(String),
    /// Anything else.
    Failed(String),
}

impl Error {
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Error::InvalidConfig(message.into())
    }

    pub fn invalid_event(message: impl Into<String>) -> Self {
        Error::InvalidEvent(message.into())
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed(message.into())
    }

    pub(crate) fn into_wit(self) -> PluginError {
        match self {
            Error::InvalidConfig(m) => PluginError::InvalidConfig(m),
            Error::InvalidEvent(m) => PluginError::InvalidEvent(m),
            Error::Failed(m) => PluginError::Failed(m),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidConfig(m) => write!(f, "invalid config: {m}"),
            Error::InvalidEvent(m) => write!(f, "invalid event: {m}"),
            Error::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}
