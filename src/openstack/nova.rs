//! Nova's compute API as typed reads: hypervisors, servers (with their embedded flavors), server
//! groups and aggregates; and the live migration steward's rebalancer drives (os-migrateLive, the
//! server's migrations, abort). Wire types only; `cluster` maps them onto the model.
//!
//! Every call asks for microversion 2.87: the last one whose `/os-hypervisors/detail` still
//! reports vCPU, RAM and disk (2.88 dropped them), and late enough for embedded flavors (2.47),
//! hypervisor UUIDs (2.53) and a server group's single `policy` (2.64). Listings page until the
//! end and stop with [`Error::Paging`] when a server never does.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::paging::{self, MarkerTrail, Page, Paged};
use super::session::{Microversion, Reply, Session};
use super::{Error, Result};

/// The service type in the catalog.
pub const SERVICE_TYPE: &str = "compute";
pub const MICROVERSION: &str = "2.87";

/// How listings page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// Items asked per page. Nova caps it at its `api.max_limit` (1000 by default) anyway.
    pub page_size: u32,
    /// A listing that needs more pages than this is stopped: no real cloud pages that long at
    /// the default page size, and a broken proxy or server can send `next` links forever.
    pub max_pages: usize,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            page_size: 1000,
            max_pages: 10_000,
        }
    }
}

/// A hypervisor (compute node) as `/os-hypervisors/detail` shows it at 2.87.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Hypervisor {
    /// A UUID from 2.53 on.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub hypervisor_hostname: String,
    #[serde(default)]
    pub hypervisor_type: Option<String>,
    /// `enabled` or `disabled` (the compute service's admin state).
    #[serde(default)]
    pub status: Option<String>,
    /// `up` or `down` (the compute service's heartbeat).
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub host_ip: Option<String>,
    #[serde(default)]
    pub service: Option<HypervisorService>,
    #[serde(default)]
    pub vcpus: Option<i64>,
    #[serde(default)]
    pub vcpus_used: Option<i64>,
    #[serde(default)]
    pub memory_mb: Option<i64>,
    #[serde(default)]
    pub memory_mb_used: Option<i64>,
    #[serde(default)]
    pub local_gb: Option<i64>,
    #[serde(default)]
    pub local_gb_used: Option<i64>,
    #[serde(default)]
    pub running_vms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HypervisorService {
    /// The compute host name: what servers show as `OS-EXT-SRV-ATTR:host`.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub id: Option<String>,
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

/// A server as `/servers/detail` shows it to an admin.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Server {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(rename = "OS-EXT-SRV-ATTR:host", default)]
    pub host: Option<String>,
    #[serde(rename = "OS-EXT-SRV-ATTR:hypervisor_hostname", default)]
    pub hypervisor_hostname: Option<String>,
    #[serde(rename = "OS-EXT-AZ:availability_zone", default)]
    pub availability_zone: Option<String>,
    #[serde(default, deserialize_with = "string_map")]
    pub metadata: BTreeMap<String, String>,
    pub flavor: ServerFlavor,
}

