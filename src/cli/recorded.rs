//! `steward simulate --from-prometheus`: reads the configured cloud (Nova's hypervisors,
//! aggregates, servers and server groups; allocation ratios from Placement) and each VM's CPU
//! series from the configured Prometheus, then hands the facts to the twin's pure
//! `simulate::recorded::build` and replays them under every strategy. Holds no policy.

use std::collections::HashMap;
use std::process::ExitCode;

use crate::cluster::inventory;
use crate::config::Validated;
use crate::openstack::{self, nova::Nova, placement::Placement};
use crate::simulate::recorded::{self, Facts, HostFact, VmFact, Window};
use crate::telemetry::prometheus::Prometheus;

use super::Format;

/// The options of `steward simulate` that record a window of the operator's own cloud (the
/// window's options conflict with `--scenario`, which is required without `--from-prometheus`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RecordedArgs {
    /// Replay the configured cloud's recorded history instead of a scenario file: VMs,
    /// hosts, AZs and roles from Nova, each VM's CPU use per step from Prometheus
    /// (`[prometheus] url`, `queries.vm_load5` by `vm_label`).
    #[arg(long, conflicts_with_all = ["scenario", "hours", "seed", "seeds"])]
    pub from_prometheus: bool,
    /// How far back the window starts from now (or --end): 7d, 36h, 2w (default 7d).
    #[arg(long, conflicts_with_all = ["scenario", "start"])]
    pub since: Option<String>,
    /// The window's start: unix seconds or RFC 3339 (2026-11-30T00:00:00Z).
    #[arg(long, conflicts_with = "scenario")]
    pub start: Option<String>,
    /// The window's end (default now).
    #[arg(long, conflicts_with = "scenario")]
    pub end: Option<String>,
    /// The replay's step and the range queries' resolution: 1m to 60m (default 5m).
    #[arg(long, conflicts_with = "scenario")]
    pub step: Option<String>,
}

/// Prometheus' limit is 11,000 points per series and query: ask for less at a time.
const POINTS_PER_QUERY: f64 = 10_000.0;
/// Placement reads at a time (one per hypervisor).
const PLACEMENT_IN_FLIGHT: usize = 8;

fn progress(line: &str) {
    eprintln!("steward: {line}");
}

/// Run the recorded replay and print it as `steward simulate` prints a scenario's.
pub fn run(v: &Validated, args: &RecordedArgs, format: Format) -> ExitCode {
    let w = match recorded::window(
        crate::unix_now(),
        args.since.as_deref(),
        args.start.as_deref(),
        args.end.as_deref(),
        args.step.as_deref(),
    ) {
        Ok(w) => w,
        Err(e) => return fail(&e),
    };
    let facts = match super::runtime().block_on(fetch(v, w)) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let settings = recorded::Settings {
        placement_profile: v.settings.scheduling.default_profile.clone(),
        profiles: v.settings.profiles.clone(),
        rebalance: v.settings.rebalance.clone(),
        history_weeks: v.settings.prometheus.history_weeks,
    };
    let scenario = match recorded::build(&facts, w, &settings) {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot replay the recorded cloud: {e}")),
    };
    progress(&format!(
        "replaying {} under every strategy",
        scenario.description
    ));
    match crate::simulate::simulate(&scenario) {
        Ok(report) => super::print_report(format, &report, crate::simulate::report::render),
        Err(e) => fail(&format!("the replay failed: {e}")),
    }
}

fn fail(e: &str) -> ExitCode {
    eprintln!("steward: {e}");
    ExitCode::from(1)
}

/// Nova's and Prometheus' facts for the window.
async fn fetch(v: &Validated, w: Window) -> Result<Facts, String> {
    let prom = Prometheus::new(&v.settings.prometheus)?.ok_or(
        "no Prometheus configured: set [prometheus] url in the configuration (--config) to the \
         Prometheus that holds the VMs' CPU series",
    )?;
    let nova = nova_client(v)?;
    let (hosts, vms) = nova_facts(v, &nova).await?;
    let series = cpu_series(&prom, w).await?;
    Ok(Facts { hosts, vms, series })
}

fn nova_client(v: &Validated) -> Result<Nova, String> {
    let nova = openstack::nova_client(v.settings.openstack.cloud.as_deref()).map_err(|e| {
        format!("cannot open Nova's session ([openstack] cloud, clouds.yaml or OS_*): {e:#}")
    })?;
    progress(&format!(
        "reading Nova through {}",
        nova.session().cloud().describe()
    ));
    Ok(nova)
}

