//! Shared by the rebalance tests: what a live migration needs from Nova's compute side (which
//! cannot run here), played by wiremock with answers shaped like the real Nova 34 API at 2.87
//! (`GET /servers/{id}`, `POST .../action` os-migrateLive, `GET /servers/{id}/migrations`,
//! `DELETE .../migrations/{id}`, and how it ended: `GET /os-migrations?instance_uuid=`,
//! `GET /servers/{id}/os-instance-actions[/{request_id}]`), plus a Kubernetes API and a Consul
//! agent. The listings the
//! planner reads are there too: Nova's hypervisors, aggregates and server groups, and each
//! compute node's resource provider in Placement (inventories and usages, in the recorded
//! format of `tests/fixtures/openstack/placement-1.39-*.json`).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const VM: &str = "8d2f6c1e-3b7a-4c55-9f0e-2a1b3c4d5e6f";
pub const SOURCE: &str = "cmp-1";
pub const TARGET: &str = "cmp-2";
pub const NODE: &str = "web-1";

/// A 32-core compute node's telemetry as `POST /v1/telemetry` stores it.
pub fn host_sample(
    name: &str,
    steal: f64,
    cpu_use: f64,
    now: f64,
) -> steward::telemetry::HostSample {
    steward::telemetry::HostSample {
        host: name.into(),
        facts: steward::model::HostFacts {
            steal: Some(steal),
            load5: Some(cpu_use * 32.0),
            cpu_use: Some(cpu_use),
            vcpus: Some(32.0),
            observed_at: now,
            ..Default::default()
        },
    }
}

/// The noisy VM (`VM`, 2 vCPUs) on `SOURCE`: busy (load5 1.8) and stolen (30 %).
pub fn noisy_vm_sample(now: f64) -> steward::telemetry::VmSample {
    steward::telemetry::VmSample {
        uuid: VM.into(),
        facts: steward::model::VmFacts {
            host: Some(SOURCE.into()),
            steal: Some(0.30),
            load5: Some(1.8),
            vcpus: Some(2.0),
            observed_at: now,
            ..Default::default()
        },
    }
}

/// The journal path of an action that went all the way.
pub const DONE_PATH: [&str; 5] = [
    "new->approved",
    "approved->draining",
    "draining->migrating",
    "migrating->rejoining",
    "rejoining->done",
];

/// An action's journal events that changed its state, as `from->to`.
pub async fn transitions(store: &steward::store::Store, id: &str) -> Vec<String> {
    store
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.from != e.to)
        .map(|e| format!("{}->{}", e.from, e.to))
        .collect()
}

/// How the fake compute side behaves.
#[derive(Debug, Clone)]
pub struct Script {
    /// Polls of the migration list that show it running before it completes; `None`: never.
    pub completes_after: Option<usize>,
    /// os-migrateLive answers this error status instead of 202.
    pub refuse_with: Option<u16>,
    /// Whether a refused request (500) still started the migration.
    pub starts_despite_error: bool,
    /// Bytes copied per poll (RAM).
    pub bytes_per_poll: u64,
    /// Nova's conductor ends the accepted migration `error` before it runs (its scheduler
    /// refused the host): the server is back ACTIVE on its source at the first poll.
    pub ends_in_error: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            completes_after: Some(2),
            refuse_with: None,
            starts_despite_error: false,
            bytes_per_poll: 512 << 20,
            ends_in_error: false,
        }
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub host: String,
    pub migrating: bool,
    pub polls: usize,
    pub processed: u64,
    pub migrate_requests: usize,
    pub aborts: usize,
    pub aborted: bool,
    /// The migration record and the instance action of the last accepted request, as
    /// `GET /os-migrations` and `GET .../os-instance-actions` show them.
    pub record: Option<Value>,
    pub action: Option<Value>,
}

