//! Each step of a repair plan as the executor carries it out: read what it changes right before
//! writing (generations, current JSON), nothing to do when it is already so, else journal the
//! before-image, write, and mark the entry. One function per action.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::novadb::{ExtraSpecRow, RowImage, Stamp};
use crate::openstack::placement::{
    is_concurrent_update, is_inventory_in_use, ConsumerOwner, Inventory,
};

use super::apply::{to_json_bytes, Exec};
use super::plan::Step;
use super::rows::NovaRow;
use super::RepairError;

impl Exec {
    pub(super) async fn step(&self, node: &str, step: &Step) -> Result<(), RepairError> {
        match step {
            Step::EnsureResourceClass { class } => {
                self.clients.placement.ensure_resource_class(class).await?;
                Ok(())
            }
            Step::SetFlavorExtraSpecs {
                flavor_id,
                flavor_name,
                specs,
            } => {
                self.set_flavor_extra_specs(node, step, flavor_id, flavor_name, specs)
                    .await
            }
            Step::RewriteInstanceFlavor {
                instance,
                cell,
                specs,
                ..
            } => {
                self.rewrite_instance_flavor(node, step, instance, cell, specs)
                    .await
            }
            Step::RewriteRequestSpec { instance, specs } => {
                self.rewrite_request_spec(node, step, instance, specs).await
            }
            Step::AddCustomInventory { provider, class } => {
                self.write_inventory(node, step, provider, |inv| {
                    if inv.contains_key(class) {
                        return None;
                    }
                    let mut new = inv.clone();
                    new.insert(class.clone(), custom_inventory(None));
                    Some(new)
                })
                .await
            }
            Step::SetCustomOnlyInventory { provider, class } => {
                self.write_inventory(node, step, provider, |inv| {
                    if inv.len() == 1 && inv.contains_key(class) {
                        return None;
                    }
                    let mut new = BTreeMap::new();
                    new.insert(class.clone(), custom_inventory(inv.get(class)));
                    Some(new)
                })
                .await
            }
            Step::ShrinkAllocation {
                consumer,
                provider,
                class,
                ..
            } => {
                self.shrink_allocation(node, step, consumer, provider, class)
                    .await
            }
            Step::CheckUsage {
                provider, class, ..
            } => self.check_usage(provider, class).await,
            Step::SetNodeResourceClass { node: uuid, class } => {
                self.set_node_resource_class(node, step, uuid, class).await
            }
        }
    }

    /// Ironic's class of a node that has none (`steward repair classify`).
    async fn set_node_resource_class(
        &self,
        node: &str,
        step: &Step,
        uuid: &str,
        class: &str,
    ) -> Result<(), RepairError> {
        let ironic = &self.clients.ironic;
        let current = ironic.node(uuid).await?;
        let now = current.resource_class.filter(|c| !c.trim().is_empty());
        if now.as_deref() == Some(class) {
            return Ok(());
        }
        if let Some(other) = now {
            return Err(RepairError::Data(format!(
                "Ironic node {uuid} has class {other} since the plan; classify again"
            )));
        }
        let entry = self
            .before(
                node,
                step,
                Some(&to_json_bytes(&json!({ "resource_class": Value::Null }))),
                Some(&to_json_bytes(&json!({ "resource_class": class }))),
            )
            .await?;
        match ironic.set_resource_class(uuid, Some(class)).await {
            Ok(()) => {
                self.landed();
                let after = to_json_bytes(&json!({ "resource_class": class }));
                self.done(entry, Some(&after)).await
            }
            Err(e) => {
                let e = RepairError::from(e);
                self.failed(entry, &e).await;
                Err(e)
            }
        }
    }

