//! Placement as typed calls: resource providers, and per provider its inventories, usages,
//! aggregates and allocations, each with the provider generation a later write must quote; and
//! the writes the inventory repair makes (resource classes, inventories, allocations).
//!
//! Every call asks for microversion 1.39 (error bodies carry `code` from 1.23; `consumer_type`
//! exists from 1.38 and is then required on allocation writes). Placement does not page these
//! listings. A write that lost a race answers 409 with `placement.concurrent_update`
//! ([`is_concurrent_update`]); whether to read again and retry is the caller's decision.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::session::{Microversion, Reply, Session};
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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

/// A provider's inventories and usages, read one after the other (each carries the generation
/// it was read at).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRoom {
    pub inventories: Inventories,
    pub usages: Usages,
}

/// The placement aggregates (UUIDs, not Nova's named host aggregates) a provider belongs to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProviderAggregates {
    #[serde(rename = "resource_provider_generation")]
    pub generation: i64,
    pub aggregates: Vec<String>,
}

/// Every consumer's resources on one provider.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProviderAllocations {
    #[serde(rename = "resource_provider_generation")]
    pub generation: i64,
    /// Consumer uuid -> its resources on this provider.
    pub allocations: BTreeMap<String, ConsumerResources>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConsumerResources {
    pub resources: BTreeMap<String, i64>,
}

/// One consumer's allocations (`GET /allocations/{consumer}` at 1.39).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConsumerAllocations {
    /// Provider uuid -> resources and the provider's generation.
    #[serde(default)]
    pub allocations: BTreeMap<String, ProviderResources>,
    #[serde(default)]
    pub consumer_generation: Option<i64>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    /// `INSTANCE`, `MIGRATION` or `unknown` (1.38+).
    #[serde(default)]
    pub consumer_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProviderResources {
    pub resources: BTreeMap<String, i64>,
    #[serde(default)]
    pub generation: Option<i64>,
}

/// Who owns a consumer, as an allocation write must restate it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerOwner {
    pub project_id: String,
    pub user_id: String,
    pub consumer_generation: Option<i64>,
    pub consumer_type: String,
}