/// The flavor embedded in a server (2.47+): a copy taken at boot or resize, with no flavor id.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerFlavor {
    #[serde(default)]
    pub original_name: Option<String>,
    #[serde(default)]
    pub vcpus: i64,
    /// MiB.
    #[serde(default)]
    pub ram: i64,
    /// GiB.
    #[serde(default)]
    pub disk: i64,
    #[serde(default)]
    pub ephemeral: i64,
    /// MiB. Older Nova wrote `""` for none.
    #[serde(default, deserialize_with = "int_or_empty")]
    pub swap: i64,
    /// Shown to admins only (policy `os_compute_api:os-flavor-extra-specs:index`).
    #[serde(default, deserialize_with = "string_map")]
    pub extra_specs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerGroup {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// 2.64+: one policy (`affinity`, `anti-affinity`, `soft-affinity`, `soft-anti-affinity`).
    #[serde(default)]
    pub policy: Option<String>,
    /// Before 2.64: a list of one.
    #[serde(default)]
    pub policies: Vec<String>,
    /// 2.64+: e.g. `{"max_server_per_host": 3}`.
    #[serde(default)]
    pub rules: BTreeMap<String, Value>,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

impl ServerGroup {
    /// The policy whichever microversion answered.
    pub fn policy(&self) -> Option<&str> {
        self.policy
            .as_deref()
            .or(self.policies.first().map(String::as_str))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Aggregate {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub uuid: Option<String>,
    pub name: String,
    #[serde(default)]
    pub availability_zone: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub hosts: Vec<String>,
    #[serde(default, deserialize_with = "string_map")]
    pub metadata: BTreeMap<String, String>,
}

/// What a live migration needs to know of one server (`GET /servers/{id}` as an admin).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct ServerState {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// `ACTIVE`, `MIGRATING`, `ERROR`, ...
    #[serde(default)]
    pub status: String,
    #[serde(rename = "OS-EXT-SRV-ATTR:host", default)]
    pub host: Option<String>,
    #[serde(rename = "OS-EXT-SRV-ATTR:hypervisor_hostname", default)]
    pub hypervisor_hostname: Option<String>,
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    pub task_state: Option<String>,
    #[serde(rename = "OS-EXT-AZ:availability_zone", default)]
    pub availability_zone: Option<String>,
    #[serde(default, deserialize_with = "string_map")]
    pub metadata: BTreeMap<String, String>,
    /// Why the server is in ERROR (Nova's instance fault), e.g. `No valid host was found`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<ServerFault>,
}

/// A server's fault as `GET /servers/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct ServerFault {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: Option<i64>,
}

/// An in-progress live migration as `GET /servers/{id}/migrations` shows it (2.23+; `uuid`
/// from 2.59). Progress counters are null until the compute host reports them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerMigration {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub uuid: Option<String>,
    /// `queued`, `preparing`, `running`, `post-migrating`, `completed`, `error`, `cancelled`...
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub source_compute: Option<String>,
    #[serde(default)]
    pub dest_compute: Option<String>,
    #[serde(default)]
    pub memory_total_bytes: Option<u64>,
    #[serde(default)]
    pub memory_processed_bytes: Option<u64>,
    #[serde(default)]
    pub memory_remaining_bytes: Option<u64>,
    #[serde(default)]
    pub disk_total_bytes: Option<u64>,
    #[serde(default)]
    pub disk_processed_bytes: Option<u64>,
    #[serde(default)]
    pub disk_remaining_bytes: Option<u64>,
}

impl ServerMigration {
    /// Bytes copied so far (RAM plus disk), as far as the compute host reported.
    pub fn processed_bytes(&self) -> u64 {
        self.memory_processed_bytes
            .unwrap_or(0)
            .saturating_add(self.disk_processed_bytes.unwrap_or(0))
    }
}

/// A server id goes into a URL path: refuse anything but a UUID before it does.
fn checked_uuid<'a>(id: &'a str, what: &str) -> Result<&'a str> {
    if uuid::Uuid::parse_str(id).is_ok() {
        Ok(id)
    } else {
        Err(Error::Argument(format!(
            "{id:?} is not a {what} UUID; Nova names servers by UUID"
        )))
    }
}

/// A flavor as `/flavors/detail` shows it to an admin (extra specs from 2.61 on).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Flavor {
    /// The flavor id users name (`flavorid` in Nova's database), not the row id.
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub vcpus: i64,
    #[serde(default)]
    pub ram: i64,
    #[serde(default)]
    pub disk: i64,
    #[serde(default, deserialize_with = "string_map")]
    pub extra_specs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Link {
    #[serde(default)]
    rel: String,
    #[serde(default)]
    href: String,
}

/// The Nova 34 policy rule that guards the read of `url` the cluster view makes, for a 403's
/// message (what to grant; `etc/keystone/nova-policy.steward.yaml` grants each to
/// `steward_reader`). `None` for a URL the view does not read.
pub fn read_policy(url: &str) -> Option<&'static str> {
    let path = url.split('?').next().unwrap_or(url);
    let rule = if path.contains("/os-hypervisors") {
        "os_compute_api:os-hypervisors:list-detail"
    } else if path.ends_with("/servers/detail") {
        "os_compute_api:servers:detail:get_all_tenants"
    } else if path.contains("/os-aggregates") {
        "os_compute_api:os-aggregates:index"
    } else if path.contains("/os-server-groups") {
        "os_compute_api:os-server-groups:index:all_projects"
    } else {
        return None;
    };
    Some(rule)
}

