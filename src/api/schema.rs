//! The wire format of the API: the only module that knows the JSON field names of the Nova
//! callout. Parses with errors that name the field, validates, and maps onto `model`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use serde_json::value::RawValue;

use super::errors::ApiError;
use super::host_cache::{format_ref, host_ref, parse_ref, HostCache, HostDigest};
use crate::model::{
    Flavor, Host, HostFacts, Instance, Operation, SchedulingRequest, ServerGroup, Sibling, Source,
    VmFacts,
};
use crate::telemetry::{HostSample, VmSample};

/// Parse a request body, a JSON object, naming the path of the first field that does not fit.
/// Every body is an object: serde would read a struct from an array too (`[]` as a telemetry
/// push would be an empty one), so anything else is refused first, in JSON's words.
pub fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if let Some(b) = first.filter(|b| **b != b'{') {
        let got = match b {
            b'[' => "an array",
            b'"' => "a string",
            b't' | b'f' => "a boolean",
            b'n' => "null",
            b'-' | b'0'..=b'9' => "a number",
            _ => "not JSON",
        };
        return Err(ApiError::bad_request(
            format!("request body: expected a JSON object, got {got}; /openapi.json describes the body of this route"),
            None,
        ));
    }
    parse_json_at(body, None)
}

/// [`parse_json`] of a part of a body found at `at` (`hosts[3]`): errors name `at.field`.
fn parse_json_at<'a, T: Deserialize<'a>>(body: &'a [u8], at: Option<&str>) -> Result<T, ApiError> {
    // The hot path: a plain parse. Only a body that fails is parsed again to name the field.
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A syntax error is the body's fault, not a field's: naming a field would mislead.
        let is_data = inner.classify() == serde_json::error::Category::Data;
        let field = match (at, is_data && path != ".") {
            (Some(at), true) => Some(format!("{at}.{path}")),
            (Some(at), false) => Some(at.to_string()),
            (None, true) => Some(path),
            (None, false) => None,
        };
        let said = plain_words(&inner.to_string());
        let message = match &field {
            Some(f) => format!("{f}: {said}"),
            None if is_data => {
                format!("request body: {said}; /openapi.json describes the body of this route")
            }
            None => format!("request body is not valid JSON for this route: {said}"),
        };
        ApiError::bad_request(message, field)
    })
}

