//! Ironic's bare-metal API as typed reads: nodes with the fields the inventory repair needs
//! (uuid, resource class, instance, maintenance, provision state), paged until the end.
//!
//! Calls ask for microversion 1.46 through `X-OpenStack-Ironic-API-Version` (Ironic does not
//! read `OpenStack-API-Version`): `resource_class` needs 1.21, `fields` 1.8. Error bodies are
//! double-encoded JSON (`{"error_message": "{\"faultstring\": ...}"}`); the session reads them.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::paging::{self, MarkerTrail, Paged};
use super::session::{Microversion, Reply, Session};
use super::{Error, Result};

pub const SERVICE_TYPE: &str = "baremetal";
pub const MICROVERSION: &str = "1.46";
/// The fields asked for: `/v1/nodes` with `fields` keeps answers small at thousands of nodes.
pub const NODE_FIELDS: &str = "uuid,name,resource_class,instance_uuid,maintenance,provision_state";

/// One node as the repair sees it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Node {
    pub uuid: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `None` or `""` on nodes enrolled without one: the repair cannot name their class.
    #[serde(default)]
    pub resource_class: Option<String>,
    #[serde(default)]
    pub instance_uuid: Option<String>,
    #[serde(default)]
    pub maintenance: bool,
    #[serde(default)]
    pub provision_state: Option<String>,
}

/// Which nodes to list (Ironic filters server-side).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFilter {
    pub resource_class: Option<String>,
}

/// Ironic through a [`Session`].
#[derive(Debug, Clone)]
pub struct Ironic {
    session: Arc<Session>,
    microversion: Microversion,
    page_size: u32,
    max_pages: usize,
}

impl Ironic {
    pub fn new(session: Arc<Session>) -> Self {
        Ironic {
            session,
            microversion: Microversion::baremetal(MICROVERSION),
            page_size: 1000,
            max_pages: 10_000,
        }
    }

    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Stop a listing that needs more pages than this (default 10,000).
    pub fn with_max_pages(mut self, max_pages: usize) -> Self {
        self.max_pages = max_pages.max(1);
        self
    }

    /// One node by uuid or name.
    pub async fn node(&self, ident: &str) -> Result<Node> {
        if ident.is_empty() || ident.contains('/') || ident.contains("..") {
            return Err(Error::Argument(format!(
                "{ident:?} is not an Ironic node uuid or name"
            )));
        }
        self.session
            .get_json(
                SERVICE_TYPE,
                Some(&self.microversion),
                &format!("v1/nodes/{ident}"),
                &[("fields", NODE_FIELDS.to_string())],
            )
            .await
    }

    /// One node's hardware facts for `steward repair classify`: its `properties` (with
    /// `capabilities`) beside the usual fields.
    pub async fn node_properties(&self, uuid: &str) -> Result<(Node, Value)> {
        let v: Value = self
            .session
            .get_json(
                SERVICE_TYPE,
                Some(&self.microversion),
                &format!("v1/nodes/{uuid}"),
                &[("fields", format!("{NODE_FIELDS},properties"))],
            )
            .await?;
        let node: Node = serde_json::from_value(v.clone()).map_err(|e| Error::Decode {
            service: SERVICE_TYPE.into(),
            method: "GET".into(),
            url: format!("v1/nodes/{uuid}"),
            message: e.to_string(),
        })?;
        Ok((node, v.get("properties").cloned().unwrap_or(Value::Null)))
    }

    /// The inspection inventory of a node (`GET /v1/nodes/{id}/inventory`, API 1.81): None
    /// when the node was never inspected (404) or Ironic is older than 1.81 (406).
    pub async fn inspection_inventory(&self, uuid: &str) -> Result<Option<Value>> {
        let mv = Microversion::baremetal("1.81");
        match self
            .session
            .get_json::<Value>(
                SERVICE_TYPE,
                Some(&mv),
                &format!("v1/nodes/{uuid}/inventory"),
                &[],
            )
            .await
        {
            Ok(v) => Ok(v.get("inventory").cloned()),
            Err(e) if matches!(e.status(), Some(404) | Some(406)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Set a node's `resource_class` (JSON patch). Ironic refuses (400) to change an existing
    /// class outside enroll, inspecting, inspect wait, manageable and available; a node without
    /// one gets it in any state.
    pub async fn set_resource_class(&self, uuid: &str, class: Option<&str>) -> Result<()> {
        let patch = match class {
            Some(c) => serde_json::json!([{"op": "add", "path": "/resource_class", "value": c}]),
            None => serde_json::json!([{"op": "remove", "path": "/resource_class"}]),
        };
        self.session
            .request(
                reqwest::Method::PATCH,
                SERVICE_TYPE,
                Some(&self.microversion),
                &format!("v1/nodes/{uuid}"),
                &[],
                Some(&patch),
            )
            .await?;
        Ok(())
    }

    /// Every node (matching `filter`). Follows `next` links by their marker only, so the token
    /// never follows a link to another host; stops on a repeated marker.
    pub async fn nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>> {
        let mut base = vec![("fields", NODE_FIELDS.to_string())];
        if let Some(rc) = &filter.resource_class {
            base.push(("resource_class", rc.clone()));
        }
        let mut trail = MarkerTrail::new("Ironic");
        paging::list_pages(self, "v1/nodes", &base, "nodes", None, |p| {
            trail.follow(p, p.value.get("next").and_then(Value::as_str), "nodes")
        })
        .await
    }
}

impl Paged for Ironic {
    async fn get_page(&self, path: &str, query: &[(&str, String)]) -> Result<Reply> {
        self.session
            .request(
                reqwest::Method::GET,
                SERVICE_TYPE,
                Some(&self.microversion),
                path,
                query,
                None,
            )
            .await
    }

    fn page_size(&self) -> u32 {
        self.page_size
    }

    fn max_pages(&self) -> usize {
        self.max_pages
    }

    fn too_many_pages(&self, last_url: &str) -> Error {
        Error::Paging {
            url: last_url.to_string(),
            message: format!(
                "still paging after {} pages of {} nodes; Ironic keeps sending more",
                self.max_pages, self.page_size
            ),
        }
    }
}
