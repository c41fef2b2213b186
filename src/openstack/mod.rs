//! Typed async clients for the OpenStack services steward reads: Keystone auth, Nova, Placement.
//! The adapter layer: it moves data and names failures; what the data means is decided elsewhere.

pub mod cloud;

use std::fmt;

pub use cloud::{CloudConfig, CloudError, Interface};

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
