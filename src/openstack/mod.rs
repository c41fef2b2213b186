//! Typed async clients for the OpenStack services steward reads: Keystone auth and token
//! validation, Nova, Placement, Ironic.
//! The adapter layer: it moves data and names failures; what the data means is decided elsewhere.

pub mod cloud;
pub mod ironic;
pub mod keystone;
pub mod nova;
pub(crate) mod paging;
pub mod placement;
pub mod session;
pub mod settings;

use std::fmt;

pub use cloud::{CloudConfig, CloudError, Interface};
pub use session::{Microversion, Session, SessionOptions};

/// A credential (password, application credential secret, token) that never prints.
/// `Debug` and `Display` show `***`; only [`Secret::expose`] gives the value, at the one place
/// that puts it on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything a client call can fail with. Each message names the service, the URL (never with
/// credentials) and, where there is one, what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] CloudError),

    /// The client could not be built (CA file, TLS setup).
    #[error("cannot set up the HTTP client for cloud {cloud:?}: {message}")]
    Client { cloud: String, message: String },

    /// No answer: connection refused, DNS, TLS, timeout.
    #[error("{method} {url} failed: {message}; check that {service} is reachable from this host")]
    Transport {
        service: String,
        method: String,
        url: String,
        message: String,
    },

    /// The service answered with an error status.
    #[error(transparent)]
    Status(Box<StatusError>),

    /// Keystone refused the credentials, or a service refused a fresh token.
    #[error("{message}")]
    Unauthorized {
        service: String,
        url: String,
        message: String,
    },

    /// The answer was not the JSON this client expects.
    #[error("{method} {url}: cannot read {service}'s answer: {message}")]
    Decode {
        service: String,
        method: String,
        url: String,
        message: String,
    },

    /// The catalog has no endpoint for a service, or a configured endpoint is not a URL.
    #[error("{message}")]
    Endpoint {
        service_type: String,
        message: String,
    },

    /// A caller passed something that cannot go into a request (not a UUID, ...).
    #[error("{0}")]
    Argument(String),

    /// A listing did not end: the same marker came back, or the page limit was reached.
    #[error("{url}: {message}")]
    Paging { url: String, message: String },
}

/// An error status from a service, with the service's own explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{method} {url} answered {status}{}: {message}{}", fmt_code(.code), fmt_request_id(.request_id))]
pub struct StatusError {
    pub service: String,
    pub method: String,
    pub url: String,
    pub status: u16,
    /// The service's own error code (Placement's `placement.concurrent_update`), if any.
    pub code: Option<String>,
    /// The service's own message, or the start of the body when it had none.
    pub message: String,
    /// The id the service logged the call under (`x-openstack-request-id`).
    pub request_id: Option<String>,
}

fn fmt_code(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
}

fn fmt_request_id(id: &Option<String>) -> String {
    id.as_ref()
        .map(|i| format!(" [request {i}]"))
        .unwrap_or_default()
}

impl Error {
    /// The HTTP status the service answered, when it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status(e) => Some(e.status),
            _ => None,
        }
    }

    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Client { .. } => "client",
            Error::Transport { .. } => "transport",
            Error::Status(_) => "status",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Decode { .. } => "decode",
            Error::Endpoint { .. } => "endpoint",
            Error::Argument { .. } => "argument",
            Error::Paging { .. } => "paging",
        }
    }

    /// The service's error code (Placement `errors[].code`), when it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Status(e) => e.code.as_deref(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A URL fit for messages and logs: no user info, no query values that could carry a secret.
/// Query keys stay (they say what was asked); values of keys that look like credentials go.
/// Steward's Nova client over the named cloud (`[openstack] cloud`: clouds.yaml, else `OS_*`):
/// the one way every command and loop opens it.
pub fn nova_client(cloud: Option<&str>) -> anyhow::Result<nova::Nova> {
    let cloud = cloud::load(cloud)?;
    let options = SessionOptions::for_cloud(&cloud);
    let session = std::sync::Arc::new(Session::new(cloud, options)?);
    Ok(nova::Nova::new(session))
}

pub fn redact_url(url: &url::Url) -> String {
    let mut u = url.clone();
    if !u.username().is_empty() || u.password().is_some() {
        let _ = u.set_username("");
        let _ = u.set_password(None);
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let secret = ["token", "password", "secret", "key", "signature"]
                    .iter()
                    .any(|s| lower.contains(s));
                (
                    k.into_owned(),
                    if secret { "***".into() } else { v.into_owned() },
                )
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}
