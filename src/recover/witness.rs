//! The optional witnesses, read over HTTP: a Consul node check, the BMC's power state and a
//! Kubernetes node's `Ready` condition. Adapters only: each answers a [`WitnessReport`]; one
//! that cannot be read answers `unknown` with why (it never confirms a death).

use serde_json::Value;

use super::suspect::{Verdict, WitnessReport};
use super::{
    BmcWitnessSettings, ConsulWitnessSettings, KubernetesWitnessSettings, WitnessSettings,
};
use crate::rebalance::hooks::{http_client, read_token, snippet, Escape, HookContext};

/// The configured witnesses, ready to ask.
pub struct Witnesses {
    consul: Option<(ConsulWitnessSettings, reqwest::Client, Option<String>)>,
    bmc: Option<(BmcWitnessSettings, reqwest::Client)>,
    kubernetes: Option<(KubernetesWitnessSettings, reqwest::Client, Option<String>)>,
}

/// Fill `{host}` (and the other hook fields) in a template, each value percent-encoded: the
/// templates are URL parts and header values.
fn render(template: &str, host: &str) -> Result<String, String> {
    let ctx = HookContext {
        vm: host.into(),
        vm_name: host.into(),
        source: host.into(),
        ..Default::default()
    };
    ctx.render(template, host, Escape::Percent).map_err(|e| e.0)
}

impl Witnesses {
    pub fn from_settings(s: &WitnessSettings) -> Result<Witnesses, String> {
        let token = |f: &Option<std::path::PathBuf>, key: &str| {
            f.as_ref()
                .map(|f| read_token(f, key).map_err(|e| e.0))
                .transpose()
        };
        Ok(Witnesses {
            consul: match &s.consul {
                Some(c) => Some((
                    c.clone(),
                    http_client(c.timeout_seconds, None).map_err(|e| e.0)?,
                    token(&c.token_file, "recovery.witnesses.consul.token_file")?,
                )),
                None => None,
            },
            bmc: match &s.bmc {
                Some(b) => Some((
                    b.clone(),
                    http_client(b.timeout_seconds, None).map_err(|e| e.0)?,
                )),
                None => None,
            },
            kubernetes: match &s.kubernetes {
                Some(k) => Some((
                    k.clone(),
                    http_client(k.timeout_seconds, k.ca_file.as_deref()).map_err(|e| e.0)?,
                    token(&k.token_file, "recovery.witnesses.kubernetes.token_file")?,
                )),
                None => None,
            },
        })
    }

    pub fn is_empty(&self) -> bool {
        self.consul.is_none() && self.bmc.is_none() && self.kubernetes.is_none()
    }

    /// Ask every configured witness about `host`.
    pub async fn ask(&self, host: &str, now: f64) -> Vec<WitnessReport> {
        let mut out = Vec::new();
        let report = |witness: &str, r: Result<(Verdict, String), String>| {
            let (verdict, detail) = r.unwrap_or_else(|e| (Verdict::Unknown, e));
            WitnessReport {
                witness: witness.into(),
                verdict,
                detail,
                observed_at: now,
            }
        };
        if let Some((c, client, token)) = &self.consul {
            out.push(report(
                "consul",
                consul(c, client, token.as_deref(), host).await,
            ));
        }
        if let Some((b, client)) = &self.bmc {
            out.push(report("bmc", bmc(b, client, host).await));
        }
        if let Some((k, client, token)) = &self.kubernetes {
            out.push(report(
                "kubernetes",
                kubernetes(k, client, token.as_deref(), host).await,
            ));
        }
        out
    }
}

async fn get_json(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    what: &str,
) -> Result<Option<Value>, String> {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let shown = url::Url::parse(url)
        .map(|u| format!("{}{}", u.origin().ascii_serialization(), u.path()))
        .unwrap_or_else(|_| "the configured URL".into());
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{what}: GET {shown} failed: {e}"))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "{what}: GET {shown} answered {status}: {}",
            snippet(&body)
        ));
    }
    serde_json::from_str(&body)
        .map(Some)
        .map_err(|e| format!("{what}: GET {shown} answered something that is not JSON ({e})"))
}

