//! A stateful Nova for the recovery tests, answering as Nova 34's API does at microversion
//! 2.87 (`os-services` with UUID ids, `PUT /os-services/{id}` answering `{"service": ...}`,
//! `evacuate` answering 200 with no body, `os-migrations` records of type `evacuation`, a
//! NoValidHost that leaves the server ERROR on its host with an instance fault), and a
//! "scheduler" that keeps an evacuated server in its AZ on an up host unless told there is
//! no room. Shapes from Nova 34's `api/openstack/compute/{services,evacuate,migrations}.py`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const DOWN_FOR: f64 = 600.0;

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub az: String,
    pub service_id: String,
    pub up: bool,
    pub forced_down: bool,
    pub disabled: bool,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub host: String,
    pub az: String,
    pub status: String,
    pub task_state: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub flavor: String,
    pub fault: Option<String>,
    /// GETs left before a rebuild under way finishes.
    pub rebuild_polls: u32,
    pub rebuild_target: Option<String>,
}

#[derive(Debug, Default)]
pub struct State {
    pub hosts: Vec<Host>,
    pub servers: Vec<Server>,
    pub migrations: Vec<Value>,
    /// `evacuate` actions received, per server.
    pub evacuations: BTreeMap<String, u32>,
    /// `PUT /os-services/{id}` bodies, in order.
    pub service_puts: Vec<(String, Value)>,
    /// A force-down arrived while the fence marker file did not exist.
    pub forced_before_fence: bool,
    /// Every evacuation fails with NoValidHost.
    pub no_room: bool,
    /// GETs a rebuild stays under way.
    pub rebuild_polls: u32,
    /// Microversions the writes asked for.
    pub write_versions: Vec<String>,
}

#[derive(Clone)]
pub struct FakeNova {
    pub state: Arc<Mutex<State>>,
    /// The fencing hook's marker: a force-down before it exists is recorded as a violation.
    pub fence_marker: Option<PathBuf>,
}

pub fn uuid_of(n: u32) -> String {
    format!("6a1f0c3e-0000-4000-8000-{n:012}")
}

impl FakeNova {
    pub fn new(hosts: &[(&str, &str, bool)], fence_marker: Option<PathBuf>) -> FakeNova {
        let hosts = hosts
            .iter()
            .enumerate()
            .map(|(i, (name, az, up))| Host {
                name: name.to_string(),
                az: az.to_string(),
                service_id: format!("5e1c0a2b-0000-4000-8000-{:012}", i + 1),
                up: *up,
                forced_down: false,
                disabled: false,
            })
            .collect();
        FakeNova {
            state: Arc::new(Mutex::new(State {
                hosts,
                ..Default::default()
            })),
            fence_marker,
        }
    }

    pub fn add_server(&self, n: u32, name: &str, host: &str, meta: &[(&str, &str)]) -> String {
        let mut s = self.state.lock().unwrap();
        let az = s.hosts.iter().find(|h| h.name == host).unwrap().az.clone();
        let id = uuid_of(n);
        s.servers.push(Server {
            id: id.clone(),
            name: name.into(),
            host: host.into(),
            az,
            status: "ACTIVE".into(),
            task_state: None,
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            flavor: "m1.small".into(),
            fault: None,
            rebuild_polls: 0,
            rebuild_target: None,
        });
        id
    }

    pub fn server(&self, id: &str) -> Server {
        self.state
            .lock()
            .unwrap()
            .servers
            .iter()
            .find(|s| s.id == id)
            .unwrap()
            .clone()
    }