    async fn set_flavor_extra_specs(
        &self,
        node: &str,
        step: &Step,
        flavor_id: &str,
        flavor_name: &str,
        specs: &BTreeMap<String, String>,
    ) -> Result<(), RepairError> {
        let nova = &self.clients.nova;
        let mut refused = None;
        for _ in 0..self.max_attempts {
            let current = nova
                .flavors()
                .await?
                .into_iter()
                .find(|f| f.id == flavor_id)
                .ok_or_else(|| {
                    RepairError::Gone(format!(
                        "flavor {flavor_id} ({flavor_name}) no longer exists"
                    ))
                })?;
            let before: BTreeMap<String, Option<String>> = specs
                .keys()
                .map(|k| (k.clone(), current.extra_specs.get(k).cloned()))
                .collect();
            if specs
                .iter()
                .all(|(k, v)| current.extra_specs.get(k) == Some(v))
            {
                return Ok(());
            }
            let rows = self.extra_spec_rows(flavor_id, &before).await?;
            let image = FlavorSpecsImage {
                flavor_id: flavor_id.to_string(),
                extra_specs: before,
                rows,
            };
            let entry = self
                .before(
                    node,
                    step,
                    Some(&to_json_bytes(&image)),
                    Some(&to_json_bytes(specs)),
                )
                .await?;
            match nova.set_flavor_extra_specs(flavor_id, specs).await {
                Ok(after) => {
                    self.landed();
                    return self.done(entry, Some(&to_json_bytes(&after))).await;
                }
                // Nova's 409 here is FlavorExtraSpecUpdateCreateFailed: its own retries lost
                // to concurrent writers. Read again and retry.
                Err(e) if e.status() == Some(409) => {
                    let e = RepairError::from(e);
                    self.failed(entry, &e).await;
                    refused = Some(e);
                }
                Err(e) => {
                    let e = RepairError::from(e);
                    self.failed(entry, &e).await;
                    return Err(e);
                }
            }
        }
        Err(RepairError::Data(format!(
            "{} (refused {} times in a row, [repair] max_attempts: something else keeps writing \
             flavor {flavor_id}'s extra specs)",
            refused.map(|e| e.to_string()).unwrap_or_default(),
            self.max_attempts
        )))
    }

