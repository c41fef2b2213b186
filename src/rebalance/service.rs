//! The rebalancer as a service: `serve`'s loop (plan at most every `interval_seconds`, then
//! execute, as the leader) and one cycle for `steward rebalance run-once`, both over the
//! configured cloud, hooks and journal.

use std::sync::Arc;

use super::cycle::{CycleError, CycleOutcome, Planner};
use super::execute::{lead_and_run_after, CycleReport, Executor};
use super::hooks::settings::HooksSettings;
use super::settings::{ExecutionSettings, RebalanceSettings};
use super::Mode as RebalanceMode;
use super::{hooks, leader};
use crate::config::Validated;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::{openstack, unix_now};

/// What the service's execution loop needs from the settings (`AppState` takes the rest).
pub struct LoopSettings {
    mode: RebalanceMode,
    nova: anyhow::Result<openstack::nova::Nova>,
    hooks: HooksSettings,
    execution: ExecutionSettings,
    planner: PlannerSettings,
}

/// What the planner needs from the settings, besides Nova and the profiles.
#[derive(Clone)]
pub struct PlannerSettings {
    opts: crate::scoring::Options,
    cfg: RebalanceSettings,
    role_key: String,
    default_az: String,
}

impl PlannerSettings {
    fn of(v: &Validated) -> PlannerSettings {
        PlannerSettings {
            opts: v.scoring_options(),
            cfg: v.settings.rebalance.clone(),
            role_key: v.settings.roles.metadata_key.clone(),
            default_az: v.settings.cluster.default_availability_zone.clone(),
        }
    }

    fn planner(
        self,
        nova: openstack::nova::Nova,
        profiles: Arc<crate::scoring::ProfileSet>,
        metrics: Metrics,
    ) -> Planner {
        // Placement through Nova's session: one login, one catalog.
        let placement = openstack::placement::Placement::new(nova.session().clone());
        Planner {
            placement: Arc::new(placement),
            nova: Arc::new(nova),
            profiles,
            opts: self.opts,
            cfg: self.cfg,
            role_key: self.role_key,
            default_az: self.default_az,
            metrics: Some(metrics),
        }
    }
}

impl LoopSettings {
    pub fn of(v: &Validated) -> LoopSettings {
        LoopSettings {
            mode: v.settings.rebalance.mode,
            nova: nova(v),
            hooks: v.settings.rebalance.hooks.clone(),
            execution: v.settings.rebalance.execution.clone(),
            planner: PlannerSettings::of(v),
        }
    }
}

