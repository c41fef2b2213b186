//! The deployment and observability files in `etc/` checked against the code they deploy:
//! the Kubernetes manifests (replicas, non-root, probes on routes steward really serves without
//! a token, Service and PodDisruptionBudget selecting the Deployment's pods, secrets only by
//! reference), the Containerfile and the systemd unit (non-root, hardening), the sample
//! clouds.yaml and Keystone script (no inline secrets), and the Prometheus rules and Grafana
//! dashboard: every metric they name must be one steward exports, read from a live in-process
//! app's `/metrics` after one request of each kind and one poll of each outcome.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use actix_web::test as atest;
use serde::Deserialize;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;
use steward::jobs::Jobs;
use steward::telemetry::prometheus::{Prometheus, PrometheusSettings};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Metrics the rules and the dashboard name that steward does not export YET: the rebalancer's
/// and the repair job's, being built in parallel (issues 4 and 5). The test below fails when
/// this list is not exactly the referenced-but-unexported set, so the day one of them lands in
/// `src/`, someone must drop it from here and make `scrape()` exercise it.
const PENDING: &[&str] = &[];

/// Series Prometheus makes itself (not steward's).
const PROMETHEUS_OWN: &[&str] = &["up"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

fn s<'a>(v: &'a Yaml, path: &str) -> Option<&'a Yaml> {
    path.split('.')
        .try_fold(v, |v, k| match k.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(k),
        })
}

fn text<'a>(v: &'a Yaml, path: &str) -> &'a str {
    s(v, path)
        .and_then(Yaml::as_str)
        .unwrap_or_else(|| panic!("{path} is not a string in {v:?}"))
}

// ---- Kubernetes ---------------------------------------------------------------------------

/// Every object of etc/kubernetes by kind (one per kind in these manifests).
fn manifests() -> BTreeMap<String, Yaml> {
    let mut out = BTreeMap::new();
    let kustomization = yaml("etc/kubernetes/kustomization.yaml");
    let listed: Vec<&str> = s(&kustomization, "resources")
        .and_then(Yaml::as_sequence)
        .expect("kustomization lists resources")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("etc/kubernetes"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    on_disk.sort();
    let mut listed_sorted: Vec<String> = listed.iter().map(|l| l.to_string()).collect();
    listed_sorted.sort();
    assert_eq!(
        listed_sorted, on_disk,
        "etc/kubernetes/kustomization.yaml must list every manifest beside it"
    );
    for file in listed {
        let rel = format!("etc/kubernetes/{file}");
        for doc in serde_norway::Deserializer::from_str(&read(&rel)) {
            let v = Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: {e}"));
            let kind = text(&v, "kind").to_string();
            assert!(
                out.insert(kind.clone(), v).is_none(),
                "two {kind} objects in etc/kubernetes"
            );
        }
    }
    out
}

fn labels(v: Option<&Yaml>) -> BTreeMap<String, String> {
    v.and_then(Yaml::as_mapping)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap_or_default().to_string(),
                        v.as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, pod: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod.get(k) == Some(v))
}

fn containers(deploy: &Yaml) -> Vec<&Yaml> {
    let spec = s(deploy, "spec.template.spec").expect("pod spec");
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Yaml::as_sequence))
        .flatten()
        .collect()
}

/// The steward.toml of the ConfigMap, loaded by steward's own configuration code with the
/// secrets the pod gets from elsewhere (database URL from the environment, token file mounted).
fn configmap_config(cm: &Yaml) -> (String, steward::config::Validated) {
    let toml_text = s(cm, "data")
        .and_then(|d| d.get("steward.toml"))
        .and_then(Yaml::as_str)
        .expect("ConfigMap data steward.toml")
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{} reader\n", common::app::READER)).unwrap();
    let cfg = dir.path().join("steward.toml");
    std::fs::write(&cfg, &toml_text).unwrap();
    let env = vec![
        (
            "STEWARD__DATABASE__URL".to_string(),
            "mysql://steward:pw@db.example.org/steward".to_string(),
        ),
        (
            "STEWARD__AUTH__TOKEN_FILE".to_string(),
            tokens.display().to_string(),
        ),
        // Validation would resolve the cloud from this process's own environment; the sample
        // clouds.yaml is checked on its own below, through the same resolver.
        ("STEWARD__CLUSTER__SOURCE".to_string(), "none".to_string()),
    ];
    let raw: toml::Value = toml::from_str(&toml_text).unwrap();
    assert_eq!(
        raw.get("cluster")
            .and_then(|c| c.get("source"))
            .and_then(|s| s.as_str()),
        Some("nova"),
        "the replicas read the cluster view from Nova"
    );
    let v = steward::config::load_from(Some(&cfg), &env)
        .unwrap_or_else(|p| panic!("the ConfigMap's steward.toml does not validate: {p:#?}"));
    (toml_text, v)
}