/// Nova's compute API through a [`Session`].
#[derive(Debug, Clone)]
pub struct Nova {
    session: Arc<Session>,
    microversion: Microversion,
    options: ListOptions,
}

impl Nova {
    pub fn new(session: Arc<Session>) -> Self {
        Nova {
            session,
            microversion: Microversion::compute(MICROVERSION),
            options: ListOptions::default(),
        }
    }

    pub fn with_list_options(mut self, options: ListOptions) -> Self {
        self.options = options;
        self
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Every hypervisor, with its sizes.
    pub async fn hypervisors(&self) -> Result<Vec<Hypervisor>> {
        self.list_by_marker("os-hypervisors/detail", &[], "hypervisors")
            .await
    }

    /// Every server of every project (admin), with host, AZ, metadata and embedded flavor.
    pub async fn servers(&self) -> Result<Vec<Server>> {
        self.list_by_marker(
            "servers/detail",
            &[("all_tenants", "1".to_string())],
            "servers",
        )
        .await
    }

    /// Every server group of every project (admin). Nova pages these by offset, without links.
    pub async fn server_groups(&self) -> Result<Vec<ServerGroup>> {
        let limit = self.options.page_size.max(1) as usize;
        let mut seen = HashSet::new();
        let next = |p: &Page<'_, ServerGroup>| {
            for g in p.items {
                // A server that ignores `offset` sends the first page again and again.
                if !seen.insert(g.id.clone()) {
                    let message = format!(
                        "server group {} came back on a later page: Nova (or a proxy) is not \
                         honouring offset; stopped after {} page(s)",
                        g.id,
                        p.page + 1
                    );
                    let url = p.reply.url.clone();
                    return Err(Error::Paging { url, message });
                }
            }
            let so_far = p.before + p.items.len();
            Ok((p.items.len() >= limit).then(|| ("offset", so_far.to_string())))
        };
        let base = [("all_projects", "True".to_string())];
        let first = Some(("offset", "0".to_string()));
        paging::list_pages(
            self,
            "os-server-groups",
            &base,
            "server_groups",
            first,
            next,
        )
        .await
    }

    /// Every host aggregate with its hosts and metadata (not paged by Nova).
    pub async fn aggregates(&self) -> Result<Vec<Aggregate>> {
        let reply = self.get("os-aggregates", &[]).await?;
        answer_at(&reply, "aggregates")
    }

    /// One server as an admin sees it: status, host and task state, for the live migration's
    /// before-image and its outcome.
    pub async fn server(&self, id: &str) -> Result<ServerState> {
        let id = checked_uuid(id, "server")?;
        let reply = self.get(&format!("servers/{id}"), &[]).await?;
        answer_at(&reply, "server")
    }

    /// `os-migrateLive` to `host` with `block_migration: "auto"` (2.25+: no `disk_over_commit`;
    /// at 2.87 no `force`, so Nova's scheduler still checks the host). Nova answers 202 with no
    /// body; a server already migrating is a 409, a host Nova does not know a 400.
    pub async fn live_migrate(&self, id: &str, host: &str) -> Result<Option<String>> {
        let id = checked_uuid(id, "server")?;
        if host.trim().is_empty() {
            return Err(Error::Argument(format!(
                "live migration of server {id}: the target host is empty; a plan must name one"
            )));
        }
        let body = serde_json::json!({
            "os-migrateLive": {"host": host, "block_migration": "auto"}
        });
        self.server_action(id, &body).await
    }

    /// `POST /servers/{id}/action` with `body` (an id already checked); Nova's request id.
    async fn server_action(&self, id: &str, body: &Value) -> Result<Option<String>> {
        let reply = self
            .write(
                reqwest::Method::POST,
                &format!("servers/{id}/action"),
                Some(body),
            )
            .await?;
        Ok(reply.request_id().map(str::to_string))
    }

    /// The server's in-progress live migrations (Nova lists no finished ones here).
    pub async fn server_migrations(&self, id: &str) -> Result<Vec<ServerMigration>> {
        let id = checked_uuid(id, "server")?;
        let reply = self.get(&format!("servers/{id}/migrations"), &[]).await?;
        answer_at(&reply, "migrations")
    }

