//! The two rows of Nova's that hold an instance's flavor, behind one face: its embedded
//! flavors (`instance_extra.flavor`, in its cell) and its request spec's flavor
//! (`request_specs.spec`, in the API database). Steps, rollback and resume read, rewrite and
//! swap either the same way.

use std::collections::BTreeMap;

use crate::novadb::{InstanceFlavors, NovaDb, RequestSpecPrimitive, RowImage, Stamp};

use super::RepairError;

/// Which of an instance's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NovaRow<'a> {
    /// `instance_extra.flavor` of `instance` in `cell`.
    Flavor { cell: &'a str, instance: &'a str },
    /// `request_specs.spec` of `instance`.
    RequestSpec { instance: &'a str },
}

fn data(e: serde_json::Error) -> RepairError {
    RepairError::Data(e.to_string())
}

impl NovaRow<'_> {
    pub async fn read(&self, db: &NovaDb) -> Result<Option<RowImage>, RepairError> {
        Ok(match self {
            NovaRow::Flavor { cell, instance } => db.instance_flavor_row(cell, instance).await?,
            NovaRow::RequestSpec { instance } => db.request_spec_row(instance).await?,
        })
    }

    pub async fn swap(
        &self,
        db: &NovaDb,
        expected: &str,
        new: &str,
        stamp: &Stamp,
    ) -> Result<bool, crate::novadb::NovaDbError> {
        match self {
            NovaRow::Flavor { cell, instance } => {
                db.swap_instance_flavor(cell, instance, expected, new, stamp)
                    .await
            }
            NovaRow::RequestSpec { instance } => {
                db.swap_request_spec(instance, expected, new, stamp).await
            }
        }
    }

    /// `text` with `specs` set in every flavor copy the row holds; None when nothing changes.
    pub fn rewrite(
        &self,
        text: &str,
        specs: &BTreeMap<String, String>,
    ) -> Result<Option<String>, RepairError> {
        match self {
            NovaRow::Flavor { instance, .. } => {
                let mut parsed = InstanceFlavors::parse(text).map_err(|e| {
                    RepairError::Data(format!(
                        "instance {instance}: instance_extra.flavor is not Nova's flavor JSON \
                         ({e})"
                    ))
                })?;
                let mut changed = false;
                for f in parsed.all_mut() {
                    changed |= f.set_extra_specs(specs);
                }
                Ok(changed.then(|| parsed.to_text()))
            }
            NovaRow::RequestSpec { instance } => {
                let mut parsed = RequestSpecPrimitive::parse(text).map_err(|e| {
                    RepairError::Data(format!(
                        "instance {instance}: request_specs.spec is not a RequestSpec ({e})"
                    ))
                })?;
                let changed = parsed
                    .flavor_mut()
                    .map(|f| f.set_extra_specs(specs))
                    .unwrap_or(false);
                Ok(changed.then(|| parsed.to_text()))
            }
        }
    }

    /// `current` (Nova wrote it since the repair) with only the extra specs of `old` put back.
    pub fn restore_specs(&self, current: &str, old: &str) -> Result<String, RepairError> {
        match self {
            NovaRow::Flavor { .. } => {
                let mut now = InstanceFlavors::parse(current).map_err(data)?;
                let before = InstanceFlavors::parse(old).map_err(data)?;
                for (n, b) in [
                    (&mut now.cur, &before.cur),
                    (&mut now.old, &before.old),
                    (&mut now.new, &before.new),
                ] {
                    if let (Some(Some(n)), Some(Some(b))) = (n.as_mut(), b.as_ref()) {
                        n.restore_extra_specs(b);
                    }
                }
                Ok(now.to_text())
            }
            NovaRow::RequestSpec { .. } => {
                let mut now = RequestSpecPrimitive::parse(current).map_err(data)?;
                let before = RequestSpecPrimitive::parse(old).map_err(data)?;
                if let (Some(Some(n)), Some(Some(b))) =
                    (now.data.flavor.as_mut(), before.data.flavor.as_ref())
                {
                    n.restore_extra_specs(b);
                }
                Ok(now.to_text())
            }
        }
    }

    /// How messages name it.
    pub fn describe(&self) -> String {
        match self {
            NovaRow::Flavor { instance, .. } => format!("instance {instance}'s flavor"),
            NovaRow::RequestSpec { instance } => format!("request spec {instance}"),
        }
    }
}