#[test]
fn the_deployment_runs_two_non_root_replicas_with_limits() {
    let m = manifests();
    let deploy = &m["Deployment"];
    assert_eq!(
        s(deploy, "spec.replicas").and_then(Yaml::as_u64),
        Some(2),
        "two replicas, the rebalancer elected through the database"
    );
    let pod = s(deploy, "spec.template.spec").unwrap();
    assert_eq!(
        s(pod, "securityContext.runAsNonRoot").and_then(Yaml::as_bool),
        Some(true)
    );
    let uid = s(pod, "securityContext.runAsUser")
        .and_then(Yaml::as_u64)
        .expect("a numeric runAsUser");
    assert_ne!(uid, 0);
    assert_eq!(
        s(pod, "automountServiceAccountToken").and_then(Yaml::as_bool),
        Some(false),
        "steward does not call the Kubernetes API it runs on"
    );
    for c in containers(deploy) {
        let name = text(c, "name");
        let sc = c
            .get("securityContext")
            .unwrap_or_else(|| panic!("{name}: securityContext"));
        for (key, want) in [
            ("readOnlyRootFilesystem", true),
            ("allowPrivilegeEscalation", false),
            ("runAsNonRoot", true),
        ] {
            assert_eq!(
                sc.get(key).and_then(Yaml::as_bool),
                Some(want),
                "container {name}: securityContext.{key}"
            );
        }
        let drop: Vec<&str> = s(sc, "capabilities.drop")
            .and_then(Yaml::as_sequence)
            .map(|d| d.iter().filter_map(Yaml::as_str).collect())
            .unwrap_or_default();
        assert_eq!(drop, ["ALL"], "container {name} drops every capability");
        for key in ["requests.cpu", "requests.memory", "limits.memory"] {
            assert!(
                s(c, &format!("resources.{key}")).is_some(),
                "container {name}: resources.{key}"
            );
        }
        // Secrets only by reference: no env value that looks like one.
        for e in c
            .get("env")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
        {
            let var = text(e, "name");
            if var.contains("DATABASE__URL") || var.contains("PASSWORD") || var.contains("TOKEN") {
                assert!(
                    e.get("value").is_none() && s(e, "valueFrom.secretKeyRef.name").is_some(),
                    "container {name}: {var} must come from a Secret (secretKeyRef), never inline"
                );
            }
        }
    }
    assert!(
        !m.contains_key("Secret"),
        "no Secret object (with values) among the manifests: they are created by the operator"
    );
}

#[test]
fn the_image_user_is_the_pods_user() {
    let m = manifests();
    let uid = s(
        &m["Deployment"],
        "spec.template.spec.securityContext.runAsUser",
    )
    .and_then(Yaml::as_u64)
    .unwrap();
    let containerfile = read("etc/Containerfile");
    let froms: Vec<&str> = containerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "a multi-stage build: {froms:?}");
    assert!(
        froms.last().unwrap().contains("-slim"),
        "a slim runtime image: {froms:?}"
    );
    assert!(
        containerfile.contains("cargo build --release --locked"),
        "the build uses Cargo.lock exactly"
    );
    let last_stage = containerfile.rsplit("\nFROM ").next().unwrap();
    let user = last_stage
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let image_uid: u64 = user
        .split(':')
        .next()
        .and_then(|u| u.trim().parse().ok())
        .unwrap_or_else(|| panic!("USER {user} must be numeric for runAsNonRoot"));
    assert_ne!(image_uid, 0);
    assert_eq!(image_uid, uid, "Containerfile USER and the pod's runAsUser");
    // Every image the Deployment runs is the same one, and its command is a real subcommand.
    for c in containers(&m["Deployment"]) {
        let args: Vec<&str> = c
            .get("args")
            .and_then(Yaml::as_sequence)
            .map(|a| a.iter().filter_map(Yaml::as_str).collect())
            .unwrap_or_default();
        assert!(
            matches!(args.as_slice(), ["serve"] | ["db", "upgrade"]),
            "{}: args {args:?}",
            text(c, "name")
        );
    }
}