/// Placement's own name rule for custom classes: `^CUSTOM_[A-Z0-9_]+$`, at most 255 bytes.
pub fn is_custom_class(name: &str) -> bool {
    name.len() <= 255
        && name.strip_prefix("CUSTOM_").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// A 409 that means "someone wrote first": a stale provider or consumer generation
/// (`placement.concurrent_update`). Read again and retry.
pub fn is_concurrent_update(e: &Error) -> bool {
    e.status() == Some(409) && e.code() == Some("placement.concurrent_update")
}

/// A 409 that means an inventory write would drop a class still allocated.
pub fn is_inventory_in_use(e: &Error) -> bool {
    e.status() == Some(409) && e.code() == Some("placement.inventory.inuse")
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

    /// `GET /resource_providers/{uuid}/{what}`.
    async fn provider_get<T: DeserializeOwned>(
        &self,
        provider_uuid: &str,
        what: &str,
    ) -> Result<T> {
        self.get(&format!(
            "resource_providers/{}/{what}",
            segment(provider_uuid)?
        ))
        .await
    }

    /// One resource provider.
    pub async fn resource_provider(&self, uuid: &str) -> Result<ResourceProvider> {
        self.get(&format!("resource_providers/{}", segment(uuid)?))
            .await
    }

    pub async fn inventories(&self, provider_uuid: &str) -> Result<Inventories> {
        self.provider_get(provider_uuid, "inventories").await
    }

    pub async fn usages(&self, provider_uuid: &str) -> Result<Usages> {
        self.provider_get(provider_uuid, "usages").await
    }

    /// One provider's inventories, then its usages: what Placement counts room on it from.
    pub async fn inventories_and_usages(&self, provider_uuid: &str) -> Result<ProviderRoom> {
        let inventories = self.inventories(provider_uuid).await?;
        let usages = self.usages(provider_uuid).await?;
        Ok(ProviderRoom {
            inventories,
            usages,
        })
    }

    /// [`Placement::inventories_and_usages`] of many providers, at most `in_flight` providers
    /// read at a time; each provider's own answer or error, in the order asked.
    pub async fn inventories_and_usages_of(
        &self,
        provider_uuids: &[String],
        in_flight: usize,
    ) -> Vec<(String, Result<ProviderRoom>)> {
        let gate = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for (i, uuid) in provider_uuids.iter().enumerate() {
            let placement = self.clone();
            let uuid = uuid.clone();
            let gate = gate.clone();
            set.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let got = placement.inventories_and_usages(&uuid).await;
                (i, uuid, got)
            });
        }
        let mut out: Vec<Option<(String, Result<ProviderRoom>)>> =
            (0..provider_uuids.len()).map(|_| None).collect();
        while let Some(done) = set.join_next().await {
            match done {
                Ok((i, uuid, got)) => out[i] = Some((uuid, got)),
                // A read that panicked or was cancelled leaves its slot empty: filled below.
                Err(e) => tracing::warn!(error = %e, "a Placement read task did not finish"),
            }
        }
        out.into_iter()
            .zip(provider_uuids)
            .map(|(slot, uuid)| {
                slot.unwrap_or_else(|| {
                    (
                        uuid.clone(),
                        Err(Error::Argument(format!(
                            "the read of resource provider {uuid} did not finish; it is read again next cycle"
                        ))),
                    )
                })
            })
            .collect()
    }

    pub async fn aggregates(&self, provider_uuid: &str) -> Result<ProviderAggregates> {
        self.get(&format!(
            "resource_providers/{}/aggregates",
            segment(provider_uuid)?
        ))
        .await
    }

    /// Every consumer's allocation against one provider.
    pub async fn provider_allocations(&self, provider_uuid: &str) -> Result<ProviderAllocations> {
        self.provider_get(provider_uuid, "allocations").await
    }

    /// One consumer's allocations on every provider, with its generation and type.
    pub async fn allocations(&self, consumer_uuid: &str) -> Result<ConsumerAllocations> {
        self.get(&format!("allocations/{}", segment(consumer_uuid)?))
            .await
    }

    /// Create a custom resource class; `Ok(true)` when it was created, `Ok(false)` when it
    /// existed (PUT, >= 1.7: 201 or 204).
    pub async fn ensure_resource_class(&self, name: &str) -> Result<bool> {
        if !is_custom_class(name) {
            return Err(Error::Argument(format!(
                "{name:?} is not a custom resource class name (CUSTOM_ followed by A-Z, 0-9, _)"
            )));
        }
        let reply = self
            .write(Method::PUT, &format!("resource_classes/{name}"), None)
            .await?;
        Ok(reply == 201)
    }

    /// Replace a provider's whole inventory, quoting the generation it was read at. Answers the
    /// new inventories and generation.
    pub async fn set_inventories(
        &self,
        provider_uuid: &str,
        generation: i64,
        inventories: &BTreeMap<String, Inventory>,
    ) -> Result<Inventories> {
        let body = json!({
            "resource_provider_generation": generation,
            "inventories": inventories,
        });
        self.send_json(
            Method::PUT,
            &format!("resource_providers/{}/inventories", segment(provider_uuid)?),
            &body,
        )
        .await
    }

    /// Replace a consumer's allocations (every provider), quoting its generation (`None` for a
    /// consumer Placement does not know yet).
    pub async fn set_allocations(
        &self,
        consumer_uuid: &str,
        allocations: &BTreeMap<String, BTreeMap<String, i64>>,
        owner: &ConsumerOwner,
    ) -> Result<()> {
        let allocs: serde_json::Map<String, Value> = allocations
            .iter()
            .map(|(rp, resources)| (rp.clone(), json!({ "resources": resources })))
            .collect();
        let body = json!({
            "allocations": allocs,
            "project_id": owner.project_id,
            "user_id": owner.user_id,
            "consumer_generation": owner.consumer_generation,
            "consumer_type": owner.consumer_type,
        });
        self.write(
            Method::PUT,
            &format!("allocations/{}", segment(consumer_uuid)?),
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<T> {
        self.send(method, path, Some(body)).await?.json()
    }

    async fn write(&self, method: Method, path: &str, body: Option<&Value>) -> Result<u16> {
        Ok(self.send(method, path, body).await?.status)
    }

    /// One call at the client's microversion.
    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply> {
        self.session
            .request(
                method,
                SERVICE_TYPE,
                Some(&self.microversion),
                path,
                &[],
                body,
            )
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
