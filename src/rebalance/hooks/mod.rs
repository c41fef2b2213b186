//! Hooks around a live migration: each takes the VM's workload out of one orchestrator before
//! the move (drain) and puts it back after (rejoin). One hook per file; both steps idempotent,
//! because a resumed action runs them again and rejoin runs after every outcome.

pub mod consul;
pub mod exec;
pub mod http;
pub mod kubernetes;
pub mod settings;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use settings::HooksSettings;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a hook knows of the action it serves. Template fields: `{vm}` (server UUID),
/// `{vm_name}`, `{source}`, `{target}`, `{az}`, `{action}` (the journal's action id),
/// `{node}` (the hook's own node mapping), `{host}` (recovery's fenced host, the same as
/// `{source}`) and `{meta:<key>}` (a server metadata value).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HookContext {
    pub action: String,
    pub vm: String,
    pub vm_name: String,
    pub source: String,
    pub target: String,
    pub az: String,
    pub metadata: BTreeMap<String, String>,
}

impl HookContext {
    /// The node a VM is for an orchestrator: its server name, or a metadata key's value.
    pub fn node(&self, metadata_key: Option<&str>) -> Result<String, HookError> {
        let node = match metadata_key {
            None => self.vm_name.clone(),
            Some(k) => self.metadata.get(k).cloned().ok_or_else(|| {
                HookError(format!(
                    "server {} ({}) has no metadata key {k:?}, which names its node; set it \
                     (openstack server set --property {k}=<node> {}) or change node_from",
                    self.vm, self.vm_name, self.vm
                ))
            })?,
        };
        if node.trim().is_empty() {
            return Err(HookError(format!(
                "server {} maps to an empty node name; check node_from",
                self.vm
            )));
        }
        Ok(node)
    }