#[actix_web::test]
async fn probes_point_at_a_route_steward_answers_without_a_token() {
    let m = manifests();
    let deploy = &m["Deployment"];
    let main = containers(deploy)
        .into_iter()
        .find(|c| c.get("args").and_then(|a| a.get(0)).and_then(Yaml::as_str) == Some("serve"))
        .expect("the serving container");
    let ports: BTreeMap<String, u64> = main
        .get("ports")
        .and_then(Yaml::as_sequence)
        .expect("container ports")
        .iter()
        .map(|p| {
            (
                text(p, "name").to_string(),
                p.get("containerPort").and_then(Yaml::as_u64).unwrap(),
            )
        })
        .collect();
    let (_, v) = configmap_config(&m["ConfigMap"]);
    assert_eq!(
        ports.get("http").copied(),
        Some(u64::from(v.listen.port())),
        "the container port is the port [server] listen binds"
    );
    assert!(
        !v.listen.ip().is_loopback(),
        "in a pod, a loopback listener is unreachable by the Service"
    );
    let openapi = serde_json::to_value(steward::api::openapi::document()).unwrap();
    let (_dir, state) = common::app::state("").await;
    let app = atest::init_service(steward::api::app(state)).await;
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(p) = main.get(probe) else {
            assert_ne!(probe, "livenessProbe", "a liveness probe is required");
            assert_ne!(probe, "readinessProbe", "a readiness probe is required");
            continue;
        };
        let route = text(p, "httpGet.path");
        let port = s(p, "httpGet.port").unwrap();
        let port = port
            .as_u64()
            .or_else(|| port.as_str().and_then(|n| ports.get(n).copied()));
        assert_eq!(port, ports.get("http").copied(), "{probe} port");
        assert!(
            openapi
                .pointer(&format!("/paths/{}/get", route.replace('/', "~1")))
                .is_some(),
            "{probe} path {route} is not a GET route in steward's OpenAPI document"
        );
        // kubelet sends no token: the route must answer 200 to a request without one, on an
        // app whose other routes do require one.
        let resp =
            atest::call_service(&app, atest::TestRequest::get().uri(route).to_request()).await;
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{probe} GET {route} without a token"
        );
    }
    let refused =
        atest::call_service(&app, atest::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(
        refused.status().as_u16(),
        401,
        "the app under test does check tokens"
    );
}

#[test]
fn the_service_and_the_budget_select_the_deployments_pods() {
    let m = manifests();
    let deploy = &m["Deployment"];
    let pod_labels = labels(s(deploy, "spec.template.metadata.labels"));
    let deploy_selector = labels(s(deploy, "spec.selector.matchLabels"));
    assert!(
        selects(&deploy_selector, &pod_labels),
        "Deployment selector"
    );

    let svc = &m["Service"];
    assert!(
        selects(&labels(s(svc, "spec.selector")), &pod_labels),
        "the Service selects the Deployment's pods"
    );
    assert_eq!(
        s(svc, "spec.sessionAffinity").and_then(Yaml::as_str),
        Some("ClientIP"),
        "a scheduler host keeps to one replica, whose host cache holds what it sent"
    );
    let main = containers(deploy)
        .into_iter()
        .find(|c| c.get("ports").is_some())
        .unwrap();
    let container_ports: Vec<(String, u64)> = main
        .get("ports")
        .and_then(Yaml::as_sequence)
        .unwrap()
        .iter()
        .map(|p| {
            (
                text(p, "name").to_string(),
                p.get("containerPort").and_then(Yaml::as_u64).unwrap(),
            )
        })
        .collect();
    for port in s(svc, "spec.ports").and_then(Yaml::as_sequence).unwrap() {
        let target = port.get("targetPort").unwrap();
        let hit = container_ports.iter().any(|(name, number)| {
            target.as_str() == Some(name.as_str()) || target.as_u64() == Some(*number)
        });
        assert!(
            hit,
            "Service targetPort {target:?} is not a container port {container_ports:?}"
        );
    }

    let pdb = &m["PodDisruptionBudget"];
    assert!(
        selects(&labels(s(pdb, "spec.selector.matchLabels")), &pod_labels),
        "the PodDisruptionBudget selects the Deployment's pods"
    );
    let min = s(pdb, "spec.minAvailable")
        .and_then(Yaml::as_u64)
        .expect("minAvailable");
    let replicas = s(deploy, "spec.replicas").and_then(Yaml::as_u64).unwrap();
    assert!(
        min >= 1 && min < replicas,
        "minAvailable {min} of {replicas}: one replica always up, and a drain can still proceed"
    );
}