/// `serve`'s rebalance loop: every `cycle_seconds`, as the leader (one replica at a time),
/// plan (at most every `[rebalance] interval_seconds`: detect, plan, journal) and then
/// execute. In `dry-run` it plans and starts nothing (actions already under way are carried
/// to their end); without a cloud to read, dry-run has no planner and the service runs on.
pub fn spawn_loop(
    l: &LoopSettings,
    store: &Store,
    metrics: Metrics,
    profiles: Arc<crate::scoring::ProfileSet>,
    cluster: Arc<crate::cluster::ClusterHandle>,
) -> anyhow::Result<()> {
    let nova = match &l.nova {
        Ok(n) => n.clone(),
        Err(e) if l.mode == RebalanceMode::DryRun => {
            // Expected on the embedded default (no cloud configured): not a fault.
            tracing::info!(error = %format!("{e:#}"), "[rebalance] dry-run: no cloud to plan from; the rebalancer is off");
            return Ok(());
        }
        Err(e) => anyhow::bail!("[rebalance] mode = {:?} needs Nova: {e:#}", l.mode.as_str()),
    };
    let start_new = l.mode != RebalanceMode::DryRun;
    let planner = l
        .planner
        .clone()
        .planner(nova.clone(), profiles, metrics.clone());
    let plan_every = l.planner.cfg.interval_seconds;
    let hooks =
        hooks::from_settings(&l.hooks).map_err(|e| anyhow::anyhow!("[rebalance.hooks]: {e}"))?;
    let every = std::time::Duration::from_secs_f64(l.execution.cycle_seconds);
    let executor = Arc::new(Executor::new(
        store.clone(),
        Arc::new(nova),
        hooks,
        l.execution.clone(),
        metrics,
    ));
    let store = store.clone();
    let holder = leader::holder_id();
    tracing::info!(mode = l.mode.as_str(), every_seconds = every.as_secs_f64(), %holder, "rebalance execution loop");
    let ttl = l.execution.lease_seconds;
    tokio::spawn(async move {
        match leader::describe(&store, ttl).await {
            Ok(election) => tracing::info!(%election, "rebalance leader election"),
            Err(e) => tracing::warn!(error = %e, "cannot tell which leader election runs"),
        }
        let mut next_plan = f64::NEG_INFINITY;
        loop {
            let now = unix_now();
            let first = async {
                if now < next_plan {
                    return None;
                }
                let fence = executor.leadership();
                Some(
                    planner
                        .run(&store, &cluster.snapshot(), now, fence.as_deref())
                        .await,
                )
            };
            match lead_and_run_after(&executor, &store, &holder, None, start_new, first).await {
                Ok(Some((planned, r))) => {
                    if let Some(planned) = planned.flatten() {
                        next_plan = now + plan_every;
                        match planned {
                            Ok(o) => tracing::info!(
                                candidates = o.candidates,
                                actions = o.plan.actions.len(),
                                skipped = o.plan.skipped.len(),
                                plan = o
                                    .journaled
                                    .as_ref()
                                    .map(|p| p.id.as_str())
                                    .unwrap_or("none"),
                                "rebalance planning cycle"
                            ),
                            Err(e) => {
                                tracing::warn!(error = %e, "rebalance planning cycle failed")
                            }
                        }
                    }
                    if !r.actions.is_empty() {
                        tracing::info!(
                            actions = r.actions.len(),
                            unfinished = r.unfinished(),
                            errors = r.errors.len(),
                            "rebalance cycle"
                        );
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "rebalance cycle could not start"),
            }
            tokio::time::sleep(every).await;
        }
    });
    Ok(())
}

/// The executor over the configured cloud and hooks.
pub fn executor(v: &Validated, store: &Store, metrics: Metrics) -> anyhow::Result<Executor> {
    let nova = Arc::new(nova(v)?);
    let hooks = hooks::from_settings(&v.settings.rebalance.hooks)
        .map_err(|e| anyhow::anyhow!("[rebalance.hooks]: {e}"))?;
    Ok(Executor::new(
        store.clone(),
        nova,
        hooks,
        v.settings.rebalance.execution.clone(),
        metrics,
    ))
}

/// Steward's Nova client over `[openstack] cloud`.
pub fn nova(v: &Validated) -> anyhow::Result<openstack::nova::Nova> {
    openstack::nova_client(v.settings.openstack.cloud.as_deref())
}

/// What one `run-once` cycle did: the planning outcome (or why there is none) and the
/// execution report (the planning error, if any, is among its errors).
pub struct RunOnce {
    pub planned: Result<CycleOutcome, CycleError>,
    pub report: CycleReport,
}

/// Why `run-once` did nothing.
#[derive(Debug)]
pub enum RunOnceError {
    /// Another replica holds the leadership (exit 4).
    NotLeader,
    /// The cycle could not start: settings, cloud, store (exit 1).
    Failed(String),
}

/// One cycle, as cron runs it: become the leader, plan, resume unfinished actions and run
/// approved ones, within `budget`. Dry-run plans and executes nothing new, but never leaves an
/// action under way behind.
pub async fn run_once(
    v: &Validated,
    store: &Store,
    budget: Option<std::time::Duration>,
) -> Result<RunOnce, RunOnceError> {
    let failed = |e: String| RunOnceError::Failed(e);
    let start_new = v.settings.rebalance.mode != RebalanceMode::DryRun;
    let metrics = Metrics::new();
    let executor =
        Arc::new(executor(v, store, metrics.clone()).map_err(|e| failed(format!("{e:#}")))?);
    // The same profiles `config check` validated (ProfileSet is built, not cloned).
    let profiles = crate::scoring::ProfileSet::build(
        &v.settings.profiles,
        &v.settings.scheduling.default_profile,
    )
    .map_err(|errors| {
        failed(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\nsteward: "),
        )
    })?;
    let nova = nova(v).map_err(|e| failed(format!("{e:#}")))?;
    let planner = PlannerSettings::of(v).planner(nova, Arc::new(profiles), metrics);
    // The view as serve keeps it: telemetry from the store, membership from Nova (the
    // planner lays it over). The detector's history comes from the store too.
    let view = store.load_view().await.map_err(|e| failed(e.to_string()))?;
    let holder = leader::holder_id();
    let first = async {
        let fence = executor.leadership();
        planner
            .run(store, &view, unix_now(), fence.as_deref())
            .await
    };
    let (planned, mut report) =
        match lead_and_run_after(&executor, store, &holder, budget, start_new, first).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(RunOnceError::NotLeader),
            Err(e) => return Err(failed(e.to_string())),
        };
    let planned = planned.unwrap_or_else(|| {
        Err(CycleError::Leadership(
            "lost the rebalance leadership while planning; the next run plans again".into(),
        ))
    });
    if let Err(e) = &planned {
        report.errors.push(e.to_string());
    }
    Ok(RunOnce { planned, report })
}

