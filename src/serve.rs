//! `steward serve`: wires the store, the background jobs, the rebalance and recovery loops and
//! the HTTP API from the validated configuration.

use std::process::ExitCode;

use crate::api::settings::AuthStrategy;
use crate::api::{self, AppState};
use crate::cluster::settings::ClusterSource;
use crate::cluster::ClusterHandle;
use crate::config::Validated;
use crate::jobs::{Jobs, NovaSource};
use crate::openstack;
use crate::rebalance::service;
use crate::store::Store;
use crate::telemetry::prometheus::Prometheus;

/// The Nova client the cluster refresh reads through, when `[cluster] source = "nova"`.
fn nova_source(v: &Validated) -> anyhow::Result<Option<NovaSource>> {
    let c = &v.settings.cluster;
    if c.source != ClusterSource::Nova {
        return Ok(None);
    }
    let cloud = openstack::cloud::load(v.settings.openstack.cloud.as_deref())?;
    tracing::info!(cloud = %cloud.describe(), "cluster view from Nova");
    let options = openstack::session::SessionOptions::for_cloud(&cloud);
    let session = std::sync::Arc::new(openstack::session::Session::new(cloud, options)?);
    let nova =
        openstack::nova::Nova::new(session).with_list_options(openstack::nova::ListOptions {
            page_size: c.page_size,
            ..Default::default()
        });
    Ok(Some(NovaSource {
        nova: std::sync::Arc::new(nova),
        role_key: v.settings.roles.metadata_key.clone(),
        default_az: c.default_availability_zone.clone(),
        every: std::time::Duration::from_secs_f64(c.refresh_seconds),
    }))
}

/// The validator of callers' Keystone tokens, when `[auth] strategy = "keystone"`: steward's
/// own `[openstack] cloud` session asks Keystone, answers are cached `[auth] cache_seconds`.
fn keystone_validator(
    v: &Validated,
) -> anyhow::Result<Option<std::sync::Arc<openstack::keystone::CachedValidator>>> {
    let auth = &v.settings.auth;
    if auth.strategy != AuthStrategy::Keystone {
        return Ok(None);
    }
    let cloud = openstack::cloud::load(v.settings.openstack.cloud.as_deref())?;
    tracing::info!(cloud = %cloud.describe(), cache_seconds = auth.cache_seconds, "tokens validated by Keystone");
    let mut options = openstack::session::SessionOptions::for_cloud(&cloud);
    // A caller waits on this answer: a Keystone 503 is passed on at once, not waited out.
    options.retries_on_503 = 0;
    let session = std::sync::Arc::new(openstack::session::Session::new(cloud, options)?);
    Ok(Some(std::sync::Arc::new(
        openstack::keystone::CachedValidator::new(
            openstack::keystone::Keystone::new(session),
            std::time::Duration::from_secs_f64(auth.cache_seconds),
            auth.cache_size,
        ),
    )))
}

/// `steward serve`: the store, the background jobs, the rebalance loop and the HTTP API.
pub fn serve(v: Validated) -> ExitCode {
    let workers = v
        .settings
        .server
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let result: anyhow::Result<()> = actix_web::rt::System::new().block_on(async move {
        let db = &v.settings.database;
        let store = Store::connect(&db.url, db.max_connections).await?;
        if db.auto_upgrade {
            store.upgrade().await?;
        } else {
            store.check_current().await?;
        }
        let view = store.load_view().await?;
        tracing::info!(
            database = %db.url,
            hosts = view.hosts.len(),
            vms = view.vms.len(),
            auth = ?v.settings.auth.strategy,
            "state loaded"
        );
        let listen = v.listen;
        let prometheus = Prometheus::new(&v.settings.prometheus).map_err(|e| anyhow::anyhow!(e))?;
        let nova = nova_source(&v)?;
        let keystone = keystone_validator(&v)?;
        let v_rebalance = service::LoopSettings::of(&v);
        let mut state = AppState::new(v, store.clone(), ClusterHandle::new(view));
        if let Some(k) = keystone {
            state = state.with_keystone(k);
        }
        Jobs {
            prometheus,
            nova,
            store: store.clone(),
            cluster: state.cluster.clone(),
            metrics: state.metrics.clone(),
        }
        .spawn();
        service::spawn_loop(
            &v_rebalance,
            &store,
            state.metrics.clone(),
            state.profiles.clone(),
            state.cluster.clone(),
        )?;
        crate::recover::cli::spawn_loop(&state.settings, store.clone(), state.metrics.clone())?;
        state.open_grants.clone().spawn_refresh(store.clone());
        api::serve(state, listen, workers).await?;
        store.close().await;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("steward: {e:#}");
            ExitCode::from(1)
        }
    }
}