/// Hypervisors (AZ by steward's rules, size from Nova, ratios from Placement) and servers
/// (host, flavor, role by steward's rules).
async fn nova_facts(v: &Validated, nova: &Nova) -> Result<(Vec<HostFact>, Vec<VmFact>), String> {
    let listed = futures_util::future::try_join4(
        nova.hypervisors(),
        nova.aggregates(),
        nova.servers(),
        nova.server_groups(),
    )
    .await
    .map_err(|e| {
        format!(
            "cannot list hypervisors, aggregates, servers and server groups from Nova ({e}); \
             the user of [openstack] cloud needs Nova's admin (or steward_reader) reads: \
             `steward config check --online` says which is refused"
        )
    })?;
    let (hypervisors, aggregates, servers, groups) = listed;
    progress(&format!(
        "Nova lists {} hypervisors and {} servers; reading allocation ratios from Placement",
        hypervisors.len(),
        servers.len()
    ));
    let inv = inventory::build(
        &hypervisors,
        &servers,
        &groups,
        &aggregates,
        &v.settings.roles.metadata_key,
        &v.settings.cluster.default_availability_zone,
    );
    let ratios = allocation_ratios(nova, &hypervisors).await;
    let mut hosts: Vec<HostFact> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for hv in &hypervisors {
        let name = inventory::host_of(hv);
        let i = *index.entry(name.clone()).or_insert_with(|| {
            hosts.push(HostFact {
                az: inv.hosts.get(&name).map(|m| m.az.clone()),
                name,
                ..Default::default()
            });
            hosts.len() - 1
        });
        let h = &mut hosts[i];
        let add = |a: Option<f64>, b: Option<i64>| match b {
            Some(b) => Some(a.unwrap_or(0.0) + b as f64),
            None => a,
        };
        h.vcpus = add(h.vcpus, hv.vcpus);
        h.memory_mb = add(h.memory_mb, hv.memory_mb);
        h.disk_gb = add(h.disk_gb, hv.local_gb);
        if let Some(&(cpu, ram)) = ratios.get(&hv.id) {
            h.cpu_allocation_ratio = cpu;
            h.ram_allocation_ratio = ram;
        }
    }
    let vms = servers
        .iter()
        .map(|s| VmFact {
            uuid: s.id.clone(),
            name: s.name.clone(),
            host: s.host.clone(),
            role: inv.vms.get(&s.id).and_then(|m| m.role.clone()),
            flavor: s.flavor.original_name.clone(),
            vcpus: s.flavor.vcpus as f64,
            memory_mb: s.flavor.ram as f64,
            disk_gb: (s.flavor.disk + s.flavor.ephemeral) as f64,
        })
        .collect();
    Ok((hosts, vms))
}

/// Per hypervisor id (its resource provider), the VCPU and MEMORY_MB allocation ratios; a
/// provider Placement does not answer for is left out (the builder notes Nova's defaults).
async fn allocation_ratios(
    nova: &Nova,
    hypervisors: &[openstack::nova::Hypervisor],
) -> HashMap<String, (Option<f64>, Option<f64>)> {
    let placement = Placement::new(nova.session().clone());
    let ids: Vec<String> = hypervisors.iter().map(|h| h.id.clone()).collect();
    let mut out = HashMap::new();
    for (id, read) in placement
        .inventories_and_usages_of(&ids, PLACEMENT_IN_FLIGHT)
        .await
    {
        match read {
            Ok(room) => {
                let ratio = |rc: &str| {
                    room.inventories
                        .inventories
                        .get(rc)
                        .map(|i| i.allocation_ratio)
                };
                out.insert(id, (ratio("VCPU"), ratio("MEMORY_MB")));
            }
            Err(e) => {
                tracing::warn!(provider = %id, error = %e, "no allocation ratios from Placement")
            }
        }
    }
    out
}

/// Every VM's CPU use (`[prometheus.queries] vm_load5`, by `vm_label`) over the window, in
/// range queries of at most `POINTS_PER_QUERY` points.
async fn cpu_series(
    prom: &Prometheus,
    w: Window,
) -> Result<HashMap<String, Vec<(f64, f64)>>, String> {
    let s = &prom.settings;
    let url = s.url.clone().unwrap_or_default();
    let query = &s.queries.vm_load5;
    let end = w.start + (w.steps as f64 - 1.0) * w.step_seconds;
    let chunk = POINTS_PER_QUERY * w.step_seconds;
    let chunks = ((end - w.start + w.step_seconds) / chunk).ceil().max(1.0) as u64;
    let mut series: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    let mut unlabelled = 0usize;
    for c in 0..chunks {
        let a = w.start + c as f64 * chunk;
        let b = (a + chunk - w.step_seconds).min(end);
        progress(&format!(
            "reading CPU series from Prometheus at {url} ({query}), part {} of {chunks}",
            c + 1
        ));
        let got = prom.range(query, a, b, w.step_seconds).await.map_err(|e| {
            format!(
                "{e}; the replay reads [prometheus] url and [prometheus.queries] vm_load5 from \
                 the configuration"
            )
        })?;
        for (labels, values) in got {
            match labels.get(&s.vm_label).filter(|u| !u.is_empty()) {
                Some(uuid) => series.entry(uuid.clone()).or_default().extend(values),
                None => unlabelled += 1,
            }
        }
    }
    if unlabelled > 0 {
        progress(&format!(
            "{unlabelled} series of {query} carry no {:?} label and are left out; fix the query or \
             [prometheus] vm_label",
            s.vm_label
        ));
    }
    progress(&format!(
        "Prometheus has CPU series for {} VMs",
        series.len()
    ));
    Ok(series)
}
