//! Settling a killed run's `pending` journal entries when the next apply resumes it: each one is
//! read back from the real state. The write landed: `done`. It did not, and the object is as
//! the before-image says: the write is made again, then `done`. The object is neither (someone
//! else wrote it since): `failed`, and the plan, which reads everything again, decides.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::novadb::Stamp;
use crate::openstack::placement::Inventory;
use crate::store::{JournalEntry, Store};

use super::facts::Clients;
use super::rollback::{allocations_of, held, instance_cell, object_id, owner_from_image};
use super::rows::NovaRow;
use super::steps::parse_row_image;
use super::RepairError;

/// How an entry was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The write had landed.
    Landed,
    /// The write had not landed and was made again.
    Redone,
    /// The object changed since; nothing written.
    Superseded,
}

/// Settle every `pending` entry of `run_id`; returns how each went, by entry key.
pub async fn settle_pending(
    c: &Clients,
    store: &Store,
    run_id: &str,
) -> Result<Vec<(String, Settled)>, RepairError> {
    let journal = store.repair_journal(run_id).await?;
    let mut out = Vec::new();
    for e in journal.iter().filter(|e| e.state == "pending") {
        let settled = match settle(c, e).await {
            Ok(s) => s,
            // The object is gone (an instance deleted, a flavor removed): nothing to redo.
            Err(RepairError::Gone(_)) => Settled::Superseded,
            Err(e) => return Err(e),
        };
        let (state, message) = match settled {
            Settled::Landed => ("done", "settled on resume: the write had landed"),
            Settled::Redone => (
                "done",
                "settled on resume: the write had not landed; made again",
            ),
            Settled::Superseded => (
                "failed",
                "settled on resume: the object changed since; the plan read it again",
            ),
        };
        store
            .repair_journal_mark(&e.entry, state, e.after_image.as_deref(), Some(message))
            .await?;
        tracing::info!(entry = %e.entry, action = %e.action, object = %e.object, state, "pending journal entry settled");
        out.push((e.entry.clone(), settled));
    }
    Ok(out)
}

fn image(bytes: &Option<Vec<u8>>) -> Result<Value, RepairError> {
    let b = bytes
        .as_deref()
        .ok_or_else(|| RepairError::Data("a pending journal entry without images".into()))?;
    Ok(serde_json::from_slice(b)?)
}

async fn settle(c: &Clients, e: &JournalEntry) -> Result<Settled, RepairError> {
    let id = object_id(&e.object);
    match e.action.as_str() {
        "rewrite_instance_flavor" | "rewrite_request_spec" => settle_row(c, e, id).await,
        "set_flavor_extra_specs" => {
            let intended: BTreeMap<String, String> =
                serde_json::from_value(image(&e.after_image)?)?;
            let current = c
                .nova
                .flavors()
                .await?
                .into_iter()
                .find(|f| f.id == id)
                .ok_or_else(|| RepairError::Gone(format!("flavor {id} no longer exists")))?;
            if intended
                .iter()
                .all(|(k, v)| current.extra_specs.get(k) == Some(v))
            {
                return Ok(Settled::Landed);
            }
            c.nova.set_flavor_extra_specs(id, &intended).await?;
            Ok(Settled::Redone)
        }
        "add_custom_inventory" | "set_custom_only_inventory" => settle_inventory(c, e, id).await,
        "shrink_allocation" => settle_allocation(c, e, id).await,
        "set_node_resource_class" => {
            let intended = image(&e.after_image)?;
            let class = intended.get("resource_class").and_then(Value::as_str);
            let node = c.ironic.node(id).await?;
            match (node.resource_class.as_deref(), class) {
                (Some(now), Some(want)) if now == want => Ok(Settled::Landed),
                (None | Some(""), Some(want)) => {
                    c.ironic.set_resource_class(id, Some(want)).await?;
                    Ok(Settled::Redone)
                }
                _ => Ok(Settled::Superseded),
            }
        }
        other => Err(RepairError::Data(format!(
            "journal action {other} cannot be settled"
        ))),
    }
}

async fn settle_row(c: &Clients, e: &JournalEntry, id: &str) -> Result<Settled, RepairError> {
    let intended = e
        .after_image
        .as_deref()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .ok_or_else(|| RepairError::Data("a pending journal entry without images".into()))?;
    let (before, _) = e
        .before_image
        .as_deref()
        .and_then(parse_row_image)
        .ok_or_else(|| RepairError::Data("a pending journal entry without images".into()))?;
    let cell = if e.action == "rewrite_instance_flavor" {
        instance_cell(c, id).await?
    } else {
        String::new()
    };
    let row = if cell.is_empty() {
        NovaRow::RequestSpec { instance: id }
    } else {
        NovaRow::Flavor {
            cell: &cell,
            instance: id,
        }
    };
    let Some(current) = row.read(&c.db).await? else {
        return Ok(Settled::Superseded);
    };
    if current.text == intended {
        return Ok(Settled::Landed);
    }
    if current.text != before {
        return Ok(Settled::Superseded);
    }
    Ok(if row.swap(&c.db, &before, &intended, &Stamp::Now).await? {
        Settled::Redone
    } else {
        Settled::Superseded
    })
}

async fn settle_inventory(c: &Clients, e: &JournalEntry, id: &str) -> Result<Settled, RepairError> {
    let inventories = |v: Value| -> Result<Value, RepairError> {
        let m: BTreeMap<String, Inventory> =
            serde_json::from_value(v.get("inventories").cloned().unwrap_or(Value::Null))?;
        Ok(serde_json::to_value(m)?)
    };
    let intended = inventories(image(&e.after_image)?)?;
    let before = inventories(image(&e.before_image)?)?;
    let current = c.placement.inventories(id).await?;
    let now = serde_json::to_value(&current.inventories)?;
    if now == intended {
        return Ok(Settled::Landed);
    }
    if now != before {
        return Ok(Settled::Superseded);
    }
    let new: BTreeMap<String, Inventory> = serde_json::from_value(intended)?;
    c.placement
        .set_inventories(id, current.generation, &new)
        .await?;
    Ok(Settled::Redone)
}

async fn settle_allocation(
    c: &Clients,
    e: &JournalEntry,
    id: &str,
) -> Result<Settled, RepairError> {
    let before_img = image(&e.before_image)?;
    let intended = allocations_of(&image(&e.after_image)?);
    let before = allocations_of(&before_img);
    let current = c.placement.allocations(id).await?;
    let now = held(&current);
    if now == intended {
        return Ok(Settled::Landed);
    }
    if now != before {
        return Ok(Settled::Superseded);
    }
    let owner = owner_from_image(&before_img, current.consumer_generation);
    c.placement.set_allocations(id, &intended, &owner).await?;
    Ok(Settled::Redone)
}
