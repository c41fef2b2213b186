//! The Ironic inventory repair: `plan` (pure: facts -> ordered steps), `facts` (gathers them
//! from Ironic, Placement and Nova's databases), `apply` (journaled, resumable, and rollback).
//! `verify` is a plan that must come out empty.

pub mod apply;
pub mod cli;
pub mod facts;
pub mod plan;

use std::sync::Arc;

use crate::config::Settings;
use crate::novadb::NovaDb;
use crate::openstack;

pub use facts::Clients;

/// Everything a repair can fail with; each message names the object and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The operator asked for something that does not exist (exit 127).
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    OpenStack(#[from] openstack::Error),
    #[error(transparent)]
    NovaDb(#[from] crate::novadb::NovaDbError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// An object went away or changed between read and write.
    #[error("{0}")]
    Gone(String),
    /// Data that is not what Nova or Placement should hold.
    #[error("{0}")]
    Data(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("cannot encode or decode a journal image: {0}")]
    Json(#[from] serde_json::Error),
}

/// The clients of `[openstack] cloud` and `[repair]`. Nova's databases: `[repair] api_database`
/// is required; cells come from its `cell_mappings` unless `[repair] cell_databases` names them.
pub async fn connect(settings: &Settings, cell: Option<&str>) -> Result<Clients, RepairError> {
    let r = &settings.repair;
    let Some(api) = &r.api_database else {
        return Err(RepairError::Input(
            "[repair] api_database is not set: give steward Nova's API database \
             (mysql://USER:PASSWORD@HOST/nova_api), e.g. STEWARD__REPAIR__API_DATABASE"
                .into(),
        ));
    };
    let cloud = openstack::cloud::load(settings.openstack.cloud.as_deref())
        .map_err(openstack::Error::from)?;
    let options = openstack::session::SessionOptions::for_cloud(&cloud);
    let session = Arc::new(openstack::session::Session::new(cloud, options)?);
    let overrides = r
        .cell_databases
        .iter()
        .map(|(k, u)| (k.clone(), mysql_url(u.expose())))
        .collect();
    let pool = (r.concurrency as u32).clamp(1, 16) + 1;
    let db = NovaDb::connect(&mysql_url(api.expose()), &overrides, cell, pool).await?;
    Ok(Clients {
        ironic: openstack::ironic::Ironic::new(session.clone()),
        placement: openstack::placement::Placement::new(session.clone()),
        nova: openstack::nova::Nova::new(session),
        db,
        concurrency: r.concurrency.max(1),
    })
}

/// sqlx's MySQL driver knows `mysql://` only.
fn mysql_url(url: &str) -> String {
    match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_string(),
    }
}