    /// Abort an in-progress live migration (2.24+); Nova answers 202, then rolls the server back
    /// to its source. A migration that already ended is a 400, an unknown one a 404.
    pub async fn abort_migration(&self, id: &str, migration: &str) -> Result<()> {
        let id = checked_uuid(id, "server")?;
        if migration.is_empty()
            || !migration
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Error::Argument(format!(
                "server {id}: migration id {migration:?} is not an id Nova gives"
            )));
        }
        self.write(
            reqwest::Method::DELETE,
            &format!("servers/{id}/migrations/{migration}"),
            None,
        )
        .await?;
        Ok(())
    }

    /// Every flavor, public and private (admin), with its extra specs.
    pub async fn flavors(&self) -> Result<Vec<Flavor>> {
        self.list_by_marker(
            "flavors/detail",
            &[("is_public", "None".to_string())],
            "flavors",
        )
        .await
    }

    /// Add or overwrite extra specs of flavor `flavor_id` (`POST /flavors/{id}/os-extra_specs`);
    /// keys not named are left as they are. Answers the flavor's extra specs as Nova sent them.
    pub async fn set_flavor_extra_specs(
        &self,
        flavor_id: &str,
        specs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default, deserialize_with = "string_map")]
            extra_specs: BTreeMap<String, String>,
        }
        if flavor_id.is_empty() || flavor_id.contains('/') || flavor_id.contains("..") {
            return Err(Error::Argument(format!(
                "{flavor_id:?} is not a flavor id; pass the flavor's id as `openstack flavor list` \
                 shows it"
            )));
        }
        let body = serde_json::json!({ "extra_specs": specs });
        let reply = self
            .write(
                reqwest::Method::POST,
                &format!("flavors/{flavor_id}/os-extra_specs"),
                Some(&body),
            )
            .await?;
        let answer: Answer = reply.json()?;
        Ok(answer.extra_specs)
    }

    /// Remove one extra spec of a flavor (`DELETE /flavors/{id}/os-extra_specs/{key}`).
    pub async fn delete_flavor_extra_spec(&self, flavor_id: &str, key: &str) -> Result<()> {
        for (what, v) in [("flavor id", flavor_id), ("extra spec key", key)] {
            if v.is_empty() || v.contains('/') || v.contains("..") {
                return Err(Error::Argument(format!("{v:?} is not a {what}")));
            }
        }
        self.write(
            reqwest::Method::DELETE,
            &format!("flavors/{flavor_id}/os-extra_specs/{key}"),
            None,
        )
        .await
        .map(|_| ())
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Reply> {
        self.call(reqwest::Method::GET, path, query, None).await
    }

    /// A write (POST or PUT with a JSON body, or DELETE).
    async fn write(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply> {
        self.call(method, path, &[], body).await
    }

    /// One call at the client's microversion: every Nova request goes through here.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply> {
        self.session
            .request(
                method,
                SERVICE_TYPE,
                Some(&self.microversion),
                path,
                query,
                body,
            )
            .await
    }

    /// Follow `<items_key>_links` `next` links until there is none. Only the link's `marker` is
    /// used: the request goes to our own endpoint, because Nova builds links from its idea of its
    /// host name (often an internal one behind a proxy) and the token must not follow a link
    /// to another host.
    async fn list_by_marker<T: DeserializeOwned>(
        &self,
        path: &str,
        base: &[(&str, String)],
        items_key: &str,
    ) -> Result<Vec<T>> {
        let links_key = format!("{items_key}_links");
        let links_key = links_key.as_str();
        let mut trail = MarkerTrail::new("Nova");
        paging::list_pages(self, path, base, items_key, None, |p| {
            let links: Vec<Link> = match p.value.get(links_key) {
                None | Some(Value::Null) => Vec::new(),
                Some(_) => decode_at(p.reply, p.value, links_key)?,
            };
            let next = links.iter().find(|l| l.rel == "next");
            trail.follow(p, next.map(|l| l.href.as_str()), items_key)
        })
        .await
    }
}

