//! The invariants of ARCHITECTURE.md that a reading of the source can check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

fn src(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(rel)
}

/// (file, line) of every line that contains one of `needles`.
fn offenders(files: &[PathBuf], needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for f in files {
        for (n, line) in std::fs::read_to_string(f).unwrap().lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for needle in needles {
                if line.contains(needle) {
                    found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

/// What a pure core must not touch: adapters, I/O, the clock, locks.
const IMPURE: [&str; 15] = [
    "crate::api",
    "crate::store",
    "crate::cluster",
    "crate::telemetry",
    "crate::config",
    "std::fs",
    "std::net",
    "std::io",
    "tokio",
    "reqwest",
    "sqlx",
    "SystemTime",
    "Instant::now",
    "Mutex",
    "RwLock",
];

#[test]
fn scoring_imports_no_adapter_and_does_no_io() {
    let files = rust_files(&src("scoring"));
    assert!(files.len() >= 9, "the scoring sources were found");
    let bad = offenders(&files, &IMPURE);
    assert!(
        bad.is_empty(),
        "the scoring core must stay pure:\n{}",
        bad.join("\n")
    );
}

#[test]
fn rebalance_detect_and_plan_are_pure() {
    let files = vec![src("rebalance/detect.rs"), src("rebalance/plan.rs")];
    let mut needles = IMPURE.to_vec();
    // The executor and its hooks sit beside them and do I/O: the planner never calls them.
    needles.extend([
        "execute::",
        "hooks::",
        "cycle::",
        "crate::openstack",
        "unix_now",
    ]);
    let bad = offenders(&files, &needles);
    assert!(
        bad.is_empty(),
        "rebalance::{{detect,plan}} must stay pure:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_simulator_is_pure_and_uses_the_service_code() {
    let files = rust_files(&src("simulate"));
    assert!(files.len() >= 3, "the simulate sources were found");
    let mut needles = IMPURE.to_vec();
    needles.extend(["crate::openstack", "unix_now"]);
    // The rollup is telemetry's pure core: the twin learns profiles with the service's code.
    let bad: Vec<String> = offenders(&files, &needles)
        .into_iter()
        .filter(|l| !l.ends_with("use crate::telemetry::rollup::weekly_p95;"))
        .collect();
    assert!(
        bad.is_empty(),
        "the simulator must stay pure (main.rs reads the scenario file):\n{}",
        bad.join("\n")
    );
    // The twin decides with the service's own code, not a copy of it.
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for used in [
        "scoring::filter_and_weigh",
        "rebalance::detect::",
        "rebalance::plan::",
        "telemetry::rollup::weekly_p95",
    ] {
        assert!(text.contains(used), "the simulator uses {used}");
    }
}

#[test]
fn only_api_knows_the_wire_format() {
    let files = vec![src("model.rs")]
        .into_iter()
        .chain(rust_files(&src("scoring")))
        .chain(rust_files(&src("cluster")))
        .collect::<Vec<_>>();
    let bad = offenders(
        &files,
        &[
            "serde::Serialize",
            "derive(Serialize",
            "serde_json::to_",
            "utoipa",
        ],
    );
    assert!(
        bad.is_empty(),
        "wire format outside api:\n{}",
        bad.join("\n")
    );
}

#[test]
fn adapters_import_no_orchestrator() {
    let files: Vec<PathBuf> = ["store", "telemetry", "cluster"]
        .iter()
        .flat_map(|d| rust_files(&src(d)))
        .collect();
    let bad = offenders(&files, &["crate::api"]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn only_openstack_speaks_http_to_openstack_services() {
    let openstack = src("openstack");
    let files: Vec<PathBuf> = rust_files(&src(""))
        .into_iter()
        .filter(|f| !f.starts_with(&openstack))
        .collect();
    let bad = offenders(&files, &["X-Subject-Token", "OpenStack-API-Version"]);
    assert!(
        bad.is_empty(),
        "HTTP to OpenStack outside src/openstack:\n{}",
        bad.join("\n")
    );
    // The other HTTP clients are the Prometheus source, the rebalance hooks (Kubernetes,
    // Consul, generic HTTP) and recovery's witnesses (Consul, a BMC, Kubernetes), none of which
    // is an OpenStack service.
    let prometheus = src("telemetry/prometheus.rs");
    let hooks = src("rebalance/hooks");
    let witnesses = src("recover/witness.rs");
    let clients: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| *f != prometheus && *f != witnesses && !f.starts_with(&hooks))
        .collect();
    let bad = offenders(&clients, &["reqwest"]);
    assert!(
        bad.is_empty(),
        "an HTTP client outside src/openstack and the Prometheus source:\n{}",
        bad.join("\n")
    );
}

#[test]
fn openstack_is_an_adapter_with_its_own_wire_types() {
    let files = rust_files(&src("openstack"));
    assert!(files.len() >= 5, "the openstack sources were found");
    // It maps no model type and knows no orchestrator: `cluster` maps its types onto the model.
    let bad = offenders(
        &files,
        &[
            "crate::model",
            "crate::scoring",
            "crate::cluster",
            "crate::api",
            "crate::store",
            "crate::telemetry",
        ],
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_planning_cycle_orchestrates_and_reads_no_clock() {
    // rebalance::cycle gathers (store; Nova and Placement through `openstack`) and calls the pure
    // detect and plan: no HTTP or SQL of its own, and `now` is its caller's.
    let files = vec![src("rebalance/cycle.rs")];
    let bad = offenders(
        &files,
        &[
            "reqwest",
            "crate::api",
            "sqlx",
            "UPDATE ",
            "INSERT ",
            "SystemTime",
            "Instant::now",
            "unix_now",
        ],
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let text = std::fs::read_to_string(src("rebalance/cycle.rs")).unwrap();
    for used in ["detect(", "plan(", "journal_plan(", "insert_plan("] {
        assert!(text.contains(used), "the cycle uses {used}");
    }
}

#[test]
fn the_rebalance_executor_reaches_nova_only_through_openstack() {
    // The executor orchestrates: Nova through `openstack::nova`, orchestrators through hooks,
    // the journal through `store`. It speaks no HTTP itself and writes no SQL.
    let files = vec![src("rebalance/execute.rs"), src("rebalance/leader.rs")];
    let bad = offenders(&files, &["reqwest", "crate::api", "UPDATE ", "INSERT "]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let hooks = rust_files(&src("rebalance/hooks"));
    assert!(hooks.len() >= 5, "one file per hook");
    let bad = offenders(&hooks, &["crate::store", "crate::api", "crate::openstack"]);
    assert!(
        bad.is_empty(),
        "hooks hold no state and know no OpenStack:\n{}",
        bad.join("\n")
    );
}

#[test]
fn repair_plan_is_pure() {
    let files = vec![src("repair/plan.rs")];
    let mut needles = IMPURE.to_vec();
    needles.extend(["crate::novadb", "crate::openstack", "unix_now"]);
    let bad = offenders(&files, &needles);
    assert!(
        bad.is_empty(),
        "repair::plan must stay pure (facts in, steps out):\n{}",
        bad.join("\n")
    );
}

#[test]
fn novadb_is_an_adapter() {
    let files = rust_files(&src("novadb"));
    assert!(files.len() >= 2, "the novadb sources were found");
    let bad = offenders(
        &files,
        &[
            "crate::repair",
            "crate::api",
            "crate::scoring",
            "crate::cluster",
            "crate::store",
        ],
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

// The house rules: the binary only parses and dispatches (`main.rs` under 300 lines), `config.rs`
// only layers (under 400), no function over 120 lines outside tests, and no import cycle between
// modules (subsystems, and each `settings.rs`).

const MAX_FN_LINES: usize = 120;

fn lines_of(rel: &str) -> usize {
    std::fs::read_to_string(src("").join(rel))
        .unwrap()
        .lines()
        .count()
}

/// The text with comments, strings and char literals blanked (newlines kept), so that braces
/// and paths can be counted on what is code.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            let end = text[i + 2..].find("*/").map_or(rest.len(), |e| e + 4);
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"r#") || rest.starts_with(b"r\"") || rest.starts_with(b"br") {
            // A raw string: r"..", r#".."#, br#".."#.
            let start = if rest[0] == b'b' { 2 } else { 1 };
            let hashes = rest[start..].iter().take_while(|&&c| c == b'#').count();
            if rest.get(start + hashes) != Some(&b'"')
                || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            {
                out.push(rest[0] as char);
                i += 1;
                continue;
            }
            let close = format!("\"{}", "#".repeat(hashes));
            let body = start + hashes + 1;
            let end = text[i + body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'\'' {
            // A char literal ('{', '\n', '\u{7b}') or a lifetime ('a): only the former is blanked.
            let end = if rest.get(1) == Some(&b'\\') {
                rest[2..].iter().position(|&c| c == b'\'').map(|p| p + 3)
            } else if rest.get(2) == Some(&b'\'') {
                Some(3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut out, &rest[..end]);
                    i += end;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The line (0-based) of the brace that closes the one opened at byte `open`.
fn closing_line(code: &str, open: usize) -> usize {
    let mut depth = 0usize;
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return code[..open + i].matches('\n').count();
                }
            }
            _ => {}
        }
    }
    code.matches('\n').count()
}

/// (name, first line, lines) of every function with a body, outside `#[cfg(test)]` modules.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let code = code_only(text);
    let lines: Vec<&str> = code.lines().collect();
    let offsets: Vec<usize> = std::iter::once(0)
        .chain(code.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut skip_until = None;
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if skip_until.is_some_and(|end| n <= end) {
            continue;
        }
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            // The item after it (a test module or function) is left out whole.
            if let Some(open) = code[offsets[n]..].find('{') {
                skip_until = Some(closing_line(&code, offsets[n] + open));
            }
            continue;
        }
        let Some(at) = find_fn_keyword(t) else {
            continue;
        };
        let name: String = t[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The body opens at the first `{` after the signature; a `;` first means no body.
        let from = offsets[n] + (line.len() - t.len()) + at;
        let rest = &code[from..];
        let (Some(open), semi) = (rest.find('{'), rest.find(';')) else {
            continue;
        };
        if semi.is_some_and(|s| s < open) {
            continue;
        }
        let end = closing_line(&code, from + open);
        out.push((name, n + 1, end - n + 1));
    }
    out
}

/// Where `fn ` starts in a line that declares a function (`pub(crate) async fn x`).
fn find_fn_keyword(t: &str) -> Option<usize> {
    let mut at = 0;
    for (words, word) in t.split(' ').enumerate() {
        if word == "fn" {
            return Some(at);
        }
        let modifier = word.starts_with("pub")
            || matches!(
                word,
                "async" | "const" | "unsafe" | "extern" | "\"C\"" | "default"
            );
        if !modifier || words > 4 {
            return None;
        }
        at += word.len() + 1;
    }
    None
}

#[test]
fn the_binary_only_parses_and_dispatches_and_config_only_layers() {
    let main = lines_of("main.rs");
    assert!(
        main < 300,
        "src/main.rs has {main} lines; move command bodies into the library"
    );
    let config = lines_of("config.rs");
    assert!(
        config < 400,
        "src/config.rs has {config} lines; a section's settings and checks belong to its subsystem"
    );
}

#[test]
fn the_function_scanner_measures_what_it_should() {
    let text = "fn a() {\n    let s = \"}\";\n    let c = '}';\n    // }\n}\n\
                pub(crate) async fn b<'a>(x: &'a str) -> Vec<u8>\nwhere\n    u8: Copy,\n{\n    \
                r#\"}\"#;\n    vec![]\n}\ntrait T { fn c(&self); }\n\
                #[cfg(test)]\nmod tests {\n    fn d() {\n    }\n}\n";
    let found = functions(text);
    assert_eq!(
        found,
        [("a".to_string(), 1, 5), ("b".to_string(), 6, 7)],
        "{text}"
    );
}

#[test]
fn no_function_over_120_lines_outside_tests() {
    let root = src("");
    let mut long = Vec::new();
    let mut longest = (0, String::new());
    let mut files = rust_files(&root);
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (name, line, len) in functions(&text) {
            let rel = file.strip_prefix(&root).unwrap().display().to_string();
            if len > longest.0 {
                longest = (len, format!("src/{rel}:{line}: fn {name}"));
            }
            if len > MAX_FN_LINES {
                long.push(format!("src/{rel}:{line}: fn {name} is {len} lines"));
            }
        }
    }
    println!("the longest function: {} ({} lines)", longest.1, longest.0);
    assert!(
        long.is_empty(),
        "split these into named steps (at most {MAX_FN_LINES} lines each):\n{}",
        long.join("\n")
    );
}

/// The module a file is (`rebalance::hooks::settings`), `""` for the crate root.
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// The paths a file names through `crate::` or `super::` (groups `{a, b::c}` expanded), each
/// as a module path from the crate root.
fn referenced_paths(module: &str, is_mod_file: bool, code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (prefix, base) in [
        ("crate::", String::new()),
        ("super::", parent_of(module, is_mod_file)),
    ] {
        let mut from = 0;
        while let Some(i) = code[from..].find(prefix) {
            let at = from + i;
            from = at + prefix.len();
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `steward::crate::`, `my_super::`
            }
            for path in expand(&code[from..]) {
                out.push(join(&base, &path));
            }
        }
    }
    out
}

/// The module `super` names from `module` (a `mod.rs` is its directory's module).
fn parent_of(module: &str, is_mod_file: bool) -> String {
    let _ = is_mod_file;
    module
        .rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_string())
}

fn join(base: &str, path: &str) -> String {
    match (base.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (false, true) => base.to_string(),
        (false, false) => format!("{base}::{path}"),
    }
}

/// `a::b::C;` -> [`a::b::C`]; `a::{b, c::D}` -> [`a::b`, `a::c::D`].
fn expand(text: &str) -> Vec<String> {
    let path: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let rest = &text[path.len()..];
    let grouped = (path.is_empty() || path.ends_with("::")) && rest.starts_with('{');
    let path = path.trim_end_matches(':').to_string();
    if !grouped {
        return vec![path];
    }
    let after = rest;
    let mut depth = 0;
    let mut items = Vec::new();
    let mut current = String::new();
    for c in after.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    items.push(std::mem::take(&mut current));
                    break;
                }
            }
            ',' if depth == 1 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty() && *i != "self")
        .flat_map(|i| expand(i).into_iter().map(|p| join(&path, &p)))
        .collect()
}

/// What the cycle rule treats as one module: a subsystem (a top-level module with all its
/// files), except that a `settings.rs` is a unit of its own: `config` reads a subsystem's
/// settings, and the subsystem's code may read the validated configuration, so a settings
/// file imports nothing of its subsystem's code.
fn node_of(module: &str) -> String {
    if module == "settings" || module.ends_with("::settings") {
        module.to_string()
    } else {
        module.split("::").next().unwrap_or_default().to_string()
    }
}

/// Each unit ([`node_of`]) and the units its files import (the longest module prefix of each
/// path they name).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = src("");
    let mut files: Vec<PathBuf> = rust_files(&root);
    files.sort();
    let files: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "main.rs"))
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&root, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&root, file);
        let is_mod = file.file_name().is_some_and(|n| n == "mod.rs");
        let text = std::fs::read_to_string(file).unwrap();
        // Tests inside a file may reach anywhere; the module's own imports are what count.
        let text = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        let code = code_only(text);
        let mut deps = BTreeSet::new();
        for path in referenced_paths(&module, is_mod, &code) {
            let mut target = path.as_str();
            while !modules.contains(target) {
                match target.rsplit_once("::") {
                    Some((p, _)) => target = p,
                    None => {
                        target = "";
                        break;
                    }
                }
            }
            let target = node_of(target);
            if target != node_of(&module) && !target.is_empty() && !module.is_empty() {
                deps.insert(target);
            }
        }
        if !module.is_empty() {
            graph.entry(node_of(&module)).or_default().extend(deps);
        }
    }
    graph
}