/// Now, as Nova writes its timestamps.
fn nova_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Set the record's status and the action's events to how the migration ended.
fn ended(s: &mut State, status: &str, failed: Option<&str>) {
    if let Some(r) = s.record.as_mut() {
        r["status"] = json!(status);
    }
    if let Some(a) = s.action.as_mut() {
        a["events"] = json!([match failed {
            Some(details) => json!({"event": "conductor_live_migrate_instance",
                "result": "Error", "details": details}),
            None => json!({"event": "compute_live_migration", "result": "Success",
                "details": null}),
        }]);
    }
}

#[derive(Clone)]
pub struct FakeCompute {
    pub state: Arc<Mutex<State>>,
    pub script: Arc<Mutex<Script>>,
}

impl FakeCompute {
    pub fn new(script: Script) -> Self {
        FakeCompute {
            state: Arc::new(Mutex::new(State {
                host: SOURCE.into(),
                ..Default::default()
            })),
            script: Arc::new(Mutex::new(script)),
        }
    }

    pub fn migrate_requests(&self) -> usize {
        self.state.lock().unwrap().migrate_requests
    }

    pub fn set_script(&self, s: Script) {
        *self.script.lock().unwrap() = s;
    }

    fn server_body(&self) -> Value {
        let s = self.state.lock().unwrap();
        json!({"server": {
            "id": VM,
            "name": NODE,
            "status": if s.migrating { "MIGRATING" } else { "ACTIVE" },
            "tenant_id": "6f70656e737461636b20342065766572",
            "user_id": "fake",
            "OS-EXT-SRV-ATTR:host": s.host,
            "OS-EXT-SRV-ATTR:hypervisor_hostname": s.host,
            "OS-EXT-SRV-ATTR:instance_name": "instance-00000001",
            "OS-EXT-STS:task_state": if s.migrating { Value::from("migrating") } else { Value::Null },
            "OS-EXT-STS:vm_state": "active",
            "OS-EXT-STS:power_state": 1,
            "OS-EXT-AZ:availability_zone": "az1",
            "metadata": {"k8s_node": "node-from-metadata", "steward_role": "web"},
            "flavor": {"vcpus": 2, "ram": 2048, "disk": 20, "ephemeral": 0, "swap": 0,
                       "original_name": "m1.small", "extra_specs": {}},
            "locked": false,
            "tags": []
        }})
    }

    fn migrations_body(&self) -> Value {
        let script = self.script.lock().unwrap().clone();
        let mut s = self.state.lock().unwrap();
        if !s.migrating {
            return json!({"migrations": []});
        }
        s.polls += 1;
        if script.ends_in_error {
            s.migrating = false;
            ended(
                &mut s,
                "error",
                Some("No valid host was found. There are not enough hosts available."),
            );
            return json!({"migrations": []});
        }
        if let Some(n) = script.completes_after {
            if s.polls > n {
                s.migrating = false;
                s.host = TARGET.into();
                ended(&mut s, "completed", None);
                return json!({"migrations": []});
            }
        }
        s.processed = (s.processed + script.bytes_per_poll).min(2 << 30);
        json!({"migrations": [{
            "created_at": "2026-11-22T10:00:00.000000",
            "dest_compute": TARGET, "dest_host": "192.0.2.12", "dest_node": TARGET,
            "disk_processed_bytes": 0, "disk_remaining_bytes": 0, "disk_total_bytes": 0,
            "id": 7,
            "memory_processed_bytes": s.processed,
            "memory_remaining_bytes": (2u64 << 30) - s.processed,
            "memory_total_bytes": 2u64 << 30,
            "server_uuid": VM,
            "source_compute": SOURCE, "source_node": SOURCE,
            "status": "running",
            "updated_at": "2026-11-22T10:00:05.000000",
            "uuid": "12341d4b-346a-40d0-83c6-5f4f6892b650",
            "user_id": "fake", "project_id": "6f70656e737461636b20342065766572"
        }]})
    }
}