impl Paged for Nova {
    async fn get_page(&self, path: &str, query: &[(&str, String)]) -> Result<Reply> {
        self.get(path, query).await
    }

    fn page_size(&self) -> u32 {
        self.options.page_size
    }

    fn max_pages(&self) -> usize {
        self.options.max_pages
    }

    fn too_many_pages(&self, last_url: &str) -> Error {
        Error::Paging {
            url: last_url.to_string(),
            message: format!(
                "still paging after {} pages of {}; Nova keeps sending more. Raise max_pages if \
                 the cloud is really this large",
                self.options.max_pages, self.options.page_size
            ),
        }
    }
}

/// The answer's `key`, decoded as [`decode_at`] does.
fn answer_at<T: DeserializeOwned>(reply: &Reply, key: &str) -> Result<T> {
    let value: Value = reply.json()?;
    decode_at(reply, &value, key)
}

/// Decode `value[key]`, naming the path of a bad field (`servers[3].flavor.vcpus`).
pub(crate) fn decode_at<T: DeserializeOwned>(reply: &Reply, value: &Value, key: &str) -> Result<T> {
    let fail = |message: String| Error::Decode {
        service: reply.service.clone(),
        method: reply.method.to_string(),
        url: reply.url.clone(),
        message,
    };
    let Some(inner) = value.get(key) else {
        return Err(fail(format!("the answer has no {key:?}")));
    };
    serde_path_to_error::deserialize(inner).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            key.to_string()
        } else if path.starts_with('[') {
            format!("{key}{path}")
        } else {
            format!("{key}.{path}")
        };
        fail(format!("at {at}: {}", e.inner()))
    })
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number, got {other}"
        ))),
    }
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number, got {other}"
        ))),
    }
}

fn int_or_empty<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(0),
        Value::String(s) if s.trim().is_empty() => Ok(0),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("expected a number, got {s:?}"))),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {n}"))),
        other => Err(serde::de::Error::custom(format!(
            "expected a number, got {other}"
        ))),
    }
}

/// Metadata and extra specs are string maps; a null map is empty and a non-string value keeps
/// its JSON text rather than failing the whole listing.
fn string_map<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => Ok(m
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect()),
        other => Err(serde::de::Error::custom(format!(
            "expected a mapping, got {other}"
        ))),
    }
}

fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A compute service as `GET /os-services?binary=nova-compute` shows it (2.53+: `id` is a
/// UUID, the one `PUT /os-services/{id}` takes; `updated_at` is the last heartbeat, UTC).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct ComputeService {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub binary: String,
    pub host: String,
    #[serde(default)]
    pub zone: Option<String>,
    /// `enabled` or `disabled`.
    #[serde(default)]
    pub status: String,
    /// `up` or `down`, as Nova's service group reads the heartbeat.
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub forced_down: bool,
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

/// A migration record as `GET /os-migrations` shows it (any type: live, cold, evacuation).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct MigrationRecord {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub instance_uuid: Option<String>,
    /// `live-migration`, `migration`, `resize`, `evacuation`.
    #[serde(default)]
    pub migration_type: Option<String>,
    /// For an evacuation: `accepted`, `pre-migrating`, `done`, `failed`, `error`...
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub source_compute: Option<String>,
    #[serde(default)]
    pub dest_compute: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// Nova's timestamps (`2026-12-07T06:33:37.000000`, UTC without a zone, or RFC 3339) as unix
/// seconds.
pub fn parse_nova_time(s: &str) -> Option<f64> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    let parsed = time::OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339))
        .ok()?;
    Some(parsed.unix_timestamp_nanos() as f64 / 1e9)
}

/// The calls host-failure recovery makes: the compute services, forcing one down (2.11+,
/// with the service's UUID from 2.53), the servers of a host, `evacuate` without a host
/// (2.68+: no `force`, no `onSharedStorage`: Nova's scheduler picks the host and Nova decides
/// about shared storage) and the evacuation migrations of a server. At the client's 2.87 an
/// evacuated server comes back in the state it had (2.95 would leave it stopped).
impl Nova {
    /// Every nova-compute service.
    pub async fn compute_services(&self) -> Result<Vec<ComputeService>> {
        let reply = self
            .get("os-services", &[("binary", "nova-compute".to_string())])
            .await?;
        answer_at(&reply, "services")
    }

