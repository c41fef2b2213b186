//! `docs/api.md`, rendered from the OpenAPI document steward serves at `/openapi.json`, so the
//! reference cannot say anything the code does not (`steward openapi --format markdown`).
//!
//! Works on the document's JSON (not utoipa's types): what an operator reads is exactly what a
//! client generator would read. Deterministic: the same document gives the same text.

use std::fmt::Write;

use serde_json::Value;

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

/// What each route's role (`x-steward-role`) means, and who holds it.
const ROLES: &str = "Each route names the role it needs (`x-steward-role` in the document). \
    The role is checked on the route actix matched, however the path was spelled; a path no \
    route matches is 404, and a method the path does not answer is 405 with `Allow` (both \
    after the token is checked, so routes cannot be probed without one).\n\n\
    | role | static token (`[auth] token_file`) | Keystone token (`[auth] strategy = \"keystone\"`) |\n\
    |---|---|---|\n\
    | `reader` | reader, admin | `reader` or `member` on any scope, `admin` |\n\
    | `cloud_reader` | reader, admin | `admin` on any scope; `reader` or `member` on a system-scoped token |\n\
    | `telemetry` | telemetry, admin | `service`, `admin` |\n\
    | `admin` | admin | `admin` |\n\n\
    `cloud_reader` guards what Nova shows to admins only: hypervisors, where each server runs, \
    every project's moves, and the scheduler callout. A project-scoped `reader` or `member` \
    reads `GET /v1/vms/{uuid}` for its own project's VMs only (another project's VM is 404, as \
    in Nova), without `host`.\n\n";

/// The Markdown reference of an OpenAPI 3 document.
pub fn render(doc: &Value) -> String {
    let mut out = String::new();
    let title = str_at(doc, "/info/title").unwrap_or("API");
    let version = str_at(doc, "/info/version").unwrap_or("");
    let _ = writeln!(out, "# {title} HTTP API ({version})\n");
    out.push_str(
        "<!-- GENERATED from the OpenAPI document (GET /openapi.json); do not edit.\n     \
         Regenerate: cargo run --quiet -- openapi --format markdown > docs/api.md -->\n\n",
    );
    if let Some(d) = str_at(doc, "/info/description") {
        let _ = writeln!(out, "{d}\n");
    }
    out.push_str(
        "Every route but `GET /healthz` needs a token: `Authorization: Bearer <token>` or \
         `X-Auth-Token: <token>`. Errors are JSON bodies of the `ErrorBody` schema. Every \
         answer carries `X-OpenStack-Request-ID` (the caller's, when it sent a valid one).\n\n",
    );
    out.push_str(ROLES);

    out.push_str("## Routes\n\n| method | path | summary |\n|---|---|---|\n");
    let paths = doc.get("paths").and_then(Value::as_object);
    for (path, item) in paths.into_iter().flatten() {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                let _ = writeln!(
                    out,
                    "| {} | [`{path}`](#{}) | {} |",
                    m.to_uppercase(),
                    anchor(&format!("{} {path}", m.to_uppercase())),
                    cell(&summary(op))
                );
            }
        }
    }
    out.push('\n');

    for (path, item) in paths.into_iter().flatten() {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                operation(&mut out, m, path, op);
            }
        }
    }

    out.push_str("## Schemas\n\n");
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object);
    for (name, schema) in schemas.into_iter().flatten() {
        schema_section(&mut out, name, schema);
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn summary(op: &Value) -> String {
    str_at(op, "/summary")
        .or_else(|| str_at(op, "/description"))
        .map(|s| {
            let first_paragraph = s.split("\n\n").next().unwrap_or("");
            first_paragraph
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// GitHub's heading anchors: lower case, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Text that is safe inside a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn operation(out: &mut String, method: &str, path: &str, op: &Value) {
    let _ = writeln!(out, "### {} {path}\n", method.to_uppercase());
    if let Some(d) = str_at(op, "/description").or_else(|| str_at(op, "/summary")) {
        let _ = writeln!(out, "{d}\n");
    }
    let auth = if op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .all(|r| r.as_object().is_some_and(serde_json::Map::is_empty))
        }) {
        "no token".to_string()
    } else {
        match str_at(op, "/x-steward-role") {
            Some(role) => format!("token with the `{role}` role"),
            None => "token".to_string(),
        }
    };
    let _ = writeln!(out, "Authentication: {auth}.\n");
    if let Some(params) = op.get("parameters").and_then(Value::as_array) {
        out.push_str("| parameter | in | type | required | description |\n|---|---|---|---|---|\n");
        for p in params {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                str_at(p, "/name").unwrap_or("?"),
                str_at(p, "/in").unwrap_or("?"),
                cell(&type_of(p.get("schema").unwrap_or(&Value::Null))),
                if p.get("required").and_then(Value::as_bool) == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                cell(str_at(p, "/description").unwrap_or(""))
            );
        }
        out.push('\n');
    }
    if let Some(body) = op.get("requestBody") {
        for (media, content) in body
            .get("content")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let _ = writeln!(
                out,
                "Request body ({media}): {}\n",
                type_of(content.get("schema").unwrap_or(&Value::Null))
            );
        }
    }
    out.push_str("| status | description | body |\n|---|---|---|\n");
    for (status, resp) in op
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let body: Vec<String> = resp
            .get("content")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(media, c)| match c.get("schema") {
                Some(s) => format!("{} ({media})", type_of(s)),
                None => media.clone(),
            })
            .collect();
        let _ = writeln!(
            out,
            "| {status} | {} | {} |",
            cell(str_at(resp, "/description").unwrap_or("")),
            cell(&body.join(", "))
        );
    }
    out.push('\n');
}