#[test]
fn the_configmap_holds_no_secret_and_the_pod_mounts_what_it_names() {
    let m = manifests();
    let (toml_text, v) = configmap_config(&m["ConfigMap"]);
    let raw: toml::Value = toml::from_str(&toml_text).unwrap();
    assert!(
        raw.get("database").and_then(|d| d.get("url")).is_none(),
        "the database URL (with its password) comes from the Secret, not the ConfigMap"
    );
    assert!(
        v.settings.database.url.0.starts_with("mysql://"),
        "shared MySQL for 2 replicas"
    );
    assert!(
        !v.settings.database.auto_upgrade,
        "two replicas must not both migrate at start; the initContainer runs `db upgrade`"
    );
    let token_file = raw["auth"]["token_file"].as_str().unwrap();
    // Every container runs a steward command that validates the whole configuration first
    // (`db upgrade` as much as `serve`): each needs the config, the token file, the database
    // URL and the clouds.yaml that `[cluster] source = "nova"` resolves.
    for c in containers(&m["Deployment"]) {
        let name = text(c, "name");
        let mounts: Vec<&str> = c
            .get("volumeMounts")
            .and_then(Yaml::as_sequence)
            .unwrap()
            .iter()
            .map(|vm| text(vm, "mountPath"))
            .collect();
        let env: BTreeMap<&str, &Yaml> = c
            .get("env")
            .and_then(Yaml::as_sequence)
            .unwrap()
            .iter()
            .map(|e| (text(e, "name"), e))
            .collect();
        let config = env
            .get("STEWARD_CONFIG")
            .map(|e| text(e, "value"))
            .unwrap_or_else(|| panic!("{name}: STEWARD_CONFIG"));
        assert!(
            mounts.contains(&config),
            "{name}: {config} is mounted: {mounts:?}"
        );
        let token_dir = Path::new(token_file).parent().unwrap().to_str().unwrap();
        assert!(
            mounts.contains(&token_dir),
            "{name}: token file {token_file} is mounted: {mounts:?}"
        );
        assert!(
            env.contains_key("STEWARD__DATABASE__URL"),
            "{name}: STEWARD__DATABASE__URL"
        );
        let clouds = env
            .get("OS_CLIENT_CONFIG_FILE")
            .map(|e| text(e, "value"))
            .unwrap_or_else(|| panic!("{name}: OS_CLIENT_CONFIG_FILE"));
        let clouds_dir = Path::new(clouds).parent().unwrap().to_str().unwrap();
        assert!(
            mounts.contains(&clouds_dir),
            "{name}: {clouds} is mounted: {mounts:?}"
        );
    }
}

// ---- systemd, clouds.yaml, Keystone -------------------------------------------------------

fn unit_keys(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') || line.is_empty() {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            keys.entry(k.trim().to_string())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    keys
}

#[test]
fn the_systemd_unit_runs_non_root_and_hardened() {
    let keys = unit_keys(&read("etc/systemd/steward.service"));
    let one = |k: &str| -> &str {
        keys.get(k)
            .and_then(|v| v.last())
            .map(String::as_str)
            .unwrap_or_else(|| panic!("steward.service has no {k}="))
    };
    assert!(
        !matches!(one("User"), "root" | "0" | ""),
        "User={}",
        one("User")
    );
    for (k, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("RestrictSUIDSGID", "yes"),
    ] {
        assert_eq!(one(k), want, "steward.service {k}=");
    }
    assert!(one("ExecStartPre").ends_with("steward config check"));
    assert!(one("ExecStart").ends_with("steward serve"));
    // The sample config's SQLite file must be writable under ProtectSystem=strict.
    let state_dir = format!("/var/lib/{}", one("StateDirectory"));
    assert!(
        keys["ReadWritePaths"].iter().any(|p| p == &state_dir),
        "ReadWritePaths includes {state_dir}"
    );
    let sample: toml::Value = toml::from_str(&read("etc/steward.toml.sample")).unwrap();
    let url = sample["database"]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("sqlite://{state_dir}/")),
        "the sample's database {url} lies in the unit's state dir {state_dir}"
    );
}

#[test]
fn systemd_accepts_every_line_of_the_unit() {
    // The binary path is the only change: verify wants an executable that exists.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("steward.service");
    std::fs::write(
        &unit,
        read("etc/systemd/steward.service").replace("/usr/local/bin/steward", "/bin/true"),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd) checks the unit; install it");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify etc/systemd/steward.service: {stderr}"
    );
}

/// Keys whose values are secrets in a clouds.yaml.
const SECRET_KEYS: &[&str] = &[
    "password",
    "application_credential_secret",
    "token",
    "secret",
];

fn no_secret_values(v: &Yaml, at: &str) {
    match v {
        Yaml::Mapping(m) => {
            for (k, v) in m {
                let k = k.as_str().unwrap_or_default();
                assert!(
                    !SECRET_KEYS.contains(&k),
                    "{at}.{k}: secrets belong in secure.yaml, not the sample"
                );
                no_secret_values(v, &format!("{at}.{k}"));
            }
        }
        Yaml::Sequence(items) => items.iter().for_each(|i| no_secret_values(i, at)),
        _ => {}
    }
}