/// The planning part of run-once's JSON: the journaled plan's id, mode and state, the
/// number of candidates, the actions and skipped candidates (or `null` when planning failed;
/// the error is among `errors`).
pub fn plan_summary(planned: &Result<CycleOutcome, CycleError>) -> serde_json::Value {
    match planned {
        Ok(o) => serde_json::json!({
            "id": o.journaled.as_ref().map(|p| p.id.clone()),
            "state": o.journaled.as_ref().map(|p| p.state.as_str()),
            "mode": o.plan.mode.as_str(),
            "candidates": o.candidates,
            "actions": o.plan.actions,
            "skipped": o.plan.skipped,
        }),
        Err(_) => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validated(env: &[(&str, &str)]) -> Validated {
        let vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::config::load_from(None, &vars).unwrap_or_else(|p| panic!("{p:#?}"))
    }

    fn profiles(v: &Validated) -> crate::scoring::ProfileSet {
        let s = &v.settings;
        crate::scoring::ProfileSet::build(&s.profiles, &s.scheduling.default_profile).unwrap()
    }

    async fn store() -> Store {
        let url = crate::store::DatabaseUrl("sqlite::memory:".into());
        let store = Store::connect(&url, 1).await.unwrap();
        store.upgrade().await.unwrap();
        store
    }

    /// Log lines written while `f` runs, as text.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = buf.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[tokio::test]
    async fn dry_run_without_a_cloud_is_an_expected_state_logged_at_info() {
        let v = validated(&[]);
        let store = store().await;
        let l = LoopSettings::of(&v);
        let profiles = Arc::new(profiles(&v));
        let cluster = Arc::new(crate::cluster::ClusterHandle::new(Default::default()));
        let mut result = None;
        let text = logged(|| {
            result = Some(spawn_loop(&l, &store, Metrics::new(), profiles, cluster));
        });
        assert!(
            result.unwrap().is_ok(),
            "serve runs on without the rebalancer"
        );
        let line = text
            .lines()
            .find(|l| l.contains("no cloud to plan from"))
            .unwrap_or_else(|| panic!("the state is logged: {text}"));
        assert!(line.contains(" INFO "), "at info, not as a fault: {line}");
        assert!(!text.contains(" WARN "), "{text}");
    }

    #[tokio::test]
    async fn a_mode_that_moves_vms_refuses_to_start_without_nova() {
        let v = validated(&[("STEWARD__REBALANCE__MODE", "approve")]);
        let store = store().await;
        let l = LoopSettings::of(&v);
        let cluster = Arc::new(crate::cluster::ClusterHandle::new(Default::default()));
        let e = spawn_loop(&l, &store, Metrics::new(), Arc::new(profiles(&v)), cluster)
            .expect_err("approve needs Nova");
        assert!(
            e.to_string().contains("mode = \"approve\" needs Nova"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn run_once_without_a_cloud_fails_and_says_so() {
        let v = validated(&[]);
        let store = store().await;
        match run_once(&v, &store, None).await {
            Err(RunOnceError::Failed(m)) => {
                assert!(m.contains("no cloud is configured"), "{m}")
            }
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("planned without a cloud"),
        }
    }

    #[test]
    fn a_failed_planning_has_no_plan_summary() {
        let failed: Result<CycleOutcome, CycleError> =
            Err(CycleError::Leadership("lost it".into()));
        assert_eq!(plan_summary(&failed), serde_json::Value::Null);
    }
}