impl Respond for FakeCompute {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let p = req.url.path().to_string();
        let server_path = format!("/v2.1/servers/{VM}");
        // The planner's listing (all_tenants=1, one page: no servers_links).
        if req.method.as_str() == "GET" && p == "/v2.1/servers/detail" {
            return ResponseTemplate::new(200)
                .set_body_json(json!({"servers": [self.server_body()["server"].clone()]}));
        }
        if req.method.as_str() == "GET" && p == server_path {
            return ResponseTemplate::new(200).set_body_json(self.server_body());
        }
        if req.method.as_str() == "GET" && p == format!("{server_path}/migrations") {
            return ResponseTemplate::new(200).set_body_json(self.migrations_body());
        }
        if req.method.as_str() == "GET" && p == "/v2.1/os-migrations" {
            let s = self.state.lock().unwrap();
            return ResponseTemplate::new(200)
                .set_body_json(json!({"migrations": s.record.iter().collect::<Vec<_>>()}));
        }
        if req.method.as_str() == "GET" && p == format!("{server_path}/os-instance-actions") {
            let s = self.state.lock().unwrap();
            let listed: Vec<Value> = s
                .action
                .iter()
                .map(|a| {
                    let mut a = a.clone();
                    a.as_object_mut().unwrap().remove("events");
                    a
                })
                .collect();
            return ResponseTemplate::new(200).set_body_json(json!({"instanceActions": listed}));
        }
        if req.method.as_str() == "GET"
            && p.starts_with(&format!("{server_path}/os-instance-actions/"))
        {
            let s = self.state.lock().unwrap();
            return match &s.action {
                Some(a) if p.ends_with(a["request_id"].as_str().unwrap()) => {
                    ResponseTemplate::new(200).set_body_json(json!({"instanceAction": a}))
                }
                _ => nova_error(404, "no such action in the fake"),
            };
        }
        if req.method.as_str() == "POST" && p == format!("{server_path}/action") {
            let script = self.script.lock().unwrap().clone();
            let mut s = self.state.lock().unwrap();
            s.migrate_requests += 1;
            if let Some(code) = script.refuse_with {
                if script.starts_despite_error {
                    s.migrating = true;
                }
                return nova_error(code, &format!("refused by the test script ({code})"));
            }
            if s.migrating {
                return nova_error(
                    409,
                    &format!(
                        "Cannot 'os-migrateLive' instance {VM} while it is in task_state migrating"
                    ),
                );
            }
            s.migrating = true;
            s.polls = 0;
            s.processed = 0;
            let rid = "req-2f0c6f3c-1d7e-4a61-9d9e-0f5e0e3d9a11";
            s.record = Some(json!({
                "id": 7, "uuid": "12341d4b-346a-40d0-83c6-5f4f6892b650",
                "instance_uuid": VM, "migration_type": "live-migration",
                "status": "accepted", "source_compute": SOURCE, "source_node": SOURCE,
                "dest_compute": null, "dest_node": null, "dest_host": null,
                "created_at": nova_now(), "updated_at": null,
                "old_instance_type_id": 1, "new_instance_type_id": 1,
                "user_id": "fake", "project_id": "6f70656e737461636b20342065766572"
            }));
            s.action = Some(json!({
                "action": "live-migration", "instance_uuid": VM, "request_id": rid,
                "message": null, "start_time": nova_now(), "updated_at": nova_now(),
                "user_id": "fake", "project_id": "6f70656e737461636b20342065766572",
                "events": []
            }));
            return ResponseTemplate::new(202).insert_header("x-openstack-request-id", rid);
        }
        if req.method.as_str() == "DELETE" && p.starts_with(&format!("{server_path}/migrations/")) {
            let mut s = self.state.lock().unwrap();
            s.aborts += 1;
            if !s.migrating {
                return nova_error(
                    400,
                    "Migration 7 state of instance is completed. Cannot abort live migration.",
                );
            }
            // Nova rolls the server back to its source.
            s.migrating = false;
            s.aborted = true;
            s.host = SOURCE.into();
            ended(&mut s, "cancelled", None);
            return ResponseTemplate::new(202);
        }
        ResponseTemplate::new(404).set_body_json(
            json!({"itemNotFound": {"code": 404, "message": "no such route in the fake"}}),
        )
    }
}