#[test]
fn the_sample_clouds_yaml_carries_no_secret() {
    let clouds = yaml("etc/clouds.yaml.sample");
    no_secret_values(&clouds, "clouds.yaml.sample");
    let steward = s(&clouds, "clouds.steward").expect("a cloud named steward");
    // Steward's own resolver reads the sample plus a secure.yaml as an operator writes it, in
    // the layout the pod mounts (OS_CLIENT_CONFIG_FILE, secure.yaml in /etc/openstack).
    let dir = tempfile::tempdir().unwrap();
    let secure = dir.path().join("secure.yaml");
    std::fs::write(
        &secure,
        "clouds:\n  steward:\n    auth:\n      password: not-a-real-password-0123\n",
    )
    .unwrap();
    let env = vec![
        (
            "OS_CLIENT_CONFIG_FILE".to_string(),
            root().join("etc/clouds.yaml.sample").display().to_string(),
        ),
        (
            "OS_CLIENT_SECURE_FILE".to_string(),
            secure.display().to_string(),
        ),
    ];
    let cloud = steward::openstack::cloud::load_with(Some("steward"), &env, dir.path(), None)
        .unwrap_or_else(|e| panic!("the sample's cloud steward does not resolve: {e}"));
    let described = cloud.describe();
    assert!(
        !described.contains("not-a-real-password"),
        "the password never prints: {described}"
    );
    // The one the ConfigMap and the sample config pick.
    let m = manifests();
    let (_, v) = configmap_config(&m["ConfigMap"]);
    assert_eq!(v.settings.openstack.cloud.as_deref(), Some("steward"));
    assert!(text(steward, "auth.auth_url").ends_with("/v3"));
    assert_eq!(text(steward, "auth.username"), "steward");
}

#[test]
fn the_keystone_script_registers_scheduler_steward_without_inline_passwords() {
    let script = read("etc/keystone/register-steward.sh");
    assert!(script.contains("service create") && script.contains("scheduler-steward"));
    for iface in ["public", "internal", "admin"] {
        assert!(script.contains(iface), "endpoint interface {iface}");
    }
    for line in script.lines().filter(|l| l.contains("--password")) {
        assert!(
            line.contains("--password \"$(password "),
            "a password comes from a file, never literally: {line}"
        );
    }
    let status = std::process::Command::new("sh")
        .arg("-n")
        .arg(root().join("etc/keystone/register-steward.sh"))
        .status()
        .expect("sh");
    assert!(
        status.success(),
        "register-steward.sh has a shell syntax error"
    );
    // The policy overrides give steward's roles reads (and, opt-in, migrations), never admin.
    for file in ["nova-policy.steward.yaml", "placement-policy.steward.yaml"] {
        let rules = yaml(&format!("etc/keystone/{file}"));
        let rules = rules
            .as_mapping()
            .unwrap_or_else(|| panic!("{file}: a mapping"));
        assert!(!rules.is_empty());
        for (name, rule) in rules {
            let (name, rule) = (name.as_str().unwrap(), rule.as_str().unwrap());
            assert!(
                rule.contains("role:steward_reader") || rule.contains("role:steward_migrator"),
                "{file} {name}: {rule}"
            );
            assert!(
                rule.starts_with("rule:"),
                "{file} {name}: keep the upstream default first: {rule}"
            );
            if rule.contains("steward_reader") {
                assert!(
                    !["create", "update", "delete", "manage", "migrate"]
                        .iter()
                        .any(|w| name.contains(w)),
                    "{file}: steward_reader must only read, not {name}"
                );
            }
        }
    }
}

// ---- Prometheus rules and Grafana ---------------------------------------------------------