    pub fn evacuations_of(&self, id: &str) -> u32 {
        self.state
            .lock()
            .unwrap()
            .evacuations
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    pub fn host(&self, name: &str) -> Host {
        self.state
            .lock()
            .unwrap()
            .hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap()
            .clone()
    }

    pub async fn mount(&self, server: &MockServer) {
        Mock::given(wiremock::matchers::path_regex(
            r"^/v2\.1/(os-services|servers|os-migrations)",
        ))
        .respond_with(self.clone())
        .mount(server)
        .await;
    }

    fn service_json(h: &Host, now: f64) -> Value {
        let beat = if h.up { now - 5.0 } else { now - DOWN_FOR };
        json!({
            "id": h.service_id, "binary": "nova-compute", "host": h.name, "zone": h.az,
            "status": if h.disabled { "disabled" } else { "enabled" },
            "state": if h.up && !h.forced_down { "up" } else { "down" },
            "updated_at": nova_time(beat), "disabled_reason": null, "forced_down": h.forced_down,
        })
    }

    fn server_json(s: &Server) -> Value {
        let mut v = json!({
            "id": s.id, "name": s.name, "status": s.status, "tenant_id": "6f70656e737461636b20342065766572",
            "user_id": "fake", "OS-EXT-SRV-ATTR:host": s.host, "OS-EXT-SRV-ATTR:hypervisor_hostname": s.host,
            "OS-EXT-STS:task_state": s.task_state, "OS-EXT-STS:vm_state": s.status.to_lowercase(),
            "OS-EXT-AZ:availability_zone": s.az, "metadata": s.metadata,
            "flavor": {"original_name": s.flavor, "vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0, "swap": 0, "extra_specs": {}},
        });
        if let Some(f) = &s.fault {
            v["fault"] = json!({"code": 500, "created": "2026-12-07T07:00:00Z", "message": f});
        }
        v
    }

    /// The rebuild's end: the server lands on its target (or stays ERROR), the migration is done.
    fn advance(st: &mut State, id: &str) {
        let Some(s) = st.servers.iter_mut().find(|s| s.id == id) else {
            return;
        };
        if s.task_state.as_deref() != Some("rebuilding") {
            return;
        }
        if s.rebuild_polls > 0 {
            s.rebuild_polls -= 1;
            return;
        }
        let target = s.rebuild_target.take().unwrap();
        s.host = target.clone();
        s.task_state = None;
        for m in st.migrations.iter_mut() {
            if m["instance_uuid"] == json!(id) && m["status"] == json!("accepted") {
                m["status"] = json!("done");
                m["dest_compute"] = json!(target);
            }
        }
    }

    fn evacuate(&self, st: &mut State, id: &str, now: f64) -> ResponseTemplate {
        *st.evacuations.entry(id.to_string()).or_default() += 1;
        let Some(idx) = st.servers.iter().position(|s| s.id == id) else {
            return ResponseTemplate::new(404).set_body_json(json!({"itemNotFound": {"code": 404, "message": format!("Instance {id} could not be found.")}}));
        };
        let src = st.servers[idx].host.clone();
        let src_host = st.hosts.iter().find(|h| h.name == src).cloned().unwrap();
        if src_host.up && !src_host.forced_down {
            return ResponseTemplate::new(400).set_body_json(json!({"badRequest": {"code": 400, "message": format!("Compute service of {src} is still in use.")}}));
        }
        let mig_id = st.migrations.len() + 1;
        let az = st.servers[idx].az.clone();
        // The scheduler with the steward shim: an up host of the server's own AZ, the one
        // holding the fewest servers.
        let target = if st.no_room {
            None
        } else {
            let candidates: Vec<String> = st
                .hosts
                .iter()
                .filter(|h| h.az == az && h.up && !h.forced_down && !h.disabled && h.name != src)
                .map(|h| h.name.clone())
                .collect();
            candidates
                .into_iter()
                .min_by_key(|h| st.servers.iter().filter(|s| &s.host == h).count())
        };
        let mut mig = json!({
            "id": mig_id, "uuid": uuid_of(9000 + mig_id as u32), "instance_uuid": id, "migration_type": "evacuation",
            "status": "accepted", "source_compute": src, "dest_compute": null,
            "created_at": nova_time(now), "updated_at": null,
        });
        let s = &mut st.servers[idx];
        match target {
            Some(t) => {
                s.task_state = Some("rebuilding".into());
                s.rebuild_target = Some(t);
                s.rebuild_polls = st.rebuild_polls;
            }
            None => {
                s.status = "ERROR".into();
                s.fault =
                    Some("No valid host was found. There are not enough hosts available.".into());
                mig["status"] = json!("error");
            }
        }
        st.migrations.push(mig);
        ResponseTemplate::new(200)
            .insert_header("x-openstack-request-id", format!("req-evac-{mig_id}"))
    }
}

pub fn nova_time(unix: f64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix as i64).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl Respond for FakeNova {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let now = steward::unix_now();
        let p = req.url.path().trim_start_matches("/v2.1/").to_string();
        let q: BTreeMap<String, String> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let m = req.method.as_str();
        let mut st = self.state.lock().unwrap();
        if m != "GET" {
            let v = req
                .headers
                .get("openstack-api-version")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            st.write_versions.push(v);
        }
        if m == "GET" && p == "os-services" {
            let list: Vec<Value> = st
                .hosts
                .iter()
                .filter(|_| q.get("binary").map(String::as_str) == Some("nova-compute"))
                .map(|h| Self::service_json(h, now))
                .collect();
            return ResponseTemplate::new(200).set_body_json(json!({ "services": list }));
        }
        if m == "PUT" {
            if let Some(id) = p.strip_prefix("os-services/") {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                st.service_puts.push((id.to_string(), body.clone()));
                let forced = body["forced_down"].as_bool().unwrap_or(false);
                if forced && self.fence_marker.as_ref().is_some_and(|f| !f.exists()) {
                    st.forced_before_fence = true;
                }
                let Some(h) = st.hosts.iter_mut().find(|h| h.service_id == id) else {
                    return ResponseTemplate::new(404).set_body_json(json!({"itemNotFound": {"code": 404, "message": format!("Service {id} could not be found.")}}));
                };
                h.forced_down = forced;
                let h = h.clone();
                return ResponseTemplate::new(200)
                    .set_body_json(json!({"service": Self::service_json(&h, now)}));
            }
        }
        if m == "GET" && p == "servers/detail" {
            let host = q.get("host").cloned();
            let list: Vec<Value> = st
                .servers
                .iter()
                .filter(|s| host.as_ref().is_none_or(|h| &s.host == h))
                .map(Self::server_json)
                .collect();
            return ResponseTemplate::new(200).set_body_json(json!({ "servers": list }));
        }
        if m == "GET" && p == "os-migrations" {
            let id = q.get("instance_uuid").cloned().unwrap_or_default();
            let list: Vec<Value> = st
                .migrations
                .iter()
                .filter(|mg| mg["instance_uuid"] == json!(id))
                .cloned()
                .collect();
            return ResponseTemplate::new(200).set_body_json(json!({ "migrations": list }));
        }
        if let Some(rest) = p.strip_prefix("servers/") {
            if m == "GET" && !rest.contains('/') {
                Self::advance(&mut st, rest);
                return match st.servers.iter().find(|s| s.id == rest) {
                    Some(s) => ResponseTemplate::new(200).set_body_json(json!({"server": Self::server_json(s)})),
                    None => ResponseTemplate::new(404).set_body_json(json!({"itemNotFound": {"code": 404, "message": "Instance could not be found."}})),
                };
            }
            if m == "POST" {
                if let Some(id) = rest.strip_suffix("/action") {
                    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                    if body.get("evacuate") == Some(&json!({})) {
                        return self.evacuate(&mut st, id, now);
                    }
                    return ResponseTemplate::new(400).set_body_json(json!({"badRequest": {"code": 400, "message": format!("unexpected action body {body}")}}));
                }
            }
        }
        ResponseTemplate::new(404).set_body_json(
            json!({"itemNotFound": {"code": 404, "message": format!("{m} {p}: not in the fake")}}),
        )
    }
}
