//! The Ironic inventory repair: `plan` (pure: facts -> ordered steps), `facts` (gathers them
//! from Ironic, Placement and Nova's databases), `apply` (journaled, resumable, and rollback).
//! `verify` is a plan that must come out empty.

pub mod apply;
pub mod cli;
pub mod facts;
pub mod plan;
pub mod settings;

use std::sync::Arc;

use crate::config::Settings;
use crate::novadb::NovaDb;
use crate::openstack;
use crate::peerclock::{Peer, PeerClock};

pub use facts::Clients;
pub use settings::RepairSettings;

/// Everything a repair can fail with; each message names the object and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The operator asked for something that does not exist (exit 127).
    #[error("{0}")]
    Input(String),
    /// A call to Placement, Nova or Ironic failed; the message starts with the service.
    #[error("{}", openstack_message(.0))]
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

/// An OpenStack error with the service it came from in front when the error's own text does not
/// name it (an error status names only the URL, which may be a proxy's or a load balancer's).
fn openstack_message(e: &openstack::Error) -> String {
    match e {
        openstack::Error::Status(s) => {
            let service = match s.service.as_str() {
                "placement" => "Placement",
                "compute" => "Nova",
                "baremetal" => "Ironic",
                "identity" => "Keystone",
                other => other,
            };
            format!("{service}: {e}")
        }
        _ => e.to_string(),
    }
}

impl RepairError {
    /// A peer steward depends on is not answering (no answer, a 5xx, Nova's database or the
    /// journal unreachable), as opposed to something wrong with one object: the run stops
    /// starting nodes, as every next node would fail the same way.
    pub fn is_outage(&self) -> bool {
        match self {
            RepairError::OpenStack(openstack::Error::Transport { .. }) => true,
            RepairError::OpenStack(openstack::Error::Status(s)) => s.status >= 500,
            RepairError::NovaDb(crate::novadb::NovaDbError::Connect { .. }) => true,
            RepairError::NovaDb(crate::novadb::NovaDbError::Sql { source, .. }) => {
                crate::store::is_connection_lost(source)
            }
            RepairError::Store(_) => true,
            _ => false,
        }
    }
}

/// What an operator does after a run stopped part way: the journal holds every write.
pub const RESUME_HINT: &str = "the journal holds every write made so far; once the service \
     answers again, run `steward repair apply` with the same selection to finish the job (or \
     `steward repair rollback RUN_ID` to undo it)";

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
    // Started first, so that a run's wall time includes connecting.
    let clock = Arc::new(PeerClock::new());
    let cloud = openstack::cloud::load(settings.openstack.cloud.as_deref())
        .map_err(openstack::Error::from)?;
    let options = openstack::session::SessionOptions::for_cloud(&cloud);
    let session =
        Arc::new(openstack::session::Session::new(cloud, options)?.with_clock(clock.clone()));
    let overrides = r
        .cell_databases
        .iter()
        .map(|(k, u)| (k.clone(), mysql_url(u.expose())))
        .collect();
    let pool = (r.concurrency as u32).clamp(1, 16) + 1;
    let connecting = clock.start(Peer::NovaDb);
    let db = NovaDb::connect(&mysql_url(api.expose()), &overrides, cell, pool)
        .await?
        .with_clock(clock.clone());
    drop(connecting);
    Ok(Clients {
        ironic: openstack::ironic::Ironic::new(session.clone()),
        placement: openstack::placement::Placement::new(session.clone()),
        nova: openstack::nova::Nova::new(session),
        db,
        concurrency: r.concurrency.max(1),
        clock,
    })
}

/// sqlx's MySQL driver knows `mysql://` only.
fn mysql_url(url: &str) -> String {
    match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, placement_code: Option<&str>) -> RepairError {
        RepairError::OpenStack(openstack::Error::Status(Box::new(openstack::StatusError {
            service: "placement".into(),
            method: "PUT".into(),
            url: "http://127.0.0.1:8778/resource_providers/n-1/inventories".into(),
            status: code,
            code: placement_code.map(Into::into),
            message: "x".into(),
            request_id: None,
        })))
    }

    /// A peer down stops the run; a refusal about one object (409, 400, 404, bad data) fails
    /// that node only and the run goes on.
    #[test]
    fn outages_are_told_from_refusals() {
        assert!(status(500, None).is_outage());
        assert!(status(503, None).is_outage());
        assert!(status(504, None).is_outage());
        assert!(!status(409, Some("placement.inventory.inuse")).is_outage());
        assert!(!status(400, None).is_outage());
        assert!(!status(404, None).is_outage());
        assert!(RepairError::OpenStack(openstack::Error::Transport {
            service: "placement".into(),
            method: "GET".into(),
            url: "u".into(),
            message: "no answer within 3s".into(),
        })
        .is_outage());
        let db = |source| {
            RepairError::NovaDb(crate::novadb::NovaDbError::Sql {
                what: "cell cell1".into(),
                source,
            })
        };
        assert!(db(sqlx::Error::PoolTimedOut).is_outage());
        assert!(db(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        )))
        .is_outage());
        assert!(!db(sqlx::Error::RowNotFound).is_outage());
        assert!(!RepairError::Gone("flavor 7 no longer exists".into()).is_outage());
        assert!(!RepairError::Data("not Nova's flavor JSON".into()).is_outage());
    }
}