/// Nova's error body: `{"<kind>": {"code": N, "message": "..."}}`.
pub fn nova_error(code: u16, message: &str) -> ResponseTemplate {
    let kind = match code {
        400 => "badRequest",
        404 => "itemNotFound",
        409 => "conflictingRequest",
        _ => "computeFault",
    };
    ResponseTemplate::new(code)
        .insert_header(
            "x-openstack-request-id",
            "req-7a1b8f0e-5c2d-4e3f-8a9b-0c1d2e3f4a5b",
        )
        .set_body_json(json!({kind: {"code": code, "message": message}}))
}

pub async fn mount_compute(server: &MockServer, fake: &FakeCompute) {
    mount_servers(server, fake).await;
    mount_listings(server).await;
}

/// The fake's server routes only (a test that lays out its own cloud mounts [`mount_cloud`]).
pub async fn mount_servers(server: &MockServer, fake: &FakeCompute) {
    Mock::given(path_regex(r"^/v2\.1/servers/"))
        .respond_with(fake.clone())
        .mount(server)
        .await;
    Mock::given(path("/v2.1/os-migrations"))
        .respond_with(fake.clone())
        .mount(server)
        .await;
}

/// The resource provider of hypervisor `n`: its id, which is the compute node's uuid and so
/// its provider's uuid (Nova >= 2.53).
pub fn provider_uuid(n: u8) -> String {
    format!("5f1c3a52-8e1d-4b7e-9a44-5d2c8e6f7a0{n}")
}

/// One resource class of a provider: `(total, reserved, allocation_ratio, used)`.
pub type Class = (i64, i64, f64, i64);

/// What Placement holds for one compute node.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    pub vcpu: Class,
    pub memory_mb: Class,
    pub disk_gb: Class,
}

impl Default for Room {
    /// Nova's defaults (cpu 4.0, ram 1.0 with 512 MB reserved) on a 32-core, 128 GiB node
    /// with one small VM: plenty of room.
    fn default() -> Self {
        Room {
            vcpu: (32, 0, 4.0, 2),
            memory_mb: (131072, 512, 1.0, 2048),
            disk_gb: (1000, 0, 1.0, 20),
        }
    }
}

/// A compute node of the fake cloud: Nova's hypervisor view of it and Placement's.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub n: u8,
    /// `vcpus_used` and `memory_mb_used` as Nova's hypervisor listing shows them.
    pub nova_used: (i64, i64),
    /// `None`: Placement has no provider for it (404).
    pub room: Option<Room>,
}

impl Node {
    pub fn new(name: &str, n: u8) -> Node {
        Node {
            name: name.into(),
            n,
            nova_used: (4, 8192),
            room: Some(Room::default()),
        }
    }
}

/// A hypervisor at 2.87 as `/os-hypervisors/detail` shows it (sizes still reported).
fn hypervisor(node: &Node) -> Value {
    let (name, n) = (node.name.as_str(), node.n);
    let (vcpus_used, memory_mb_used) = node.nova_used;
    json!({
        "id": provider_uuid(n),
        "hypervisor_hostname": name,
        "hypervisor_type": "QEMU",
        "hypervisor_version": 6002000,
        "state": "up",
        "status": "enabled",
        "host_ip": format!("192.0.2.1{n}"),
        "service": {"host": name, "id": format!("7a2b3c4d-0000-4000-8000-00000000000{n}"), "disabled_reason": null},
        "vcpus": 32, "vcpus_used": vcpus_used,
        "memory_mb": 131072, "memory_mb_used": memory_mb_used,
        "local_gb": 1000, "local_gb_used": 40,
        "free_ram_mb": 131072 - memory_mb_used, "free_disk_gb": 960, "disk_available_least": 950,
        "current_workload": 0, "running_vms": 1,
        "cpu_info": "{\"arch\": \"x86_64\", \"model\": \"Nehalem\", \"vendor\": \"Intel\"}"
    })
}