    /// Fill a template, each value escaped for where it lands (see [`Escape`]). `{name}` is a
    /// field when `name` looks like one (lower-case letters and `_`, or `meta:<key>`); any other
    /// brace is literal text. An unknown field is an error naming it, so a typo never reaches an
    /// orchestrator. Values are never read as templates themselves.
    pub fn render(&self, template: &str, node: &str, escape: Escape) -> Result<String, HookError> {
        let mut out = String::with_capacity(template.len());
        let mut json = JsonScan::default();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            json.literal(&rest[..start]);
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let field = after
                .find('}')
                .map(|end| &after[..end])
                .filter(|f| is_field(f));
            let Some(field) = field else {
                json.literal("{");
                out.push('{');
                rest = after;
                continue;
            };
            let value = self.field(field, node, template)?;
            match escape {
                Escape::Verbatim => out.push_str(&value),
                Escape::Percent => out.extend(utf8_percent_encode(&value, COMPONENT)),
                Escape::JsonString if json.in_string => {
                    let quoted = serde_json::Value::String(value).to_string();
                    out.push_str(&quoted[1..quoted.len() - 1]);
                }
                Escape::JsonString => {
                    return Err(HookError(format!(
                        "template {template:?} puts {{{field}}} outside a JSON string; write it \
                         inside quotes (\"{{{field}}}\"), so a value cannot add JSON of its own"
                    )))
                }
            }
            rest = &after[field.len() + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn field(&self, field: &str, node: &str, template: &str) -> Result<String, HookError> {
        Ok(match field {
            "vm" => self.vm.clone(),
            "vm_name" => self.vm_name.clone(),
            "source" => self.source.clone(),
            "target" => self.target.clone(),
            "az" => self.az.clone(),
            "action" => self.action.clone(),
            "node" => node.to_string(),
            // The recovery fencing hook's host (the dead hypervisor) is its `source`.
            "host" => self.source.clone(),
            f => match f.strip_prefix("meta:") {
                Some(k) => self.metadata.get(k).cloned().unwrap_or_default(),
                None => {
                    return Err(HookError(format!(
                        "template {template:?} names {{{f}}}, which is not a field; fields are \
                         vm, vm_name, source, target, az, action, node, host, meta:<key>"
                    )))
                }
            },
        })
    }

    /// A context whose every field holds `value`, to check a template once at start-up.
    pub fn filled_with(value: &str) -> HookContext {
        HookContext {
            action: value.into(),
            vm: value.into(),
            vm_name: value.into(),
            source: value.into(),
            target: value.into(),
            az: value.into(),
            metadata: BTreeMap::new(),
        }
    }
}

/// How a template value is escaped, by where the filled template lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As it is: one argv element of an exec hook (no shell ever parses it), or a value that
    /// the caller encodes itself (a query pair appended through `url`).
    Verbatim,
    /// Percent-encoded, every byte but `A-Za-z0-9-._~`: URLs (a value stays one path segment
    /// or one query value) and header values (no line break or non-ASCII reaches the wire).
    Percent,
    /// Through the JSON encoder as the contents of a JSON string; a field outside a string
    /// in the template is refused.
    JsonString,
}

/// Everything but RFC 3986's unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Whether the template's text so far leaves us inside a JSON string.
#[derive(Default)]
struct JsonScan {
    in_string: bool,
    escaped: bool,
}

impl JsonScan {
    fn literal(&mut self, text: &str) {
        for c in text.chars() {
            match (self.in_string, self.escaped, c) {
                (true, true, _) => self.escaped = false,
                (true, false, '\\') => self.escaped = true,
                (_, false, '"') => self.in_string = !self.in_string,
                _ => {}
            }
        }
    }
}

/// What can name a template field: `[a-z_]+`, or `meta:` and a key without braces or blanks.
fn is_field(f: &str) -> bool {
    match f.strip_prefix("meta:") {
        Some(k) => !k.is_empty() && !k.contains(|c: char| c.is_whitespace() || c == '"'),
        None => !f.is_empty() && f.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
    }
}

/// A hook step failed; the message names the object (node, pod, agent) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

pub trait Hook: Send + Sync {
    /// A short label (`kubernetes`, `consul`, an exec or HTTP hook's name) for logs and metrics.
    fn name(&self) -> &str;
    /// Take the VM's workload out. Must be safe to run twice.
    fn drain<'a>(&'a self, ctx: &'a HookContext) -> BoxFuture<'a, Result<(), HookError>>;
    /// Put it back. Must be safe to run twice and when drain never ran.
    fn rejoin<'a>(&'a self, ctx: &'a HookContext) -> BoxFuture<'a, Result<(), HookError>>;
}

/// The configured hooks in drain order: kubernetes, consul, exec..., http...
pub fn from_settings(s: &HooksSettings) -> Result<Vec<Arc<dyn Hook>>, HookError> {
    let mut out: Vec<Arc<dyn Hook>> = Vec::new();
    if let Some(k) = &s.kubernetes {
        out.push(Arc::new(kubernetes::Kubernetes::new(k)?));
    }
    if let Some(c) = &s.consul {
        out.push(Arc::new(consul::Consul::new(c)?));
    }
    for e in &s.exec {
        out.push(Arc::new(exec::Exec::new(e)));
    }
    for h in &s.http {
        out.push(Arc::new(http::Http::new(h)?));
    }
    Ok(out)
}

/// A file's contents as a secret, trimmed; the error names the file and the key.
pub(crate) fn read_token(file: &std::path::Path, key: &str) -> Result<String, HookError> {
    std::fs::read_to_string(file)
        .map(|t| t.trim().to_string())
        .map_err(|e| HookError(format!("cannot read {key} {}: {e}", file.display())))
}

/// An HTTP client with a timeout, for the hooks that speak HTTP.
pub(crate) fn http_client(
    timeout_seconds: f64,
    ca_file: Option<&std::path::Path>,
) -> Result<reqwest::Client, HookError> {
    let mut b = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs_f64(timeout_seconds))
        .user_agent(concat!("nova-steward/", env!("CARGO_PKG_VERSION")));
    if let Some(f) = ca_file {
        let pem = std::fs::read(f)
            .map_err(|e| HookError(format!("cannot read CA file {}: {e}", f.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| HookError(format!("CA file {} is not PEM: {e}", f.display())))?;
        b = b.add_root_certificate(cert);
    }
    b.build()
        .map_err(|e| HookError(format!("cannot set up an HTTP client: {e}")))
}

/// The start of a body, for error messages (a hook's service may answer pages of HTML).
pub(crate) fn snippet(body: &str) -> String {
    let t: String = body.chars().take(300).collect();
    t.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> HookContext {
        HookContext {
            action: "a1".into(),
            vm: "4c1b6f0e-0000-4000-8000-000000000001".into(),
            vm_name: "web-1".into(),
            source: "cmp-1".into(),
            target: "cmp 2".into(),
            az: "az1".into(),
            metadata: [("k8s_node".to_string(), "node-a".to_string())].into(),
        }
    }

    #[test]
    fn templates_fill_every_field_and_encode_for_urls() {
        let c = ctx();
        assert_eq!(
            c.render(
                "{vm_name} {source}->{target} in {az} ({action}) {node} {meta:k8s_node}",
                "n",
                Escape::Verbatim
            )
            .unwrap(),
            "web-1 cmp-1->cmp 2 in az1 (a1) n node-a"
        );
        assert_eq!(
            c.render("/x?t={target}", "n", Escape::Percent).unwrap(),
            "/x?t=cmp%202"
        );
        let e = c.render("{tagret}", "n", Escape::Verbatim).unwrap_err();
        assert!(e.0.contains("{tagret}"), "{e}");
        // Other braces are text: a JSON template keeps its own.
        assert_eq!(
            c.render(
                r#"{"vm": "{vm}", "n": {"x": 1}} {vm"#,
                "n",
                Escape::JsonString
            )
            .unwrap(),
            r#"{"vm": "4c1b6f0e-0000-4000-8000-000000000001", "n": {"x": 1}} {vm"#
        );
    }

    #[test]
    fn node_mapping_by_name_or_metadata() {
        let c = ctx();
        assert_eq!(c.node(None).unwrap(), "web-1");
        assert_eq!(c.node(Some("k8s_node")).unwrap(), "node-a");
        let e = c.node(Some("consul_node")).unwrap_err();
        assert!(e.0.contains("consul_node") && e.0.contains(&c.vm), "{e}");
    }
}