fn schema_section(out: &mut String, name: &str, schema: &Value) {
    let _ = writeln!(out, "### {name}\n");
    if let Some(d) = str_at(schema, "/description") {
        let _ = writeln!(out, "{d}\n");
    }
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        out.push_str("Fields not listed here are refused (400 naming the field).\n\n");
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match schema.get("properties").and_then(Value::as_object) {
        Some(props) if !props.is_empty() => {
            out.push_str("| field | type | required | description |\n|---|---|---|---|\n");
            for (field, p) in props {
                let _ = writeln!(
                    out,
                    "| `{field}` | {} | {} | {} |",
                    cell(&type_of(p)),
                    if required.contains(&field.as_str()) {
                        "yes"
                    } else {
                        "no"
                    },
                    cell(str_at(p, "/description").unwrap_or(""))
                );
            }
            out.push('\n');
        }
        _ => {
            let _ = writeln!(out, "Type: {}\n", type_of(schema));
        }
    }
}

/// A schema in a few words: `string`, `array of [Host](#host)`, `"boot" | "resize"`, …
fn type_of(s: &Value) -> String {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[{name}](#{})", anchor(name));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = s.get(key).and_then(Value::as_array) {
            let sep = if key == "allOf" { " and " } else { " or " };
            return list.iter().map(type_of).collect::<Vec<_>>().join(sep);
        }
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" | ");
    }
    let types: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let mut words: Vec<String> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "array" => format!(
                "array of {}",
                type_of(s.get("items").unwrap_or(&Value::Null))
            ),
            "object" => match s.get("additionalProperties") {
                Some(v) if v.is_object() => format!("map of {}", type_of(v)),
                _ => "object".to_string(),
            },
            other => match str_at(s, "/format") {
                Some(f) => format!("{other} ({f})"),
                None => other.to_string(),
            },
        })
        .collect();
    if words.is_empty() {
        words.push("any".to_string());
    }
    let mut t = words.join(" or ");
    if types.contains(&"null") || s.get("nullable").and_then(Value::as_bool) == Some(true) {
        t.push_str(" or null");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_in_words() {
        assert_eq!(
            type_of(&json!({"$ref": "#/components/schemas/HostDto"})),
            "[HostDto](#hostdto)"
        );
        assert_eq!(
            type_of(&json!({"type": "array", "items": {"type": "string"}})),
            "array of string"
        );
        assert_eq!(
            type_of(&json!({"type": ["number", "null"], "format": "double"})),
            "number (double) or null"
        );
        assert_eq!(
            type_of(&json!({"enum": ["boot", "resize"]})),
            "\"boot\" | \"resize\""
        );
        assert_eq!(
            type_of(&json!({"type": "object", "additionalProperties": {"type": "integer"}})),
            "map of integer"
        );
    }

    #[test]
    fn health_route_is_marked_without_token() {
        let doc = json!({"info": {"title": "T", "version": "1"},
            "paths": {"/healthz": {"get": {"security": [{}], "responses": {"200": {"description": "ok"}}}},
                      "/v1/x": {"get": {"responses": {"200": {"description": "ok"}}}}}});
        let md = render(&doc);
        assert!(
            md.contains("### GET /healthz\n\nAuthentication: no token."),
            "{md}"
        );
        assert!(
            md.contains("### GET /v1/x\n\nAuthentication: token."),
            "{md}"
        );
        let doc = json!({"info": {"title": "T", "version": "1"},
            "paths": {"/v1/y": {"get": {"x-steward-role": "admin", "responses": {}}}}});
        let md = render(&doc);
        assert!(
            md.contains("### GET /v1/y\n\nAuthentication: token with the `admin` role."),
            "{md}"
        );
    }
}
