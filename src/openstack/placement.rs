//! Placement as typed reads: resource providers, and per provider its inventories, usages and
//! aggregates, each with the provider generation a later write must quote.
//!
//! Every call asks for microversion 1.39 (error bodies carry `code` from 1.23; `consumer_type`
//! exists from 1.38). Placement does not page these listings.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::session::{Microversion, Session};
use super::{Error, Result};

pub const SERVICE_TYPE: &str = "placement";
pub const MICROVERSION: &str = "1.39";

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResourceProvider {
    pub uuid: String,
    pub name: String,
    pub generation: i64,
    #[serde(default)]
    pub parent_provider_uuid: Option<String>,
    #[serde(default)]
    pub root_provider_uuid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Inventory {
    pub total: i64,
    #[serde(default)]
    pub reserved: i64,
    #[serde(default = "one")]
    pub min_unit: i64,
    #[serde(default)]
    pub max_unit: i64,
    #[serde(default = "one")]
    pub step_size: i64,
    #[serde(default = "one_f")]
    pub allocation_ratio: f64,
}

fn one() -> i64 {
    1
}

fn one_f() -> f64 {
    1.0
}

/// A provider's inventories by resource class, and the generation they were read at.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Inventories {
    #[serde(rename = "resource_provider_generation")]
    pub generation: i64,
    pub inventories: BTreeMap<String, Inventory>,
}

/// What is allocated against a provider, by resource class.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Usages {
    #[serde(rename = "resource_provider_generation")]
    pub generation: i64,
    pub usages: BTreeMap<String, i64>,
}

/// The placement aggregates (UUIDs, not Nova's named host aggregates) a provider belongs to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProviderAggregates {
    #[serde(rename = "resource_provider_generation")]
    pub generation: i64,
    pub aggregates: Vec<String>,
}

/// Placement through a [`Session`].
#[derive(Debug, Clone)]
pub struct Placement {
    session: Arc<Session>,
    microversion: Microversion,
}

impl Placement {
    pub fn new(session: Arc<Session>) -> Self {
        Placement {
            session,
            microversion: Microversion::placement(MICROVERSION),
        }
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Every resource provider.
    pub async fn resource_providers(&self) -> Result<Vec<ResourceProvider>> {
        #[derive(Deserialize)]
        struct Page {
            resource_providers: Vec<ResourceProvider>,
        }
        let page: Page = self.get("resource_providers").await?;
        Ok(page.resource_providers)
    }

    /// One resource provider.
    pub async fn resource_provider(&self, uuid: &str) -> Result<ResourceProvider> {
        self.get(&format!("resource_providers/{}", segment(uuid)?))
            .await
    }

    pub async fn inventories(&self, provider_uuid: &str) -> Result<Inventories> {
        self.get(&format!(
            "resource_providers/{}/inventories",
            segment(provider_uuid)?
        ))
        .await
    }

    pub async fn usages(&self, provider_uuid: &str) -> Result<Usages> {
        self.get(&format!(
            "resource_providers/{}/usages",
            segment(provider_uuid)?
        ))
        .await
    }

    pub async fn aggregates(&self, provider_uuid: &str) -> Result<ProviderAggregates> {
        self.get(&format!(
            "resource_providers/{}/aggregates",
            segment(provider_uuid)?
        ))
        .await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.session
            .get_json(SERVICE_TYPE, Some(&self.microversion), path, &[])
            .await
    }
}

/// A provider UUID as a path segment. Placement's ids are UUIDs; anything else would change the
/// path (`../`), so it is refused rather than encoded.
fn segment(uuid: &str) -> Result<&str> {
    if !uuid.is_empty()
        && uuid.len() <= 64
        && uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        Ok(uuid)
    } else {
        Err(Error::Argument(format!(
            "{uuid:?} is not a resource provider UUID; pass the provider's uuid, not its name"
        )))
    }
}