    /// The rows of `nova_api.flavor_extra_specs` behind the values in `before` (those Nova's
    /// API showed), with their timestamps, for the before-image; None when steward's account
    /// may not read that table (a rollback then puts the values back with new timestamps, and
    /// says so).
    async fn extra_spec_rows(
        &self,
        flavor_id: &str,
        before: &BTreeMap<String, Option<String>>,
    ) -> Result<Option<Vec<ExtraSpecRow>>, RepairError> {
        let keys: Vec<&str> = before.keys().map(String::as_str).collect();
        match self
            .clients
            .db
            .flavor_extra_spec_rows(flavor_id, &keys)
            .await
        {
            Ok(rows) => Ok(Some(
                rows.into_values()
                    .filter(|r| before.get(&r.key) == Some(&Some(r.value.clone())))
                    .collect(),
            )),
            Err(e) if e.is_no_access() => {
                tracing::warn!(flavor = %flavor_id, error = %e, "cannot read nova_api.flavor_extra_specs: a rollback of this flavor's extra specs will leave them new timestamps");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn rewrite_instance_flavor(
        &self,
        node: &str,
        step: &Step,
        instance: &str,
        cell: &str,
        specs: &BTreeMap<String, String>,
    ) -> Result<(), RepairError> {
        let row = NovaRow::Flavor { cell, instance };
        self.rewrite_row(node, step, row, specs).await
    }

    async fn rewrite_request_spec(
        &self,
        node: &str,
        step: &Step,
        instance: &str,
        specs: &BTreeMap<String, String>,
    ) -> Result<(), RepairError> {
        self.rewrite_row(node, step, NovaRow::RequestSpec { instance }, specs)
            .await
    }

    /// Set `specs` in a row of Nova's: read, rewrite, journal (text and `updated_at`), then a
    /// compare-and-swap; read again when the row changed meanwhile. An instance without an
    /// `instance_extra` row is gone; one without a request spec has nothing to rewrite.
    async fn rewrite_row(
        &self,
        node: &str,
        step: &Step,
        row: NovaRow<'_>,
        specs: &BTreeMap<String, String>,
    ) -> Result<(), RepairError> {
        let db = &self.clients.db;
        for _ in 0..self.max_attempts {
            let Some(current) = row.read(db).await? else {
                return match row {
                    NovaRow::Flavor { instance, .. } => Err(RepairError::Gone(format!(
                        "instance {instance} has no instance_extra row any more (deleted?)"
                    ))),
                    NovaRow::RequestSpec { .. } => Ok(()),
                };
            };
            let Some(new) = row.rewrite(&current.text, specs)? else {
                return Ok(());
            };
            let entry = self
                .before(
                    node,
                    step,
                    Some(&row_image_bytes(&current)),
                    Some(new.as_bytes()),
                )
                .await?;
            let swap = row.swap(db, &current.text, &new, &Stamp::Now).await;
            if self.swapped(entry, &new, swap).await? {
                return Ok(());
            }
        }
        Err(self.lost_races(&row.describe()))
    }

    async fn shrink_allocation(
        &self,
        node: &str,
        step: &Step,
        consumer: &str,
        provider: &str,
        class: &str,
    ) -> Result<(), RepairError> {
        let placement = &self.clients.placement;
        for _ in 0..self.max_attempts {
            let current = placement.allocations(consumer).await?;
            let Some(here) = current.allocations.get(provider) else {
                return Ok(()); // the consumer left the node
            };
            let want: BTreeMap<String, i64> = [(class.to_string(), 1)].into_iter().collect();
            if here.resources == want {
                return Ok(());
            }
            let mut new: BTreeMap<String, BTreeMap<String, i64>> = current
                .allocations
                .iter()
                .map(|(rp, r)| (rp.clone(), r.resources.clone()))
                .collect();
            new.insert(provider.to_string(), want);
            let owner = ConsumerOwner {
                project_id: current.project_id.clone().unwrap_or_default(),
                user_id: current.user_id.clone().unwrap_or_default(),
                consumer_generation: current.consumer_generation,
                consumer_type: consumer_type(current.consumer_type.as_deref()),
            };
            let before = json!({
                "allocations": current.allocations.iter().map(|(rp, r)| (rp.clone(), json!({"resources": r.resources}))).collect::<serde_json::Map<String, Value>>(),
                "project_id": owner.project_id,
                "user_id": owner.user_id,
                "consumer_type": owner.consumer_type,
            });
            let intended = to_json_bytes(&json!({ "allocations": new }));
            let entry = self
                .before(node, step, Some(&to_json_bytes(&before)), Some(&intended))
                .await?;
            match placement.set_allocations(consumer, &new, &owner).await {
                Ok(()) => {
                    self.landed();
                    return self.done(entry, Some(&intended)).await;
                }
                Err(e) if is_concurrent_update(&e) => {
                    self.failed(entry, &RepairError::from(e)).await;
                }
                Err(e) => {
                    let e = RepairError::from(e);
                    self.failed(entry, &e).await;
                    return Err(e);
                }
            }
        }
        Err(self.lost_races(&format!("consumer {consumer}'s allocation")))
    }

    async fn check_usage(&self, provider: &str, class: &str) -> Result<(), RepairError> {
        let placement = &self.clients.placement;
        let usages = placement.usages(provider).await?;
        let allocs = placement.provider_allocations(provider).await?;
        let expected = allocs.allocations.len() as i64;
        let other: Vec<String> = usages
            .usages
            .iter()
            .filter(|(rc, n)| *rc != class && **n != 0)
            .map(|(rc, n)| format!("{rc}={n}"))
            .collect();
        let got = usages.usages.get(class).copied().unwrap_or(0);
        if !other.is_empty() || got != expected {
            return Err(RepairError::Data(format!(
                "provider {provider} uses {class}={got} (expected {expected}){}",
                if other.is_empty() {
                    String::new()
                } else {
                    format!(" and still {}", other.join(", "))
                }
            )));
        }
        Ok(())
    }

    /// Read the provider's inventory, let `change` decide the new one (None: nothing to do),
    /// journal, write with the generation just read; again on `concurrent_update`.
    async fn write_inventory(
        &self,
        node: &str,
        step: &Step,
        provider: &str,
        change: impl Fn(&BTreeMap<String, Inventory>) -> Option<BTreeMap<String, Inventory>>,
    ) -> Result<(), RepairError> {
        let placement = &self.clients.placement;
        for attempt in 0..self.max_attempts {
            let current = placement.inventories(provider).await?;
            let Some(new) = change(&current.inventories) else {
                return Ok(());
            };
            let entry = self
                .before(
                    node,
                    step,
                    Some(&to_json_bytes(&json!({"inventories": current.inventories}))),
                    Some(&to_json_bytes(&json!({ "inventories": new }))),
                )
                .await?;
            match placement
                .set_inventories(provider, current.generation, &new)
                .await
            {
                Ok(after) => {
                    self.landed();
                    let after = to_json_bytes(&json!({"inventories": after.inventories}));
                    return self.done(entry, Some(&after)).await;
                }
                Err(e) if is_concurrent_update(&e) => {
                    self.failed(entry, &RepairError::from(e)).await;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt + 1))).await;
                }
                Err(e) if is_inventory_in_use(&e) => {
                    let e = RepairError::Data(format!(
                        "provider {provider}: Placement refused the inventory because a class is \
                         still allocated (placement.inventory.inuse): a consumer was placed \
                         meanwhile; run the repair again"
                    ));
                    self.failed(entry, &e).await;
                    return Err(e);
                }
                Err(e) => {
                    let e = RepairError::from(e);
                    self.failed(entry, &e).await;
                    return Err(e);
                }
            }
        }
        Err(self.lost_races(&format!("provider {provider}'s inventory")))
    }