/// The metric names a PromQL expression reads: identifiers outside label matchers, ranges,
/// strings and grouping clauses that are not functions or keywords.
fn promql_metrics(expr: &str) -> BTreeSet<String> {
    // label_values(metric, label) in Grafana variables: only the metric is a metric.
    let mut src = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find("label_values(") {
        src.push_str(&rest[..i]);
        let after = &rest[i + "label_values(".len()..];
        let end = after.find(')').unwrap_or(after.len());
        src.push_str(after[..end].split(',').next().unwrap_or(""));
        rest = &after[(end + 1).min(after.len())..];
    }
    src.push_str(rest);

    let chars: Vec<char> = src.chars().collect();
    let mut out = BTreeSet::new();
    let mut i = 0;
    let mut skip_parens_after_keyword = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let mut quote = None;
                while i < chars.len() && !(chars[i] == close && quote.is_none()) {
                    match (quote, chars[i]) {
                        (None, q @ ('"' | '\'' | '`')) => quote = Some(q),
                        (Some(q), ch) if ch == q => quote = None,
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_parens_after_keyword => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_parens_after_keyword = false;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let is_call = j < chars.len() && chars[j] == '(';
                // `sum by (le) (...)`: an aggregation whose grouping comes first.
                let next_word: String = chars[j..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic() || **c == '_')
                    .collect();
                let is_call = is_call || next_word == "by" || next_word == "without";
                let preceded_by_dollar = start > 0 && chars[start - 1] == '$';
                match word.as_str() {
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right" => {
                        skip_parens_after_keyword = true;
                    }
                    "and" | "or" | "unless" | "bool" | "offset" | "inf" | "nan" => {}
                    _ if is_call || preceded_by_dollar => {}
                    _ => {
                        out.insert(word);
                    }
                }
            }
            c if c.is_ascii_digit() => {
                // numbers, durations (5m), exponents
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[test]
fn promql_metric_extraction_reads_names_not_labels_or_functions() {
    let got = promql_metrics(
        "histogram_quantile(0.99, sum by (le, route) (rate(steward_http_request_duration_seconds_bucket{route=~\"/v1/filter|x\",instance=~\"$instance\"}[$__rate_interval]))) / on(instance) group_left(version) steward_build_info > bool 1e3 or absent(up{job=\"steward\"})",
    );
    let want: BTreeSet<String> = [
        "steward_http_request_duration_seconds_bucket",
        "steward_build_info",
        "up",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        promql_metrics("label_values(steward_build_info, instance)"),
        BTreeSet::from(["steward_build_info".to_string()])
    );
}

struct Rule {
    name: String,
    expr: String,
}

fn alert_rules() -> Vec<Rule> {
    let doc = yaml("etc/prometheus/alerts.yaml");
    let mut out = Vec::new();
    for g in s(&doc, "groups")
        .and_then(Yaml::as_sequence)
        .expect("groups")
    {
        for r in g.get("rules").and_then(Yaml::as_sequence).expect("rules") {
            let name = text(r, "alert").to_string();
            assert!(
                matches!(text(r, "labels.severity"), "critical" | "warning" | "info"),
                "{name}: labels.severity"
            );
            assert!(
                !text(r, "annotations.summary").is_empty(),
                "{name}: summary"
            );
            assert!(
                !text(r, "annotations.description").is_empty(),
                "{name}: description"
            );
            assert!(r.get("for").is_some(), "{name}: for");
            out.push(Rule {
                name,
                expr: text(r, "expr").to_string(),
            });
        }
    }
    out
}

/// Headings of docs/operations.md as GitHub anchors them.
fn doc_anchors() -> BTreeSet<String> {
    read("docs/operations.md")
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_alert_rules_cover_the_five_failures_and_link_real_runbooks() {
    let rules = alert_rules();
    let names: BTreeSet<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    for want in [
        "StewardDown",
        "StewardAnswersDegraded",
        "StewardTelemetryStale",
        "StewardMigrationsFailing",
        "StewardRepairRunFailed",
    ] {
        assert!(names.contains(want), "alert {want} missing: {names:?}");
    }
    assert_eq!(names.len(), rules.len(), "alert names are unique");
    let anchors = doc_anchors();
    let doc = yaml("etc/prometheus/alerts.yaml");
    for g in s(&doc, "groups").and_then(Yaml::as_sequence).unwrap() {
        for r in g.get("rules").and_then(Yaml::as_sequence).unwrap() {
            if let Some(link) = s(r, "annotations.runbook").and_then(Yaml::as_str) {
                let (file, anchor) = link.split_once('#').expect("file#anchor");
                assert_eq!(file, "docs/operations.md");
                assert!(
                    anchors.contains(anchor),
                    "{}: runbook anchor #{anchor} is no heading of docs/operations.md",
                    text(r, "alert")
                );
            }
        }
    }
}

/// Every PromQL expression of the dashboard: panel targets (rows nest panels) and variables.
fn dashboard_exprs() -> Vec<(String, String)> {
    let dash: Json = serde_json::from_str(&read("etc/grafana/steward-dashboard.json"))
        .expect("the dashboard is JSON");
    assert!(dash["uid"].is_string() && dash["title"].is_string());
    let mut ids = BTreeSet::new();
    let mut out = Vec::new();
    fn walk(panels: &Json, ids: &mut BTreeSet<i64>, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let id = p["id"].as_i64().expect("panel id");
            assert!(ids.insert(id), "panel id {id} twice");
            assert!(p["gridPos"]["w"].is_number(), "panel {id}: gridPos");
            let title = p["title"].as_str().unwrap_or_default().to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().expect("target expr");
                out.push((title.clone(), expr.to_string()));
            }
            if p["type"] != "row" {
                assert!(
                    p["targets"].as_array().is_some_and(|t| !t.is_empty()),
                    "panel {title} has no query"
                );
            }
            walk(&p["panels"], ids, out);
        }
    }
    walk(&dash["panels"], &mut ids, &mut out);
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["query"]["query"].as_str() {
            out.push((format!("variable {}", v["name"]), q.to_string()));
        }
    }
    assert!(!out.is_empty());
    out
}

/// A Prometheus answering in its own JSON shape (as in tests/prometheus.rs): one reading per
/// query, in a unit steward drops (so the dropped counter exists too).
async fn prometheus_answering() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "status": "success",
            "data": {"resultType": "vector", "result": [
                {"metric": {"host": "cmp-9", "job": "libvirt"}, "value": [1_795_410_000.0, "7.5"]}
            ]}
        })))
        .mount(&server)
        .await;
    server
}