/// `GET /v1/health/node/{node}`: the node's `serfHealth` check (Consul's gossip liveness).
async fn consul(
    c: &ConsulWitnessSettings,
    client: &reqwest::Client,
    token: Option<&str>,
    host: &str,
) -> Result<(Verdict, String), String> {
    let node = render(&c.node, host)?;
    let url = format!("{}/v1/health/node/{node}", c.url.trim_end_matches('/'));
    let headers: Vec<(String, String)> = token
        .map(|t| vec![("X-Consul-Token".to_string(), t.to_string())])
        .unwrap_or_default();
    let Some(checks) = get_json(client, &url, &headers, "consul witness").await? else {
        return Ok((Verdict::Unknown, format!("Consul knows no node {node}")));
    };
    let check = checks.as_array().and_then(|a| {
        a.iter()
            .find(|k| k.get("CheckID").and_then(Value::as_str) == Some(c.check_id.as_str()))
    });
    let Some(check) = check else {
        return Ok((
            Verdict::Unknown,
            format!("Consul node {node} has no check {}", c.check_id),
        ));
    };
    let status = check.get("Status").and_then(Value::as_str).unwrap_or("");
    let output = check.get("Output").and_then(Value::as_str).unwrap_or("");
    let detail = format!(
        "Consul node {node} check {} is {status}: {}",
        c.check_id,
        snippet(output)
    );
    Ok(match status {
        "critical" => (Verdict::Dead, detail),
        "passing" => (Verdict::Alive, detail),
        _ => (Verdict::Unknown, detail),
    })
}

/// The BMC's power state (Redfish `GET /redfish/v1/Systems/<id>` by default): off confirms;
/// on says nothing (a hung host is powered on).
async fn bmc(
    b: &BmcWitnessSettings,
    client: &reqwest::Client,
    host: &str,
) -> Result<(Verdict, String), String> {
    let url = render(&b.url, host)?;
    let headers: Vec<(String, String)> = b
        .headers
        .iter()
        .map(|(k, v)| Ok((k.clone(), render(v, host)?)))
        .collect::<Result<_, String>>()?;
    let Some(answer) = get_json(client, &url, &headers, "bmc witness").await? else {
        return Ok((
            Verdict::Unknown,
            format!("the BMC knows no system for {host} (404)"),
        ));
    };
    let Some(state) = answer.pointer(&b.pointer).and_then(Value::as_str) else {
        return Ok((
            Verdict::Unknown,
            format!("the BMC's answer for {host} has no string at {}", b.pointer),
        ));
    };
    let detail = format!("BMC power state of {host}: {state}");
    Ok(
        if b.off_values.iter().any(|v| v.eq_ignore_ascii_case(state)) {
            (Verdict::Dead, detail)
        } else {
            (
                Verdict::Unknown,
                format!("{detail} (powered on: maybe hung, fencing powers it off)"),
            )
        },
    )
}

/// `GET /api/v1/nodes/{node}`: the `Ready` condition; False or Unknown confirms, True vetoes.
async fn kubernetes(
    k: &KubernetesWitnessSettings,
    client: &reqwest::Client,
    token: Option<&str>,
    host: &str,
) -> Result<(Verdict, String), String> {
    let node = render(&k.node, host)?;
    let url = format!("{}/api/v1/nodes/{node}", k.api_url.trim_end_matches('/'));
    let headers: Vec<(String, String)> = token
        .map(|t| vec![("Authorization".to_string(), format!("Bearer {t}"))])
        .unwrap_or_default();
    let Some(answer) = get_json(client, &url, &headers, "kubernetes witness").await? else {
        return Ok((Verdict::Unknown, format!("Kubernetes knows no node {node}")));
    };
    let ready = answer
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        });
    let Some(ready) = ready else {
        return Ok((
            Verdict::Unknown,
            format!("node {node} has no Ready condition"),
        ));
    };
    let status = ready.get("status").and_then(Value::as_str).unwrap_or("");
    let reason = ready.get("reason").and_then(Value::as_str).unwrap_or("");
    let detail = format!("Kubernetes node {node} Ready={status} ({reason})");
    Ok(match status {
        "True" => (Verdict::Alive, detail),
        "False" | "Unknown" => (Verdict::Dead, detail),
        _ => (Verdict::Unknown, detail),
    })
}