    /// `PUT /os-services/{id}` with `{"forced_down": forced}`; answers the service as Nova
    /// saved it.
    pub async fn set_forced_down(&self, service_id: &str, forced: bool) -> Result<ComputeService> {
        let id = checked_uuid(service_id, "compute service")?;
        let body = serde_json::json!({ "forced_down": forced });
        let reply = self
            .write(
                reqwest::Method::PUT,
                &format!("os-services/{id}"),
                Some(&body),
            )
            .await?;
        answer_at(&reply, "service")
    }

    /// Every server on compute host `host` (admin, all projects).
    pub async fn servers_on_host(&self, host: &str) -> Result<Vec<Server>> {
        if host.trim().is_empty() {
            return Err(Error::Argument("the compute host name is empty".into()));
        }
        self.list_by_marker(
            "servers/detail",
            &[("all_tenants", "1".to_string()), ("host", host.to_string())],
            "servers",
        )
        .await
    }

    /// `POST /servers/{id}/action` `{"evacuate": {}}`: no host, so Nova's scheduler (with the
    /// steward shim) picks one. Answers Nova's request id.
    pub async fn evacuate(&self, id: &str) -> Result<Option<String>> {
        let id = checked_uuid(id, "server")?;
        self.server_action(id, &serde_json::json!({ "evacuate": {} }))
            .await
    }

    /// The evacuation migrations Nova recorded for one server, oldest first.
    pub async fn evacuations(&self, id: &str) -> Result<Vec<MigrationRecord>> {
        self.migrations_of(id, "evacuation").await
    }

    /// The live migrations Nova recorded for one server, finished ones too, oldest first
    /// (`GET /servers/{id}/migrations` lists only those in progress).
    pub async fn live_migrations(&self, id: &str) -> Result<Vec<MigrationRecord>> {
        self.migrations_of(id, "live-migration").await
    }

    async fn migrations_of(&self, id: &str, kind: &str) -> Result<Vec<MigrationRecord>> {
        let id = checked_uuid(id, "server")?;
        let reply = self
            .get(
                "os-migrations",
                &[
                    ("instance_uuid", id.to_string()),
                    ("migration_type", kind.to_string()),
                ],
            )
            .await?;
        let all: Vec<MigrationRecord> = answer_at(&reply, "migrations")?;
        let mut out: Vec<MigrationRecord> = all
            .into_iter()
            .filter(|m| {
                m.migration_type.as_deref() == Some(kind) && m.instance_uuid.as_deref() == Some(id)
            })
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(out)
    }

    /// The server's newest instance action named `action` (e.g. `live-migration`), with its
    /// events: `GET /servers/{id}/os-instance-actions` (newest first), then that action by
    /// its request id. `None` when the server has no such action.
    pub async fn newest_instance_action(
        &self,
        id: &str,
        action: &str,
    ) -> Result<Option<InstanceAction>> {
        let id = checked_uuid(id, "server")?;
        let reply = self
            .get(&format!("servers/{id}/os-instance-actions"), &[])
            .await?;
        let all: Vec<InstanceAction> = answer_at(&reply, "instanceActions")?;
        let Some(newest) = all.into_iter().find(|a| a.action == action) else {
            return Ok(None);
        };
        let rid = &newest.request_id;
        if rid.is_empty()
            || !rid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::Argument(format!(
                "server {id}: request id {rid:?} is not an id Nova gives"
            )));
        }
        let reply = self
            .get(&format!("servers/{id}/os-instance-actions/{rid}"), &[])
            .await?;
        answer_at(&reply, "instanceAction").map(Some)
    }
}

/// One of a server's instance actions: what was asked under which request, and (when read by
/// its request id) each service's event with its result; `details` (2.84+, admins) is the
/// error's message, e.g. `No valid host was found. ...`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InstanceAction {
    pub action: String,
    pub request_id: String,
    /// When Nova's API took the request (UTC, no zone).
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub events: Vec<InstanceActionEvent>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InstanceActionEvent {
    /// e.g. `conductor_live_migrate_instance`, `compute_live_migration`.
    pub event: String,
    /// `Success`, `Error`, or none while it runs.
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
}