    fn lost_races(&self, what: &str) -> RepairError {
        RepairError::Data(format!(
            "{what} changed under steward {} times in a row; something else is writing it. Run \
             the repair again later ([repair] max_attempts)",
            self.max_attempts
        ))
    }
}

/// The journal's before-image of a flavor's extra specs: the value of each key the write sets
/// as Nova's API showed it (None: no such key) and the rows of `nova_api.flavor_extra_specs`
/// behind them, `created_at` and `updated_at` included.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FlavorSpecsImage {
    pub flavor_id: String,
    pub extra_specs: BTreeMap<String, Option<String>>,
    /// None: the journal was written before the rows were kept, or steward could not read them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<ExtraSpecRow>>,
}

/// A flavor's before-image as the journal holds it, with or without its rows (`rows` None).
pub fn parse_flavor_specs_image(bytes: &[u8]) -> Option<FlavorSpecsImage> {
    let img: Value = serde_json::from_slice(bytes).ok()?;
    let extra_specs = img
        .get("extra_specs")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
                .collect()
        })
        .unwrap_or_default();
    let rows = match img.get("rows") {
        None | Some(Value::Null) => None,
        Some(r) => Some(serde_json::from_value(r.clone()).ok()?),
    };
    Some(FlavorSpecsImage {
        flavor_id: img
            .get("flavor_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        extra_specs,
        rows,
    })
}

/// The journal's before-image of a row of Nova's: its text and its `updated_at`.
pub fn row_image_bytes(row: &RowImage) -> Vec<u8> {
    to_json_bytes(row)
}

/// A before-image of a row of Nova's as the journal holds it: the text and `updated_at`
/// (`Some`), or, from a journal written before `updated_at` was kept, the text alone (`None`).
pub fn parse_row_image(bytes: &[u8]) -> Option<(String, Option<Option<String>>)> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wire {
        text: String,
        updated_at: Option<String>,
    }
    if let Ok(w) = serde_json::from_slice::<Wire>(bytes) {
        return Some((w.text, Some(w.updated_at)));
    }
    String::from_utf8(bytes.to_vec()).ok().map(|t| (t, None))
}

/// The custom class's inventory while repairing: Ironic's shape (total 1, max_unit 1) with
/// `reserved: 0`, so an in-use node's allocation fits; nova-compute sets reserved back.
fn custom_inventory(existing: Option<&Inventory>) -> Inventory {
    let mut inv = existing.cloned().unwrap_or(Inventory {
        total: 1,
        reserved: 0,
        min_unit: 1,
        max_unit: 1,
        step_size: 1,
        allocation_ratio: 1.0,
    });
    inv.reserved = 0;
    inv
}

/// Placement 1.38+ wants an upper-case consumer type on a write; an `unknown` consumer (created
/// before 1.38) is written as an instance, which is what Nova's own heal does.
pub fn consumer_type(t: Option<&str>) -> String {
    match t {
        Some(t)
            if !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
        {
            t.to_string()
        }
        _ => "INSTANCE".to_string(),
    }
}