/// serde's message in JSON's words: no Rust type names (`expected struct CalloutRequest`),
/// `array` and `object` for `sequence` and `map`.
fn plain_words(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = ["struct ", "enum "]
        .iter()
        .filter_map(|k| rest.find(&format!("expected {k}")).map(|i| (i, *k)))
        .min()
    {
        let (i, kind) = at;
        out.push_str(&rest[..i]);
        let after = &rest[i + "expected ".len() + kind.len()..];
        let name_len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        out.push_str(if kind == "struct " {
            "expected a JSON object"
        } else {
            "expected one of the values /openapi.json lists"
        });
        rest = &after[name_len..];
    }
    out.push_str(rest);
    // A struct read from an array: `invalid length 0, expected a JSON object with 9 elements`.
    const OBJ: &str = "expected a JSON object";
    if let Some(i) = out.find("expected a JSON object with ") {
        let from = i + OBJ.len();
        if let Some(n) = out[from..].find("element") {
            let mut to = from + n + "element".len();
            if out[to..].starts_with('s') {
                to += 1;
            }
            out.replace_range(from..to, "");
        }
    }
    out.replace("invalid type: sequence", "invalid type: array")
        .replace("expected a sequence", "expected an array")
        .replace("invalid type: map", "invalid type: object")
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OperationDto {
    Boot,
    LiveMigrate,
    Migrate,
    Resize,
    Evacuate,
    Unshelve,
    Rebuild,
    /// An existing instance moved by a Nova that does not say how.
    Move,
}

impl From<OperationDto> for Operation {
    fn from(o: OperationDto) -> Operation {
        match o {
            OperationDto::Boot => Operation::Boot,
            OperationDto::LiveMigrate => Operation::LiveMigrate,
            OperationDto::Migrate => Operation::Migrate,
            OperationDto::Resize => Operation::Resize,
            OperationDto::Evacuate => Operation::Evacuate,
            OperationDto::Unshelve => Operation::Unshelve,
            OperationDto::Rebuild => Operation::Rebuild,
            OperationDto::Move => Operation::Move,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct FlavorDto {
    pub name: Option<String>,
    pub vcpus: Option<f64>,
    pub memory_mb: Option<f64>,
    pub root_gb: Option<f64>,
    pub ephemeral_gb: Option<f64>,
    pub swap: Option<f64>,
    #[serde(default)]
    pub extra_specs: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerGroupDto {
    #[schema(
        format = "uuid",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub policy: Option<String>,
    #[serde(default)]
    pub members: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceDto {
    /// Nova's instance uuid.
    #[schema(
        format = "uuid",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub uuid: String,
    pub project_id: Option<String>,
    pub flavor: Option<FlavorDto>,
    pub requested_az: Option<String>,
    pub current_host: Option<String>,
    pub current_az: Option<String>,
    /// Nova's hints: each a string or a list of strings (the first is used).
    #[schema(value_type = Option<Object>)]
    pub scheduler_hints: Option<BTreeMap<String, serde_json::Value>>,
    pub server_group: Option<ServerGroupDto>,
    pub metadata: Option<BTreeMap<String, String>>,
    /// A multi-create: the earlier instances of the same request and the hosts Nova gave them.
    pub siblings: Option<Vec<SiblingDto>>,
    /// False when the shim could not tell where every earlier instance went.
    pub siblings_complete: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SiblingDto {
    pub uuid: String,
    pub host: String,
    pub nodename: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostDto {
    /// Not blank; a (host, nodename) pair appears once per request.
    #[schema(pattern = r"\S")]
    pub host: String,
    pub nodename: Option<String>,
    /// The compute node's uuid.
    #[schema(
        format = "uuid",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub uuid: Option<String>,
    pub az: Option<String>,
    pub hypervisor_type: Option<String>,
    pub vcpus_total: Option<f64>,
    pub vcpus_used: Option<f64>,
    pub cpu_allocation_ratio: Option<f64>,
    pub memory_mb_total: Option<f64>,
    pub memory_mb_free: Option<f64>,
    pub ram_allocation_ratio: Option<f64>,
    pub disk_gb_total: Option<f64>,
    pub disk_gb_free: Option<f64>,
    pub instance_uuids: Option<Vec<String>>,
}

/// The body of `POST /v1/filter` and `POST /v1/weigh`: one Nova scheduling request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalloutRequest<'a> {
    pub operation: OperationDto,
    pub instance: InstanceDto,
    #[serde(default)]
    pub ignore_hosts: Option<Vec<String>>,
    /// Every candidate host, at most `[server] max_hosts`: a host object, or the reference of
    /// one this steward accepted before (docs/callout.md, "Host references"). Each is read
    /// once the whole list is counted.
    #[serde(borrow)]
    #[schema(min_items = 1, value_type = Vec<HostEntry>)]
    pub hosts: Vec<&'a RawValue>,
}

/// One entry of a callout's `hosts`: the host's facts, or the reference of facts sent before.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum HostEntry {
    Host(Box<HostDto>),
    Ref(HostReference),
}

/// 32 hex digits: the first 16 bytes of the SHA-256 of a host object's JSON text, exactly as
/// it was sent in an earlier callout this steward answered with `X-Steward-Host-Cache`.
#[derive(Debug, Clone, Deserialize)]
pub struct HostReference(pub String);

impl utoipa::PartialSchema for HostReference {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9a-fA-F]{32}$"))
            .description(Some(
                "A host reference: the first 16 bytes (32 hex digits) of the SHA-256 of a host \
                 object's JSON text, exactly as sent in an earlier callout that this steward \
                 answered with `X-Steward-Host-Cache`",
            ))
            .into()
    }
}

impl ToSchema for HostReference {}

fn non_negative(
    value: Option<f64>,
    field: impl FnOnce() -> String,
) -> Result<Option<f64>, ApiError> {
    match value {
        Some(v) if !v.is_finite() || v < 0.0 => {
            let f = field();
            Err(ApiError::bad_request(
                format!("{f}: {v} is not a finite number >= 0"),
                Some(f),
            ))
        }
        v => Ok(v),
    }
}

fn positive(value: Option<f64>, field: impl FnOnce() -> String) -> Result<Option<f64>, ApiError> {
    match value {
        Some(v) if !v.is_finite() || v <= 0.0 => {
            let f = field();
            Err(ApiError::bad_request(
                format!("{f}: {v} is not a finite number > 0"),
                Some(f),
            ))
        }
        v => Ok(v),
    }
}

/// A uuid field: Nova's uuids, and nothing else, so a typo is refused rather than matching
/// nothing.
fn check_uuid(value: &str, field: impl FnOnce() -> String) -> Result<(), ApiError> {
    // The hyphenated form only, as Nova writes them (and the document's pattern says).
    if value.len() == 36 && uuid::Uuid::try_parse(value).is_ok() {
        return Ok(());
    }
    let f = field();
    Err(ApiError::bad_request(
        format!(
            "{f}: {} is not a UUID; send Nova's uuid (e.g. 6a1c3f6e-2d0b-4c4e-9a57-0e1f2a3b4c5d)",
            snippet(&format!("{value:?}"))
        ),
        Some(f),
    ))
}

fn blank_to_none(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

fn hint_value(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(items) => items.first().and_then(hint_value),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl HostDto {
    /// Check one host entry (the `i`th of its request) into the model.
    fn into_host(self, i: usize) -> Result<Host, ApiError> {
        let at = |name: &str| format!("hosts[{i}].{name}");
        if self.host.trim().is_empty() {
            return Err(ApiError::bad_request(
                format!("{}: must not be empty", at("host")),
                Some(at("host")),
            ));
        }
        if let Some(u) = self.uuid.as_deref() {
            check_uuid(u, || at("uuid"))?;
        }
        let nodename = blank_to_none(self.nodename).unwrap_or_else(|| self.host.clone());
        Ok(Host {
            vcpus_total: non_negative(self.vcpus_total, || at("vcpus_total"))?,
            vcpus_used: non_negative(self.vcpus_used, || at("vcpus_used"))?,
            cpu_allocation_ratio: positive(self.cpu_allocation_ratio, || {
                at("cpu_allocation_ratio")
            })?,
            memory_mb_total: non_negative(self.memory_mb_total, || at("memory_mb_total"))?,
            // Nova reports negative free RAM on overcommitted hosts: keep it.
            memory_mb_free: match self.memory_mb_free {
                Some(v) if !v.is_finite() => {
                    return Err(ApiError::bad_request(
                        format!("{}: {v} is not a finite number", at("memory_mb_free")),
                        Some(at("memory_mb_free")),
                    ))
                }
                v => v,
            },
            ram_allocation_ratio: positive(self.ram_allocation_ratio, || {
                at("ram_allocation_ratio")
            })?,
            disk_gb_total: non_negative(self.disk_gb_total, || at("disk_gb_total"))?,
            disk_gb_free: self.disk_gb_free.filter(|v| v.is_finite()),
            host: self.host,
            nodename,
            uuid: self.uuid,
            az: blank_to_none(self.az),
            hypervisor_type: self.hypervisor_type,
            instance_uuids: self.instance_uuids.unwrap_or_default(),
        })
    }
}

/// A callout checked into the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCallout {
    pub request: SchedulingRequest,
    /// How many of its hosts were sent by reference.
    pub by_reference: usize,
}

/// One entry of `hosts`: a host sent in full (checked), or a reference.
// Transient, one per entry, moved into an `Arc` at once: boxing would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Full(Host),
    Ref(HostDigest),
}

fn host_entry(raw: &RawValue, i: usize) -> Result<Entry, ApiError> {
    let text = raw.get();
    let at = || format!("hosts[{i}]");
    match text.as_bytes().first() {
        Some(b'{') => {
            let dto: HostDto = parse_json_at(text.as_bytes(), Some(&at()))?;
            Ok(Entry::Full(dto.into_host(i)?))
        }
        // The raw text of a JSON string is the string in quotes; a reference has nothing to
        // escape, so anything with an escape is not one.
        Some(b'"') => parse_ref(&text[1..text.len() - 1])
            .map(Entry::Ref)
            .ok_or_else(|| {
                ApiError::bad_request(
                    format!(
                        "{}: {} is not a host reference (32 hex digits, the SHA-256 prefix of a host object sent before); send the host object",
                        at(),
                        snippet(text)
                    ),
                    Some(at()),
                )
            }),
        _ => Err(ApiError::bad_request(
            format!(
                "{}: invalid type: {}, expected a host object or a host reference",
                at(),
                snippet(text)
            ),
            Some(at()),
        )),
    }
}

/// The start of a bad value, for a message.
fn snippet(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A request's hosts, and which were sent in full.
struct CalloutHosts {
    hosts: Vec<Arc<Host>>,
    /// Index in `hosts` of each host sent in full.
    full: Vec<usize>,
}

/// A request's host list, `max_hosts` at most: each entry read (or found in `cache` by its
/// reference), then the checks across entries.
fn hosts_of(
    raw: &[&RawValue],
    max_hosts: usize,
    cache: Option<&HostCache>,
) -> Result<CalloutHosts, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request(
            "hosts: at least one candidate host is needed",
            Some("hosts".into()),
        ));
    }
    if raw.len() > max_hosts {
        return Err(ApiError::too_large(format!(
            "hosts: {} candidate hosts is more than [server] max_hosts = {max_hosts}",
            raw.len()
        )));
    }
    let mut hosts: Vec<Arc<Host>> = Vec::with_capacity(raw.len());
    // Where a referenced host goes until the cache fills it in, below, in one lock.
    let placeholder = Arc::new(Host::default());
    let mut refs: Vec<(usize, HostDigest)> = Vec::new();
    let mut full: Vec<usize> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        match host_entry(r, i)? {
            Entry::Full(h) => {
                full.push(i);
                hosts.push(Arc::new(h));
            }
            Entry::Ref(digest) => {
                refs.push((i, digest));
                hosts.push(placeholder.clone());
            }
        }
    }
    if !refs.is_empty() {
        let digests: Vec<HostDigest> = refs.iter().map(|(_, d)| *d).collect();
        let found = match cache {
            Some(c) => c.resolve(&digests),
            None => Err((0..digests.len()).collect()),
        };
        match found {
            Ok(found) => {
                for ((i, _), h) in refs.iter().zip(found) {
                    hosts[*i] = h;
                }
            }
            Err(unknown) => {
                let (first, digest) = refs[unknown[0]];
                return Err(ApiError::unknown_host_refs(
                    format!(
                        "hosts[{first}]: {} of the {} host references are not in this steward's host cache (first: {}): send those hosts in full. It restarted, dropped them past [server] host_cache_entries = {}, or another replica answered the request that sent them",
                        unknown.len(),
                        refs.len(),
                        format_ref(&digest),
                        cache.map_or(0, HostCache::capacity)
                    ),
                    format!("hosts[{first}]"),
                ));
            }
        }
    }
    check_across(&hosts)?;
    Ok(CalloutHosts { hosts, full })
}

/// What no single entry shows: a (host, nodename) listed twice, a host in two AZs.
fn check_across(hosts: &[Arc<Host>]) -> Result<(), ApiError> {
    let fast = foldhash::fast::RandomState::default;
    let mut seen = HashSet::with_capacity_and_hasher(hosts.len(), fast());
    let mut host_az: HashMap<&str, Option<&str>, _> =
        HashMap::with_capacity_and_hasher(hosts.len(), fast());
    for (i, h) in hosts.iter().enumerate() {
        let at = |name: &str| format!("hosts[{i}].{name}");
        if !seen.insert((&h.host, &h.nodename)) {
            return Err(ApiError::bad_request(
                format!(
                    "{}: host {:?} with nodename {:?} is listed twice",
                    at("host"),
                    h.host,
                    h.nodename
                ),
                Some(at("host")),
            ));
        }
        let az = h.az.as_deref();
        match host_az.get(h.host.as_str()) {
            Some(first) if *first != az => {
                return Err(ApiError::bad_request(
                    format!(
                        "{}: host {:?} is listed in AZ {} and in AZ {}; a host belongs to one AZ (check its aggregates)",
                        at("az"),
                        h.host,
                        first.unwrap_or("(none)"),
                        az.unwrap_or("(none)")
                    ),
                    Some(at("az")),
                ))
            }
            Some(_) => {}
            None => {
                host_az.insert(&h.host, az);
            }
        }
    }
    Ok(())
}

impl CalloutRequest<'_> {
    /// Validate and map onto the model. Every error names its field. Hosts sent by
    /// reference come from `cache`; with `keep` (the caller sends references), the hosts sent
    /// in full are kept in it, under the digest of their text, once the whole request is valid.
    pub fn into_model(
        self,
        max_hosts: usize,
        cache: Option<&HostCache>,
        keep: bool,
    ) -> Result<ParsedCallout, ApiError> {
        let inst = self.instance;
        if inst.uuid.trim().is_empty() {
            return Err(ApiError::bad_request(
                "instance.uuid: must not be empty",
                Some("instance.uuid".into()),
            ));
        }
        check_uuid(&inst.uuid, || "instance.uuid".into())?;
        if let Some(u) = inst.server_group.as_ref().and_then(|g| g.uuid.as_deref()) {
            check_uuid(u, || "instance.server_group.uuid".into())?;
        }
        let CalloutHosts { hosts, full } = hosts_of(&self.hosts, max_hosts, cache)?;
        let f = inst.flavor.unwrap_or_default();
        let fl = |name: &str| format!("instance.flavor.{name}");
        let flavor = Flavor {
            name: f.name,
            vcpus: non_negative(f.vcpus, || fl("vcpus"))?,
            memory_mb: non_negative(f.memory_mb, || fl("memory_mb"))?,
            root_gb: non_negative(f.root_gb, || fl("root_gb"))?,
            ephemeral_gb: non_negative(f.ephemeral_gb, || fl("ephemeral_gb"))?,
            swap_mb: non_negative(f.swap, || fl("swap"))?,
            extra_specs: f.extra_specs.unwrap_or_default(),
        };
        let hints = inst
            .scheduler_hints
            .unwrap_or_default()
            .iter()
            .filter_map(|(k, v)| hint_value(v).map(|v| (k.clone(), v)))
            .collect();
        let instance = Instance {
            uuid: inst.uuid,
            project_id: inst.project_id,
            flavor,
            requested_az: blank_to_none(inst.requested_az),
            current_host: blank_to_none(inst.current_host),
            current_az: blank_to_none(inst.current_az),
            hints,
            server_group: inst.server_group.map(|g| ServerGroup {
                uuid: g.uuid,
                name: blank_to_none(g.name),
                policy: g.policy,
                members: g.members.unwrap_or_default(),
            }),
            metadata: inst.metadata.unwrap_or_default(),
            siblings: inst
                .siblings
                .unwrap_or_default()
                .into_iter()
                .map(|s| Sibling {
                    uuid: s.uuid,
                    host: s.host,
                })
                .collect(),
            siblings_incomplete: inst.siblings_complete == Some(false),
        };
        let by_reference = hosts.len() - full.len();
        let CalloutRequest {
            operation,
            ignore_hosts,
            hosts: raw,
            ..
        } = self;
        if let Some(c) = cache.filter(|_| keep) {
            c.store(
                full.iter()
                    .map(|&i| (host_ref(raw[i].get().as_bytes()), Arc::clone(&hosts[i]))),
            );
        }
        Ok(ParsedCallout {
            request: SchedulingRequest {
                operation: operation.into(),
                instance,
                ignore_hosts: ignore_hosts.unwrap_or_default(),
                hosts,
            },
            by_reference,
        })
    }
}