fn recorded(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openstack")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Placement 1.39's answers to `GET /resource_providers/{uuid}/inventories` and `.../usages`:
/// the recorded bodies with this room's figures.
pub fn placement_answers(room: &Room) -> (Value, Value) {
    let mut inventories = recorded("placement-1.39-inventories");
    let mut usages = recorded("placement-1.39-usages");
    for (rc, (total, reserved, ratio, used)) in [
        ("VCPU", room.vcpu),
        ("MEMORY_MB", room.memory_mb),
        ("DISK_GB", room.disk_gb),
    ] {
        let inv = &mut inventories["inventories"][rc];
        assert!(inv.is_object(), "the recorded inventories have {rc}");
        inv["total"] = json!(total);
        inv["reserved"] = json!(reserved);
        inv["allocation_ratio"] = json!(ratio);
        usages["usages"][rc] = json!(used);
    }
    (inventories, usages)
}

/// Placement's answers for one compute node's provider (a 404 in Placement's error format
/// when it has none).
pub async fn mount_placement(server: &MockServer, node: &Node) {
    let base = format!("/resource_providers/{}", provider_uuid(node.n));
    let (inventories, usages) = match &node.room {
        Some(room) => {
            let (i, u) = placement_answers(room);
            (
                ResponseTemplate::new(200).set_body_json(i),
                ResponseTemplate::new(200).set_body_json(u),
            )
        }
        None => {
            let mut body = recorded("placement-error-404-provider-not-found");
            body["errors"][0]["detail"] = json!(format!(
                "The resource could not be found.\n\n No resource provider with uuid {} found  ",
                provider_uuid(node.n)
            ));
            let nf = ResponseTemplate::new(404).set_body_json(body);
            (nf.clone(), nf)
        }
    };
    for (suffix, reply) in [("inventories", inventories), ("usages", usages)] {
        Mock::given(method("GET"))
            .and(path(format!("{base}/{suffix}")))
            .respond_with(reply.insert_header(
                "x-openstack-request-id",
                "req-4b1d2c3e-5f60-4718-9a2b-3c4d5e6f7a8b",
            ))
            .mount(server)
            .await;
    }
}

/// What the planner lists besides servers: both hypervisors, the AZ aggregate holding them,
/// no server groups; shaped as Nova 34 answers an admin at 2.87; and their room in Placement.
pub async fn mount_listings(server: &MockServer) {
    mount_cloud(server, &[Node::new(SOURCE, 1), Node::new(TARGET, 2)]).await;
}

/// [`mount_listings`] over these compute nodes, all in AZ `az1`.
pub async fn mount_cloud(server: &MockServer, nodes: &[Node]) {
    Mock::given(method("GET"))
        .and(path("/v2.1/os-hypervisors/detail"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"hypervisors": nodes.iter().map(hypervisor).collect::<Vec<_>>()}),
        ))
        .mount(server)
        .await;
    let hosts: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    Mock::given(method("GET"))
        .and(path("/v2.1/os-aggregates"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"aggregates": [{
                "id": 1, "uuid": "9b0c4a52-8e1d-4b7e-9a44-5d2c8e6f7a01", "name": "az1",
                "availability_zone": "az1", "hosts": hosts,
                "metadata": {"availability_zone": "az1"},
                "created_at": "2026-11-22T09:00:00.000000", "updated_at": null,
                "deleted": false, "deleted_at": null
            }]})),
        )
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2.1/os-server-groups"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"server_groups": []})))
        .mount(server)
        .await;
    for node in nodes {
        mount_placement(server, node).await;
    }
}