fn jobs_for(state: &steward::api::AppState, url: &str) -> Jobs {
    Jobs {
        prometheus: Prometheus::new(&PrometheusSettings {
            url: Some(url.into()),
            timeout_seconds: 5.0,
            ..Default::default()
        })
        .unwrap(),
        nova: None,
        store: state.store.clone(),
        cluster: state.cluster.clone(),
        metrics: state.metrics.clone(),
    }
}

/// The metric names (sample names, so histograms give `_bucket`, `_sum`, `_count`) a live
/// steward exports after one request of each kind and one poll of each outcome.
async fn scrape() -> BTreeSet<String> {
    let (_dir, state) = common::app::state("").await;
    // A poll that reads (timestamp, duration, dropped readings) and one that fails (errors).
    let good = prometheus_answering().await;
    jobs_for(&state, &good.uri())
        .poll_prometheus(1_795_410_000.0)
        .await
        .expect("a poll of a healthy Prometheus");
    let bad = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&bad)
        .await;
    assert!(jobs_for(&state, &bad.uri())
        .poll_prometheus(1_795_410_060.0)
        .await
        .is_err());

    // A failed fencing is tests/recovery_execute.rs's story (it checks this counter rises with
    // the host's label); here its series only has to exist under the name the alert rule reads.
    state
        .metrics
        .recovery
        .fence_failures
        .with_label_values(&["cmp-az1-a"]);
    // So is a refresh Nova's policy refuses (tests/cluster_refresh.rs sets and clears it).
    state
        .metrics
        .source_forbidden
        .with_label_values(&["nova", "os_compute_api:os-hypervisors:list-detail"]);
    let app = atest::init_service(steward::api::app(state)).await;
    let reader = format!("Bearer {}", common::app::READER);
    let telemetry = format!("Bearer {}", common::app::TELEMETRY);
    let example = |f: &str| read(&format!("etc/examples/{f}"));
    // Before any telemetry: a degraded answer that also rejects a host (same_az).
    let requests: Vec<(&str, &str, &String, Option<String>)> = vec![
        (
            "POST",
            "/v1/filter",
            &reader,
            Some(example("filter-live-migrate.json")),
        ),
        (
            "POST",
            "/v1/telemetry",
            &telemetry,
            Some(example("telemetry-push.json")),
        ),
        (
            "POST",
            "/v1/filter?weigh=true",
            &reader,
            Some(example("filter-live-migrate.json")),
        ),
        (
            "POST",
            "/v1/weigh?explain=true",
            &reader,
            Some(example("weigh-boot-web.json")),
        ),
        ("GET", "/v1/profiles", &reader, None),
        ("GET", "/v1/hosts", &reader, None),
        ("GET", "/v1/hosts/cmp-az1-a", &reader, None),
        (
            "GET",
            "/v1/vms/0b6d3c1e-5a7f-4f0e-9d61-2f4f8d0c7a01",
            &reader,
            None,
        ),
        ("GET", "/healthz", &reader, None),
        ("GET", "/openapi.json", &reader, None),
    ];
    for (m, uri, token, body) in requests {
        let mut req = match m {
            "POST" => atest::TestRequest::post(),
            _ => atest::TestRequest::get(),
        }
        .uri(uri)
        .insert_header(("Authorization", token.as_str()));
        if let Some(b) = body {
            req = req.set_payload(b);
        }
        let resp = atest::call_service(&app, req.to_request()).await;
        assert!(resp.status().is_success(), "{m} {uri}: {}", resp.status());
    }
    let resp = atest::call_service(
        &app,
        atest::TestRequest::get()
            .uri("/metrics")
            .insert_header(("Authorization", reader.as_str()))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let body = String::from_utf8(atest::read_body(resp).await.to_vec()).unwrap();
    let names: BTreeSet<String> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect();
    for must in [
        "steward_scoring_degraded_total",
        "steward_scoring_rejections_total",
        "steward_source_errors_total",
        "steward_telemetry_dropped_total",
        "steward_rebalance_actions_total",
        "steward_repair_runs_total",
    ] {
        assert!(
            names.contains(must),
            "the scrape did not exercise {must}:\n{body}"
        );
    }
    // The alerts on failed migrations and repair runs need their series before the first
    // failure.
    for series in [
        "steward_rebalance_actions_total{state=\"failed\"} 0",
        "steward_repair_runs_total{result=\"failed\"} 0",
    ] {
        assert!(body.contains(series), "{series} is not exported:\n{body}");
    }
    names
}

/// Metric names written as string literals anywhere in src/ (a metric defined but not yet
/// incremented by this test's requests still counts as exported).
fn names_in_source() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for piece in text.split('"').skip(1).step_by(2) {
                    if piece.starts_with("steward_")
                        && piece.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        out.insert(piece.to_string());
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&root().join("src"), &mut out);
    out
}