/// The body of `POST /v1/filter` and `POST /v1/weigh` as their handlers read it: parsed,
/// then validated into the model, hosts sent by reference taken from `cache`, those sent in
/// full kept there with `keep` (fuzzed by `fuzz/fuzz_targets/callout.rs`).
pub fn parse_callout(
    body: &[u8],
    max_hosts: usize,
    cache: Option<&HostCache>,
    keep: bool,
) -> Result<ParsedCallout, ApiError> {
    let req: CalloutRequest = parse_json(body)?;
    req.into_model(max_hosts, cache, keep)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostRef {
    pub host: String,
    pub nodename: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RejectedHost {
    /// In a compact answer: the host's index in the request's `hosts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub host: String,
    pub nodename: String,
    /// The plugin that rejected the host.
    pub plugin: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FilterResponse {
    pub request_id: String,
    pub profile: String,
    pub role: Option<String>,
    /// True when telemetry or cluster facts were missing or stale.
    pub degraded: bool,
    pub degraded_reasons: Vec<String>,
    /// Allowed hosts, in request order.
    pub allowed: Vec<HostRef>,
    pub rejected: Vec<RejectedHost>,
    /// With `?weigh=true`: the allowed hosts' raw weights, in the order of `allowed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<HostWeight>>,
}

/// The answer of `POST /v1/filter`: hosts by name, or by index with `?compact=true`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum FilterAnswer {
    Named(FilterResponse),
    Compact(CompactFilterResponse),
}

/// `POST /v1/filter?compact=true`: the filter answer with hosts named by their index in the
/// request, for callers that hold the hosts in request order (the Nova shim).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompactFilterResponse {
    pub request_id: String,
    pub profile: String,
    pub role: Option<String>,
    /// True when telemetry or cluster facts were missing or stale.
    pub degraded: bool,
    pub degraded_reasons: Vec<String>,
    /// Indexes of the allowed hosts in the request's `hosts`, ascending.
    pub allowed_indexes: Vec<usize>,
    /// Every other host, each with its `index`, in request order.
    pub rejected: Vec<RejectedHost>,
    /// With `?weigh=true`: the raw weight of each allowed host, in the order of `allowed_indexes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<f64>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExplainPart {
    pub score: f64,
    pub weight: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostWeight {
    pub host: String,
    pub nodename: String,
    /// Raw weight, higher is better; Nova normalises it.
    pub weight: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<BTreeMap<String, ExplainPart>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WeighResponse {
    pub request_id: String,
    pub profile: String,
    pub role: Option<String>,
    pub degraded: bool,
    pub degraded_reasons: Vec<String>,
    /// One per request host, in request order.
    pub weights: Vec<HostWeight>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSampleDto {
    /// Not blank.
    #[schema(pattern = r"\S")]
    pub host: String,
    pub az: Option<String>,
    /// CPU steal as a fraction of CPU time, 0.0 to 1.0.
    pub steal: Option<f64>,
    pub load5: Option<f64>,
    /// Share of the host's CPU time in use, 0.0 to 1.0.
    pub cpu_use: Option<f64>,
    pub vcpus: Option<f64>,
    /// Unix seconds; default now.
    pub observed_at: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VmSampleDto {
    /// Nova's instance uuid.
    #[schema(
        format = "uuid",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub uuid: String,
    pub host: Option<String>,
    pub role: Option<String>,
    pub steal: Option<f64>,
    pub load5: Option<f64>,
    pub vcpus: Option<f64>,
    pub observed_at: Option<f64>,
}

/// The body of `POST /v1/telemetry`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryPush {
    #[serde(default)]
    pub hosts: Vec<HostSampleDto>,
    #[serde(default)]
    pub vms: Vec<VmSampleDto>,
}

/// A push that names one subject twice: which reading would win is not the sender's to leave
/// to chance (the callout refuses a host listed twice the same way).
fn twice(field: String, what: &str, name: &str, first: &str) -> ApiError {
    ApiError::bad_request(
        format!("{field}: {what} {name:?} is listed twice (first at {first}); send one reading per {what} and push"),
        Some(field),
    )
}

/// Samples stamped more than this far ahead of steward's clock are refused.
const MAX_CLOCK_SKEW_SECONDS: f64 = 300.0;

fn cpu_fraction(v: Option<f64>, field: String) -> Result<Option<f64>, ApiError> {
    match v {
        Some(s) if s.is_finite() && s > 1.0 => Err(ApiError::bad_request(
            format!(
                "{field}: {s} is above 1.0; it is a fraction of CPU time (was a percentage sent?)"
            ),
            Some(field),
        )),
        v => non_negative(v, || field),
    }
}

fn observed(v: Option<f64>, now: f64, field: String) -> Result<f64, ApiError> {
    match v {
        None => Ok(now),
        Some(t) if t.is_finite() && t > 0.0 && t <= now + MAX_CLOCK_SKEW_SECONDS => Ok(t),
        Some(t) => Err(ApiError::bad_request(
            format!(
                "{field}: {t} is not unix seconds up to now (check the sender's clock and unit)"
            ),
            Some(field),
        )),
    }
}

impl TelemetryPush {
    pub fn into_samples(self, now: f64) -> Result<(Vec<HostSample>, Vec<VmSample>), ApiError> {
        let mut hosts = Vec::with_capacity(self.hosts.len());
        let mut first_at: HashMap<String, usize> = HashMap::with_capacity(self.hosts.len());
        for (i, h) in self.hosts.into_iter().enumerate() {
            let at = |name: &str| format!("hosts[{i}].{name}");
            if h.host.trim().is_empty() {
                return Err(ApiError::bad_request(
                    format!("{}: must not be empty", at("host")),
                    Some(at("host")),
                ));
            }
            if let Some(first) = first_at.insert(h.host.clone(), i) {
                return Err(twice(
                    at("host"),
                    "host",
                    &h.host,
                    &format!("hosts[{first}]"),
                ));
            }
            hosts.push(HostSample {
                host: h.host,
                facts: HostFacts {
                    az: blank_to_none(h.az),
                    steal: cpu_fraction(h.steal, at("steal"))?,
                    load5: non_negative(h.load5, || at("load5"))?,
                    cpu_use: cpu_fraction(h.cpu_use, at("cpu_use"))?,
                    vcpus: non_negative(h.vcpus, || at("vcpus"))?,
                    observed_at: observed(h.observed_at, now, at("observed_at"))?,
                    source: Source::Push,
                },
            });
        }
        let mut vms = Vec::with_capacity(self.vms.len());
        let mut first_at: HashMap<String, usize> = HashMap::with_capacity(self.vms.len());
        for (i, v) in self.vms.into_iter().enumerate() {
            let at = |name: &str| format!("vms[{i}].{name}");
            if v.uuid.trim().is_empty() {
                return Err(ApiError::bad_request(
                    format!("{}: must not be empty", at("uuid")),
                    Some(at("uuid")),
                ));
            }
            check_uuid(&v.uuid, || at("uuid"))?;
            if let Some(first) = first_at.insert(v.uuid.clone(), i) {
                return Err(twice(at("uuid"), "VM", &v.uuid, &format!("vms[{first}]")));
            }
            vms.push(VmSample {
                uuid: v.uuid,
                facts: VmFacts {
                    host: blank_to_none(v.host),
                    role: blank_to_none(v.role),
                    steal: cpu_fraction(v.steal, at("steal"))?,
                    load5: non_negative(v.load5, || at("load5"))?,
                    vcpus: non_negative(v.vcpus, || at("vcpus"))?,
                    observed_at: observed(v.observed_at, now, at("observed_at"))?,
                    source: Source::Push,
                    ..Default::default()
                },
            });
        }
        Ok((hosts, vms))
    }
}

/// The body of `POST /v1/telemetry` as its handler reads it: parsed, then validated into
/// samples stamped no later than `now` (fuzzed by `fuzz/fuzz_targets/telemetry.rs`).
pub fn parse_telemetry(
    body: &[u8],
    now: f64,
) -> Result<(Vec<HostSample>, Vec<VmSample>), ApiError> {
    let push: TelemetryPush = parse_json(body)?;
    push.into_samples(now)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    pub hosts: usize,
    pub vms: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TelemetryAccepted {
    pub accepted: Accepted,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginInfo {
    pub name: String,
    pub weight: f64,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProfileInfo {
    pub name: String,
    pub description: String,
    pub default: bool,
    pub plugins: Vec<PluginInfo>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProfileList {
    pub profiles: Vec<ProfileInfo>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostInfo {
    pub host: String,
    pub az: Option<String>,
    pub steal: Option<f64>,
    pub load5: Option<f64>,
    pub cpu_use: Option<f64>,
    pub vcpus: Option<f64>,
    /// When steal/load were measured (unix seconds); null: never.
    pub observed_at: Option<f64>,
    pub age_seconds: Option<f64>,
    /// False when older than `[telemetry] max_age_seconds` or never measured: then steal
    /// counts as unknown.
    pub fresh: bool,
    /// Where steal/load came from (push, prometheus), or `nova` when only Nova knows the host.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WeeklyInfo {
    /// 168 values, Monday 00:00 UTC first; null = no history for that hour.
    pub hours: Vec<Option<f64>>,
    pub weeks: u32,
    pub computed_at: f64,
    /// The hour of the week with the highest value, e.g. `Mon 20:00 UTC`.
    pub peak: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostDetail {
    #[serde(flatten)]
    pub host: HostInfo,
    /// VMs steward places on this host, by role.
    pub roles: BTreeMap<String, u32>,
    pub vms: Vec<String>,
    /// p95 steal per hour of the week, when Prometheus history was rolled up.
    pub steal_profile: Option<WeeklyInfo>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VmInfo {
    pub uuid: String,
    /// The hypervisor, shown to cloud readers only (Nova shows a server's host to admins
    /// only); null for a project-scoped caller.
    pub host: Option<String>,
    /// The VM's AZ, else its host's when steward knows it.
    pub az: Option<String>,
    pub role: Option<String>,
    pub project_id: Option<String>,
    pub flavor: Option<String>,
    pub steal: Option<f64>,
    pub load5: Option<f64>,
    pub vcpus: Option<f64>,
    pub observed_at: Option<f64>,
    pub age_seconds: Option<f64>,
    pub fresh: bool,
    pub source: String,
    /// p95 load per hour of the week of the VM's role.
    pub role_demand_profile: Option<WeeklyInfo>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostList {
    pub hosts: Vec<HostInfo>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` while a job has a problem an operator must fix (steward still
    /// answers: this is not a liveness failure).
    pub status: String,
    pub version: String,
    /// Each standing problem: the job and what to do.
    pub problems: Vec<HealthProblem>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthProblem {
    pub job: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `steward.bad_request`.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// One rebalance action as the journal holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RebalanceActionDto {
    pub id: String,
    pub plan_id: String,
    pub seq: i64,
    /// The server's UUID.
    pub vm: String,
    pub vm_name: String,
    pub source: String,
    pub target: String,
    pub az: String,
    pub ram_mb: i64,
    pub disk_gb: i64,
    pub block_migration: bool,
    pub reason: String,
    /// planned, approved, draining, migrating, rejoining, done, failed or aborted.
    pub state: String,
    /// What the action ends as once rejoined.
    pub outcome: Option<String>,
    pub migration_id: Option<String>,
    pub bytes_moved: i64,
    pub error: Option<String>,
    pub accepted_at: Option<f64>,
    pub abort_requested_at: Option<f64>,
    pub created_at: f64,
    pub updated_at: f64,
    pub finished_at: Option<f64>,
}

impl From<crate::store::journal::ActionRow> for RebalanceActionDto {
    fn from(a: crate::store::journal::ActionRow) -> Self {
        RebalanceActionDto {
            id: a.id,
            plan_id: a.plan_id,
            seq: a.seq,
            vm: a.vm,
            vm_name: a.vm_name,
            source: a.source,
            target: a.target,
            az: a.az,
            ram_mb: a.ram_mb,
            disk_gb: a.disk_gb,
            block_migration: a.block_migration,
            reason: a.reason,
            state: a.state.as_str().into(),
            outcome: a.outcome.map(|o| o.as_str().into()),
            migration_id: a.migration_id,
            bytes_moved: a.bytes_moved,
            error: a.error,
            accepted_at: a.accepted_at,
            abort_requested_at: a.abort_requested_at,
            created_at: a.created_at,
            updated_at: a.updated_at,
            finished_at: a.finished_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RebalancePlanDto {
    pub id: String,
    pub created_at: f64,
    /// proposed, approved or cancelled.
    pub state: String,
    /// The mode it was made in: dry-run, approve or auto.
    pub mode: String,
    /// The planner's summary.
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
    pub decided_by: Option<String>,
    pub decided_at: Option<f64>,
    pub actions: Vec<RebalanceActionDto>,
}

impl From<crate::store::journal::PlanRow> for RebalancePlanDto {
    fn from(p: crate::store::journal::PlanRow) -> Self {
        RebalancePlanDto {
            summary: serde_json::from_str(&p.summary)
                .unwrap_or(serde_json::Value::String(p.summary.clone())),
            id: p.id,
            created_at: p.created_at,
            state: p.state.as_str().into(),
            mode: p.mode,
            decided_by: p.decided_by,
            decided_at: p.decided_at,
            actions: p.actions.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RebalancePlanList {
    pub plans: Vec<RebalancePlanDto>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MigrationList {
    pub migrations: Vec<RebalanceActionDto>,
}

// -- the inventory repair ----------------------------------------------------------------------

/// Which nodes a repair plan or run covers, as `steward repair plan`'s flags. An empty body
/// plans every node; a run needs `nodes`, `resource_class`, `cell` or `all: true` (not both).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairSelection {
    /// Ironic node uuids or names.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Ironic's class (`baremetal-gold`) or its custom name (`CUSTOM_BAREMETAL_GOLD`).
    #[serde(default)]
    pub resource_class: Option<String>,
    /// Cell name or uuid.
    #[serde(default)]
    pub cell: Option<String>,
    /// Every node (runs only; plans cover every node when nothing is selected).
    #[serde(default)]
    pub all: bool,
}

/// `POST /v1/repair/runs/{id}/rollback`: what `steward repair rollback` does, for the
/// `openstack steward repair rollback` command. Inventories and allocations only with
/// `{"placement": true}`. Refused while the run is still running.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairRollbackBody {
    /// Also restore the nodes' inventories and the allocations.
    #[serde(default)]
    pub placement: bool,
    /// Restore Nova's flavor copies although the run also changed Placement and `placement` is
    /// false: the instances then ask for VCPU, MEMORY_MB and DISK_GB while their allocations stay
    /// custom-class only (refused without it).
    #[serde(default)]
    pub flavors_only: bool,
    /// Only these nodes of the run (uuid or name); run-wide writes (classes, flavors) are kept.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Only the run's nodes of this resource class.
    #[serde(default)]
    pub resource_class: Option<String>,
    /// Only the run's nodes in this cell (name or uuid).
    #[serde(default)]
    pub cell: Option<String>,
}

fn blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// The body of `POST /v1/repair/plans` as its handler reads it: empty means every node.
pub fn parse_repair_selection(body: &[u8]) -> Result<RepairSelection, ApiError> {
    if blank(body) {
        return Ok(RepairSelection::default());
    }
    parse_json(body)
}

/// The body of `POST /v1/repair/runs` as its handler reads it: a run needs a selection or
/// `all: true`, never both, so an empty body is refused.
pub fn parse_repair_run_selection(body: &[u8]) -> Result<RepairSelection, ApiError> {
    let sel = parse_repair_selection(body)?;
    let selected = !sel.nodes.is_empty() || sel.resource_class.is_some() || sel.cell.is_some();
    if selected == sel.all {
        return Err(ApiError::bad_request(
            "a run needs a selection: nodes, resource_class, cell, or all = true (not both)",
            Some("all".into()),
        ));
    }
    Ok(sel)
}

/// The body of `POST /v1/repair/runs/{id}/rollback` as its handler reads it: empty is `{}`.
pub fn parse_repair_rollback(body: &[u8]) -> Result<RepairRollbackBody, ApiError> {
    if blank(body) {
        return Ok(RepairRollbackBody::default());
    }
    parse_json(body)
}

/// One step of a repair plan, in the order it runs. `action` says which; the other fields are
/// those of that action (a step names targets, not generations: the executor reads the current
/// generation right before each write).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairStepDto {
    /// ensure_resource_class, set_flavor_extra_specs, rewrite_instance_flavor,
    /// rewrite_request_spec, add_custom_inventory, shrink_allocation,
    /// set_custom_only_inventory, check_usage or set_node_resource_class (classify).
    pub action: String,
    /// The Ironic node whose resource_class classify sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The custom resource class (`CUSTOM_GOLD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor_name: Option<String>,
    /// The extra specs written (`resources:CUSTOM_GOLD: "1"`, `resources:VCPU: "0"`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specs: Option<BTreeMap<String, String>>,
    /// The instance uuid whose embedded flavor or request spec is rewritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The cell (uuid) holding the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
    /// Which copies: cur, old, new (`instance_extra.flavor`) or request_spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<Vec<String>>,
    /// The resource provider (the node's uuid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The allocation's consumer: the instance, or a migration holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// The allocation before the shrink, class to amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<BTreeMap<String, i64>>,
    /// The usage of `class` the check expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<i64>,
}

/// What is wrong with one node and the ordered steps that fix it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairNodePlanDto {
    /// The Ironic node uuid (also its resource provider's uuid).
    pub node: String,
    pub name: Option<String>,
    /// The custom class (`CUSTOM_GOLD`), when the node has a resource class.
    pub class: Option<String>,
    /// clean, needs_repair, skipped or blocked (nothing is changed on a skipped or blocked
    /// node; `problems` says why, `blockers` names the consumers in the way).
    pub status: String,
    /// What is wrong, one sentence each (or why the node is skipped).
    pub problems: Vec<String>,
    /// Facts worth knowing that change nothing (maintenance, a migration consumer).
    pub notes: Vec<String>,
    /// The consumers whose allocations would not fit the node's inventory after the repair.
    pub blockers: Vec<RepairBlockerDto>,
    pub steps: Vec<RepairStepDto>,
}

/// A consumer that blocks a node's repair.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairBlockerDto {
    /// The Placement consumer uuid.
    pub consumer: String,
    /// instance (on this node), migration, instance_elsewhere or unknown.
    pub kind: String,
    /// What Nova knows of it, in a sentence.
    pub what: String,
    /// What it holds on the node now, class to amount.
    pub holds: BTreeMap<String, i64>,
    /// What it would hold after the repair.
    pub holds_after: BTreeMap<String, i64>,
    /// Why it does not fit.
    pub reason: String,
    /// The command that shows it (`openstack resource provider allocation show UUID`).
    pub command: String,
}

/// A repair plan, what `steward repair plan -f json` prints. Changes nothing.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairPlanDto {
    /// Steps for the whole run, before any node: classes, then flavors.
    pub global: Vec<RepairStepDto>,
    pub nodes: Vec<RepairNodePlanDto>,
}

/// A repair run started in the background (202; `Location` names it).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RepairRunStarted {
    pub run_id: String,
    /// True when the run picks up an interrupted one (same run id, one rollback covers both).
    pub resumed: bool,
    /// running.
    pub status: String,
    /// Nodes the plan covers.
    pub nodes: usize,
}

/// Nothing to repair in the selection and no interrupted run to finish (200).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RepairNothingToDo {
    /// Always true.
    pub nothing_to_do: bool,
    /// Nodes the selection covers.
    pub nodes: usize,
}

/// A repair run: progress from the journal, and the per-node result once finished.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RepairRunDto {
    pub id: String,
    /// running, ok, blocked, failed, rolled_back or partly_rolled_back (scoped or flavors-only).
    pub status: String,
    pub started_at: f64,
    pub finished_at: Option<f64>,
    /// Journaled writes by state (begun, done, ...).
    pub writes: BTreeMap<String, usize>,
    /// Nodes with at least one journaled write.
    pub nodes_touched: usize,
    /// The run's report once finished (`run_id`, `resumed`, `ok`, `global_error`, `nodes`:
    /// `[{node, result: repaired|failed|skipped|clean, steps_done, error}]`), a rollback's
    /// list of restored objects, or null while the run is going; a failed run's `error` says
    /// which node and what to do.
    #[schema(value_type = Object)]
    pub result: serde_json::Value,
}

#[cfg(test)]
mod wording_tests {
    use super::*;

    #[test]
    fn no_refusal_names_a_rust_type() {
        let bodies: [&[u8]; 6] = [
            b"[]",
            br#"{"operation": "boot", "instance": [], "hosts": [{"host": "a"}]}"#,
            br#"{"operation": "boot", "instance": 3, "hosts": [{"host": "a"}]}"#,
            br#"{"operation": {}, "instance": {"uuid": "6a1c3f6e-2d0b-4c4e-9a57-0e1f2a3b4c5d"}, "hosts": [{"host": "a"}]}"#,
            br#"{"operation": "boot", "instance": {"uuid": "6a1c3f6e-2d0b-4c4e-9a57-0e1f2a3b4c5d", "flavor": [1]}, "hosts": [{"host": "a"}]}"#,
            br#"{"operation": "boot", "instance": {"uuid": "6a1c3f6e-2d0b-4c4e-9a57-0e1f2a3b4c5d", "server_group": "g"}, "hosts": [{"host": "a"}]}"#,
        ];
        for body in bodies {
            let e = parse_callout(body, 10, None, false).unwrap_err();
            for word in ["Dto", "CalloutRequest", "struct ", "enum ", "sequence"] {
                assert!(!e.message.contains(word), "{word:?} in {:?}", e.message);
            }
        }
        let e = parse_telemetry(b"[]", 1.0).unwrap_err();
        assert!(
            e.message.contains("expected a JSON object, got an array"),
            "{}",
            e.message
        );
        let e = parse_telemetry(br#"{"hosts": {"host": "a"}}"#, 1.0).unwrap_err();
        assert!(
            e.message
                .contains("hosts: invalid type: object, expected an array"),
            "{}",
            e.message
        );
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The shipped examples (what the docs tell operators to send, and the fuzzers' seeds)
    /// pass the checks: no unknown field, every uuid a uuid.
    #[test]
    fn every_shipped_example_is_accepted() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let body = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("telemetry") {
                parse_telemetry(&body, 4e9).unwrap_or_else(|e| panic!("{name}: {e}"));
            } else if name.ends_with(".json") {
                parse_callout(&body, 20_000, None, false).unwrap_or_else(|e| panic!("{name}: {e}"));
            } else {
                continue;
            }
            seen += 1;
        }
        assert!(seen >= 4, "only {seen} examples");
    }
}