/// A Kubernetes API for node `NODE` holding one pod of a Deployment guarded by a
/// PodDisruptionBudget (the first `refusals` evictions answer 429) and one DaemonSet pod.
pub async fn mount_kubernetes(server: &MockServer, refusals: u64) {
    let node_path = format!("/api/v1/nodes/{NODE}");
    Mock::given(method("PATCH"))
        .and(path(node_path.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "Node", "apiVersion": "v1", "metadata": {"name": NODE}, "spec": {}
        })))
        .mount(server)
        .await;
    let web_pod = json!({
        "metadata": {"name": "web-7d4b9c-x2k4p", "namespace": "shop",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c", "uid": "a"}]},
        "spec": {"nodeName": NODE}, "status": {"phase": "Running"}
    });
    let ds_pod = json!({
        "metadata": {"name": "node-exporter-abcde", "namespace": "monitoring",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "node-exporter", "uid": "b"}]},
        "spec": {"nodeName": NODE}, "status": {"phase": "Running"}
    });
    let evictions = Arc::new(Mutex::new(0u64));
    let gone = Arc::new(Mutex::new(false));
    let pods = {
        let gone = gone.clone();
        move |_: &Request| {
            let items = if *gone.lock().unwrap() {
                vec![ds_pod.clone()]
            } else {
                vec![web_pod.clone(), ds_pod.clone()]
            };
            ResponseTemplate::new(200).set_body_json(json!({
                "kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items
            }))
        }
    };
    Mock::given(method("GET"))
        .and(path("/api/v1/pods"))
        .and(query_param(
            "fieldSelector",
            format!("spec.nodeName={NODE}"),
        ))
        .respond_with(pods)
        .mount(server)
        .await;
    let evict = move |_: &Request| {
        let mut n = evictions.lock().unwrap();
        *n += 1;
        if *n <= refusals {
            ResponseTemplate::new(429).set_body_json(json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                "reason": "TooManyRequests",
                "details": {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]},
                "code": 429
            }))
        } else {
            *gone.lock().unwrap() = true;
            ResponseTemplate::new(201).set_body_json(json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201
            }))
        }
    };
    Mock::given(method("POST"))
        .and(path(
            "/api/v1/namespaces/shop/pods/web-7d4b9c-x2k4p/eviction",
        ))
        .respond_with(evict)
        .mount(server)
        .await;
}

/// A Consul agent: `PUT /v1/agent/maintenance` answers 200 with an empty body, as Consul does.
pub async fn mount_consul(server: &MockServer) {
    Mock::given(method("PUT"))
        .and(path("/v1/agent/maintenance"))
        .respond_with(ResponseTemplate::new(200))
        .mount(server)
        .await;
}

/// The requests a mock received, as `METHOD path?query` lines.
pub async fn calls(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            format!(
                "{} {}{}",
                r.method,
                r.url.path(),
                r.url.query().map(|q| format!("?{q}")).unwrap_or_default()
            )
        })
        .collect()
}

/// The plan file `steward rebalance import-plan` reads, for the one test VM.
pub fn plan_json() -> Value {
    json!({"actions": [{
        "vm": VM, "vm_name": NODE, "source": SOURCE, "target": TARGET, "az": "az1",
        "ram_mb": 2048, "disk_gb": 20, "block_migration": false,
        "reason": "load5/vCPU 1.4 and steal 22% for 30 min; cmp-2 predicts 3% steal"
    }], "summary": {"candidates": 1}})
}

/// The real binary as an operator runs it in `dir`: `--config dir/<config>`, the cloud from
/// `dir/clouds.yaml` and `dir/secure.yaml`, info logs.
pub fn steward_command(
    dir: &std::path::Path,
    config: &str,
    args: &[&str],
) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_steward"));
    c.current_dir(dir)
        .env_remove("STEWARD_CONFIG")
        .env_remove("OS_CLOUD")
        .env("OS_CLIENT_CONFIG_FILE", dir.join("clouds.yaml"))
        .env("OS_CLIENT_SECURE_FILE", dir.join("secure.yaml"))
        .env("STEWARD_LOG", "steward=info")
        .arg("--config")
        .arg(dir.join(config))
        .args(args);
    c
}