#[actix_web::test]
async fn every_metric_in_a_rule_or_panel_is_exported_or_listed_pending() {
    let exported = scrape().await;
    let in_source = names_in_source();
    let mut referenced: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in alert_rules() {
        for m in promql_metrics(&r.expr) {
            referenced
                .entry(m)
                .or_default()
                .push(format!("alert {}", r.name));
        }
    }
    for (title, expr) in dashboard_exprs() {
        for m in promql_metrics(&expr) {
            referenced
                .entry(m)
                .or_default()
                .push(format!("panel {title}"));
        }
    }
    for (m, users) in &referenced {
        assert!(
            m.starts_with("steward_") || PROMETHEUS_OWN.contains(&m.as_str()),
            "{m} (used by {users:?}) is neither steward's nor Prometheus' own: a typo?"
        );
    }
    let missing: BTreeSet<&str> = referenced
        .keys()
        .map(String::as_str)
        .filter(|m| m.starts_with("steward_") && !exported.contains(*m))
        .collect();
    let pending: BTreeSet<&str> = PENDING.iter().copied().collect();
    let landed: Vec<&&str> = PENDING
        .iter()
        .filter(|p| in_source.contains(**p) || exported.contains(**p))
        .collect();
    assert!(
        landed.is_empty(),
        "{landed:?} now exist in src/: remove them from PENDING in tests/deploy_files.rs and make \
         scrape() exercise them (and check their labels match the rules: state=\"failed\", \
         result=\"failed\")"
    );
    let unexpected: Vec<(&str, &Vec<String>)> = missing
        .iter()
        .filter(|m| !pending.contains(*m))
        .map(|m| (*m, &referenced[*m]))
        .collect();
    assert!(
        unexpected.is_empty(),
        "named in a rule or panel but not exported by steward: {unexpected:#?}\nexported: {exported:#?}"
    );
    assert_eq!(
        missing, pending,
        "PENDING must be exactly the referenced metrics steward does not export yet"
    );
}

/// The split of debug info the Containerfile and the systemd install do, on the binary cargo
/// built for these tests: the shipped binary loses its line tables (and stays runnable), the
/// debug file keeps them and the binary links to it, so `addr2line` turns one of its function
/// addresses into a file and line. The control: the binary as built has the line tables.
#[test]
fn the_shipped_binary_drops_its_line_tables_and_the_debug_file_keeps_them() {
    let containerfile = read("etc/Containerfile");
    for step in [
        "objcopy --only-keep-debug target/release/steward /out/steward.debug",
        "objcopy --strip-debug --add-gnu-debuglink=/out/steward.debug",
    ] {
        assert!(containerfile.contains(step), "Containerfile lost: {step}");
    }
    let ops = read("docs/operations.md");
    assert!(ops.contains("objcopy --strip-debug --add-gnu-debuglink="));
    let dir = tempfile::tempdir().unwrap();
    let built = std::path::Path::new(env!("CARGO_BIN_EXE_steward"));
    let (debug, shipped) = (dir.path().join("steward.debug"), dir.path().join("steward"));
    let run = |cmd: &str, args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(cmd)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{cmd}: {e} (binutils)"));
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let has_line_tables = |f: &std::path::Path| {
        run("readelf", &["-S".as_ref(), f.as_os_str()]).contains(".debug_line")
    };
    assert!(
        has_line_tables(built),
        "the control: cargo's binary has line tables"
    );
    run(
        "objcopy",
        &[
            "--only-keep-debug".as_ref(),
            built.as_os_str(),
            debug.as_os_str(),
        ],
    );
    let link = format!("--add-gnu-debuglink={}", debug.display());
    run(
        "objcopy",
        &[
            "--strip-debug".as_ref(),
            link.as_ref(),
            built.as_os_str(),
            shipped.as_os_str(),
        ],
    );
    assert!(
        !has_line_tables(&shipped),
        "the shipped binary still has line tables"
    );
    assert!(has_line_tables(&debug));
    let size = |f: &std::path::Path| std::fs::metadata(f).unwrap().len();
    // (A test build is unoptimised code: the release figures are in the README.)
    assert!(
        size(&shipped) < size(built),
        "{} vs {}",
        size(&shipped),
        size(built)
    );
    assert!(run(shipped.to_str().unwrap(), &["--version".as_ref()]).starts_with("steward "));
    // A function's address in the shipped binary resolves to its source line in the debug file.
    let symbols = run("nm", &[shipped.as_os_str()]);
    let addr = symbols
        .lines()
        .find(|l| l.contains("7steward3cli12config_check17h") && l.contains(" T "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the shipped binary keeps its function symbols");
    let line = run(
        "addr2line",
        &[
            "-e".as_ref(),
            debug.as_os_str(),
            format!("0x{addr}").as_ref(),
        ],
    );
    assert!(line.contains("src/cli/mod.rs:"), "{line}");
}
