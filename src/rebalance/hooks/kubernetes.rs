//! The Kubernetes hook: the VM is a Kubernetes node. Drain = cordon, then evict its pods through
//! the Eviction API (a 429 means a PodDisruptionBudget says not now: ask again later) and wait
//! until they are gone, as `kubectl drain` does; rejoin = uncordon.
//!
//! Pods owned by a DaemonSet and mirror (static) pods are left alone, as `kubectl drain
//! --ignore-daemonsets` does: their controller would put them straight back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::settings::{parse_node_from, KubernetesHookSettings};
use super::{http_client, read_token, snippet, BoxFuture, Hook, HookContext, HookError};

pub struct Kubernetes {
    api: String,
    token: Option<String>,
    node_key: Option<String>,
    client: reqwest::Client,
    retry: Duration,
    timeout: Duration,
}

#[derive(Debug, Deserialize)]
struct PodList {
    #[serde(default)]
    items: Vec<Pod>,
}

#[derive(Debug, Deserialize)]
struct Pod {
    metadata: PodMeta,
}

#[derive(Debug, Deserialize)]
struct PodMeta {
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default, rename = "ownerReferences")]
    owner_references: Vec<OwnerRef>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct OwnerRef {
    #[serde(default)]
    kind: String,
}

impl Pod {
    fn evictable(&self) -> bool {
        !self
            .metadata
            .owner_references
            .iter()
            .any(|o| o.kind == "DaemonSet")
            && !self
                .metadata
                .annotations
                .contains_key("kubernetes.io/config.mirror")
    }
}

impl Kubernetes {
    pub fn new(s: &KubernetesHookSettings) -> Result<Self, HookError> {
        let node_key = parse_node_from(&s.node_from)
            .map_err(|m| HookError(format!("rebalance.hooks.kubernetes.node_from: {m}")))?;
        let token = s
            .token_file
            .as_deref()
            .map(|f| read_token(f, "rebalance.hooks.kubernetes.token_file"))
            .transpose()?;
        Ok(Kubernetes {
            api: s.api_url.trim_end_matches('/').to_string(),
            token,
            node_key,
            client: http_client(s.request_timeout_seconds, s.ca_file.as_deref())?,
            retry: Duration::from_secs_f64(s.evict_retry_seconds),
            timeout: Duration::from_secs_f64(s.drain_timeout_seconds),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, String), HookError> {
        let url = format!("{}{path}", self.api);
        let mut req = self
            .client
            .request(method.clone(), &url)
            .header("Accept", "application/json");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", content_type).body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| {
            HookError(format!(
                "Kubernetes API {method} {url}: {e}; check rebalance.hooks.kubernetes.api_url"
            ))
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, text))
    }

    async fn set_unschedulable(&self, node: &str, on: bool) -> Result<(), HookError> {
        let path = format!("/api/v1/nodes/{}", seg(node));
        let (status, text) = self
            .call(
                Method::PATCH,
                &path,
                "application/strategic-merge-patch+json",
                Some(json!({"spec": {"unschedulable": on}})),
            )
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(HookError(format!(
                "Kubernetes node {node}: {} failed with {status}: {}{}",
                if on { "cordon" } else { "uncordon" },
                snippet(&text),
                if status == StatusCode::NOT_FOUND {
                    "; the node name comes from rebalance.hooks.kubernetes.node_from"
                } else {
                    ""
                }
            )))
        }
    }

    async fn pods_on(&self, node: &str) -> Result<Vec<Pod>, HookError> {
        let selector: String =
            url::form_urlencoded::byte_serialize(format!("spec.nodeName={node}").as_bytes())
                .collect();
        let (status, text) = self
            .call(
                Method::GET,
                &format!("/api/v1/pods?fieldSelector={selector}"),
                "",
                None,
            )
            .await?;
        if !status.is_success() {
            return Err(HookError(format!(
                "Kubernetes node {node}: listing its pods answered {status}: {}",
                snippet(&text)
            )));
        }
        let list: PodList = serde_json::from_str(&text).map_err(|e| {
            HookError(format!(
                "Kubernetes node {node}: the pod list is not what the API sends: {e}"
            ))
        })?;
        Ok(list.items.into_iter().filter(Pod::evictable).collect())
    }

    /// One eviction: Ok(true) evicted or already gone, Ok(false) refused by a budget for now.
    async fn evict(&self, pod: &Pod) -> Result<bool, HookError> {
        let m = &pod.metadata;
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}/eviction",
            seg(&m.namespace),
            seg(&m.name)
        );
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": m.name, "namespace": m.namespace}
        });
        let (status, text) = self
            .call(Method::POST, &path, "application/json", Some(body))
            .await?;
        match status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(true),
            StatusCode::TOO_MANY_REQUESTS => Ok(false),
            s => Err(HookError(format!(
                "Kubernetes pod {}/{}: eviction answered {s}: {}",
                m.namespace,
                m.name,
                snippet(&text)
            ))),
        }
    }

    async fn drain_node(&self, node: &str) -> Result<(), HookError> {
        self.set_unschedulable(node, true).await?;
        let started = Instant::now();
        let mut evicted: BTreeSet<(String, String)> = BTreeSet::new();
        loop {
            let pods = self.pods_on(node).await?;
            if pods.is_empty() {
                tracing::info!(node, pods = evicted.len(), "kubernetes node drained");
                return Ok(());
            }
            let mut refused = Vec::new();
            for p in &pods {
                let key = (p.metadata.namespace.clone(), p.metadata.name.clone());
                // An evicted pod is terminating: wait for it to go rather than evict it again.
                if evicted.contains(&key) {
                    continue;
                }
                if self.evict(p).await? {
                    evicted.insert(key);
                } else {
                    refused.push(format!("{}/{}", key.0, key.1));
                }
            }
            if started.elapsed() >= self.timeout {
                return Err(HookError(format!(
                    "Kubernetes node {node}: not drained after {:.0} s; {} pod(s) left{}; raise \
                     rebalance.hooks.kubernetes.drain_timeout_seconds or check the budgets",
                    self.timeout.as_secs_f64(),
                    pods.len(),
                    if refused.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", eviction refused by a PodDisruptionBudget for {}",
                            refused.join(", ")
                        )
                    }
                )));
            }
            if !refused.is_empty() {
                tracing::info!(node, pods = %refused.join(","), "eviction refused by a PodDisruptionBudget (429); asking again later");
            }
            tokio::time::sleep(self.retry).await;
        }
    }
}

/// One path segment, percent-encoded (names are DNS labels, but the API is not ours to trust).
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl Hook for Kubernetes {
    fn name(&self) -> &str {
        "kubernetes"
    }

    fn drain<'a>(&'a self, ctx: &'a HookContext) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(async move {
            let node = ctx.node(self.node_key.as_deref())?;
            self.drain_node(&node).await
        })
    }

    fn rejoin<'a>(&'a self, ctx: &'a HookContext) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(async move {
            let node = ctx.node(self.node_key.as_deref())?;
            self.set_unschedulable(&node, false).await
        })
    }
}