/// A cycle in the graph, if any, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|m| m == next).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node.as_str()) {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_import_graph_reads_paths_as_rust_does() {
    let code = "use crate::rebalance::{hooks::settings::X, Mode};\nuse super::{a, b::C};\n\
                let x = crate::config::load(None);";
    let mut found = referenced_paths("rebalance::service", false, code);
    found.sort();
    assert_eq!(
        found,
        [
            "config::load",
            "rebalance::Mode",
            "rebalance::a",
            "rebalance::b::C",
            "rebalance::hooks::settings::X",
        ]
    );
    // A two-module cycle is found; a chain is not one.
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert!(find_cycle(&graph(&[("config", "rebalance"), ("rebalance", "config")])).is_some());
    assert!(find_cycle(&graph(&[("a", "b"), ("b", "c")])).is_none());
}

#[test]
fn no_import_cycle_between_modules() {
    let graph = import_graph();
    assert!(graph.contains_key("config") && graph.contains_key("rebalance::settings"));
    assert!(graph["api"].contains("config"), "{:?}", graph["api"]);
    assert!(
        graph["config"].contains("rebalance::settings"),
        "the graph sees config's imports: {:?}",
        graph["config"]
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "modules import each other: {}; move the shared piece into a leaf module (as \
             `settings` holds ConfigProblem) or import the defining file, not a re-export",
            cycle.join(" -> ")
        );
    }
}
