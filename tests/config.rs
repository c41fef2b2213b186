//! Configuration: defaults, layering, environment overrides and problems named by key.

use std::path::{Path, PathBuf};

use steward::api::settings::AuthStrategy;
use steward::config::{load_from, ConfigProblem};
use steward::store::{redact_url, DatabaseUrl};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn keys(problems: &[ConfigProblem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn no_file_gives_a_loopback_noauth_sqlite_steward() {
    let v = load_from(None, &[]).unwrap();
    assert_eq!(v.listen.to_string(), "127.0.0.1:8790");
    assert_eq!(v.settings.auth.strategy, AuthStrategy::Noauth);
    assert!(v.settings.database.url.expose().starts_with("sqlite://"));
    assert_eq!(v.profiles.default, "default");
    assert!(v.tokens.is_none());
}

#[test]
fn the_shipped_sample_is_valid_once_its_token_file_exists() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = write(dir.path(), "tokens", "nova-shim-token-0123456789 reader\n");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/steward.toml.sample");
    let v = load_from(
        Some(&sample),
        &env(&[("STEWARD__AUTH__TOKEN_FILE", tokens.to_str().unwrap())]),
    )
    .unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(v.settings.auth.strategy, AuthStrategy::Static);
    assert_eq!(
        v.profiles.profiles.keys().collect::<Vec<_>>(),
        ["batch", "db", "default", "web"]
    );
    // The sample changes one web parameter and keeps the rest of the built-in web profile.
    let web = &v.profiles.profiles["web"];
    assert_eq!(web.plugins.len(), 5);
    assert_eq!(web.plugins[1].weight, 2.0);
    // The sample spells out the built-in queries: they must be the defaults.
    assert_eq!(v.settings.prometheus.queries, Default::default());
    assert_eq!(v.settings.prometheus.url, None);
}

#[test]
fn environment_variables_override_the_file_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "s.toml",
        "[server]\nlisten = \"127.0.0.1:9000\"\nmax_hosts = 50\n",
    );
    let v = load_from(
        Some(&cfg),
        &env(&[
            ("STEWARD__SERVER__LISTEN", "127.0.0.1:9001"),
            ("STEWARD__PROFILES__WEB__PLUGINS__STEAL__WEIGHT", "7.5"),
            ("STEWARD__TELEMETRY__MAX_AGE_SECONDS", "60"),
            ("OTHER__SERVER__LISTEN", "ignored"),
        ]),
    )
    .unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(v.listen.to_string(), "127.0.0.1:9001");
    assert_eq!(
        v.settings.server.max_hosts, 50,
        "the file's other keys stay"
    );
    assert_eq!(v.settings.telemetry.max_age_seconds, 60.0);
    let steal = v.profiles.profiles["web"]
        .plugins
        .iter()
        .find(|p| p.plugin.name() == "steal")
        .unwrap();
    assert_eq!(steal.weight, 7.5);
}

#[test]
fn every_problem_is_listed_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "bad.toml",
        r#"
[server]
listen = "somewhere"
[database]
url = "postgres://db/steward"
[telemetry]
max_age_seconds = -5
[scheduling]
default_profile = "gold"
[profiles.web.plugins.steal]
saturation = 4
[nonsense]
x = 1
"#,
    );
    let problems = load_from(Some(&cfg), &[]).unwrap_err();
    let k = keys(&problems);
    for want in [
        "nonsense",
        "server.listen",
        "database.url",
        "telemetry.max_age_seconds",
        "profiles.web.plugins.steal",
        "scheduling.default_profile",
    ] {
        assert!(k.contains(&want), "{want} missing from {problems:#?}");
    }
    let db = problems.iter().find(|p| p.key == "database.url").unwrap();
    assert!(db.message.contains("mysql://"), "{}", db.message);
}

#[test]
fn a_wrong_type_names_the_key_inside_its_section() {
    let problems = load_from(None, &env(&[("STEWARD__SERVER__MAX_HOSTS", "lots")])).unwrap_err();
    assert_eq!(keys(&problems), ["server.max_hosts"]);
    let problems = load_from(None, &env(&[("STEWARD__SERVER__LISTN", "x")])).unwrap_err();
    assert_eq!(keys(&problems), ["server.listn"]);
    assert!(
        problems[0].message.contains("unknown field `listn`"),
        "{problems:#?}"
    );
}

#[test]
fn noauth_is_refused_off_loopback() {
    let problems =
        load_from(None, &env(&[("STEWARD__SERVER__LISTEN", "0.0.0.0:8790")])).unwrap_err();
    assert_eq!(keys(&problems), ["auth.strategy"]);
    assert!(problems[0].message.contains("loopback"));
    assert!(load_from(None, &env(&[("STEWARD__SERVER__LISTEN", "[::1]:8790")])).is_ok());
}

#[test]
fn static_auth_needs_a_good_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let problems = load_from(None, &env(&[("STEWARD__AUTH__STRATEGY", "static")])).unwrap_err();
    assert_eq!(keys(&problems), ["auth.token_file"]);
    let tokens = write(
        dir.path(),
        "tokens",
        "# comment\nshort reader\nlong-enough-token-0001 reviewer\nlong-enough-token-0002\nlong-enough-token-0003 reader,telemetry\n",
    );
    let problems = load_from(
        None,
        &env(&[
            ("STEWARD__AUTH__STRATEGY", "static"),
            ("STEWARD__AUTH__TOKEN_FILE", tokens.to_str().unwrap()),
        ]),
    )
    .unwrap_err();
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:#?}");
    assert!(
        text[0].contains("line 2)") && text[0].contains("shorter than 16"),
        "{text:#?}"
    );
    assert!(
        text[1].contains("line 3)") && text[1].contains("unknown role \"reviewer\""),
        "{text:#?}"
    );
    assert!(
        text[2].contains("line 4)") && text[2].contains("no role"),
        "{text:#?}"
    );
    assert!(
        !text.join("").contains("long-enough-token"),
        "tokens never appear in messages"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let problems = load_from(Some(Path::new("/nonexistent/steward.toml")), &[]).unwrap_err();
    assert!(problems[0].message.contains("/nonexistent/steward.toml"));
}

#[test]
fn database_passwords_never_print() {
    let url = DatabaseUrl("mysql://steward:s3cret@db:3306/steward".into());
    assert_eq!(url.to_string(), "mysql://steward:***@db:3306/steward");
    assert!(!format!("{url:?}").contains("s3cret"));
    let problems = load_from(
        None,
        &env(&[("STEWARD__DATABASE__URL", "postgres://u:hunter2@db/x")]),
    )
    .unwrap_err();
    assert!(!problems[0].message.contains("hunter2"), "{problems:#?}");
    assert_eq!(
        redact_url("sqlite://steward.sqlite?mode=rwc"),
        "sqlite://steward.sqlite?mode=rwc"
    );
    assert_eq!(
        redact_url("mysql://root@127.0.0.1/x"),
        "mysql://root@127.0.0.1/x"
    );
}

#[test]
fn keystone_auth_needs_steward_s_own_cloud_and_a_bounded_cache() {
    let problems = load_from(
        None,
        &env(&[
            ("STEWARD__AUTH__STRATEGY", "keystone"),
            ("STEWARD__OPENSTACK__CLOUD", "no-such-cloud-anywhere"),
            ("STEWARD__AUTH__CACHE_SECONDS", "7200"),
            ("STEWARD__AUTH__CACHE_SIZE", "0"),
        ]),
    )
    .unwrap_err();
    let k = keys(&problems);
    assert!(k.contains(&"openstack.cloud"), "{problems:?}");
    assert!(k.contains(&"auth.cache_seconds"), "{problems:?}");
    assert!(k.contains(&"auth.cache_size"), "{problems:?}");
    let cloud = problems
        .iter()
        .find(|p| p.key == "openstack.cloud")
        .unwrap();
    assert!(
        cloud
            .message
            .contains("validates tokens with steward's own cloud"),
        "{cloud}"
    );
}

#[test]
fn keystone_roles_map_onto_steward_s() {
    use steward::api::settings::Roles;
    let r = Roles::from_keystone(["member", "reader"]);
    assert!(r.reader && !r.telemetry && !r.admin);
    assert_eq!(Roles::from_keystone(["reader"]), r);
    assert_eq!(Roles::from_keystone(["admin"]), Roles::ALL);
    let s = Roles::from_keystone(["service"]);
    assert!(s.telemetry && !s.reader && !s.admin);
    assert_eq!(
        Roles::from_keystone(["manager-of-nothing", "auditor"]),
        Roles::default()
    );
}

#[test]
fn a_token_file_beside_keystone_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "tokens", "short reader\n");
    let problems = load_from(
        None,
        &env(&[
            ("STEWARD__AUTH__STRATEGY", "keystone"),
            ("STEWARD__AUTH__TOKEN_FILE", bad.to_str().unwrap()),
        ]),
    )
    .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.key.starts_with("auth.token_file") && p.message.contains("shorter")),
        "{problems:?}"
    );
}

#[test]
fn rebalance_execution_and_hook_problems_name_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "steward.toml",
        "[rebalance.execution]\npoll_seconds = 0\nmax_parallel = 0\n\
         [rebalance.hooks.kubernetes]\napi_url = \"k8s\"\nnode_from = \"label:x\"\n\
         [rebalance.hooks.consul]\nagent_url = \"\"\n\
         [[rebalance.hooks.exec]]\nname = \"lb\"\n\
         [[rebalance.hooks.http]]\nname = \"lb\"\nmethod = \"post\"\ndrain_url = \"http://x/{vm}\"\n",
    );
    let problems = load_from(Some(&cfg), &[]).unwrap_err();
    let k = keys(&problems);
    for key in [
        "rebalance.execution.poll_seconds",
        "rebalance.execution.max_parallel",
        "rebalance.hooks.kubernetes.api_url",
        "rebalance.hooks.kubernetes.node_from",
        "rebalance.hooks.consul.agent_url",
        "rebalance.hooks.exec[0]",
        "rebalance.hooks.http[0].method",
        "rebalance.hooks.http[0].name",
    ] {
        assert!(k.contains(&key), "{key} missing from {k:?}");
    }
    // A complete hook set is accepted, relative token files resolved next to the config.
    let cfg = write(
        dir.path(),
        "ok.toml",
        "[rebalance]\nmode = \"approve\"\n\
         [rebalance.hooks.kubernetes]\napi_url = \"https://k8s.example.net:6443\"\n\
         node_from = \"metadata:k8s_node\"\ntoken_file = \"k8s.token\"\n",
    );
    let v = load_from(Some(&cfg), &[]).unwrap_or_else(|p| panic!("{p:#?}"));
    let k8s = v.settings.rebalance.hooks.kubernetes.unwrap();
    assert_eq!(k8s.token_file.unwrap(), dir.path().join("k8s.token"));
}

#[test]
fn the_rebalance_section_defaults_to_dry_run_and_names_each_bad_key() {
    use steward::rebalance::Mode;
    let v = load_from(None, &[]).unwrap();
    assert_eq!(v.settings.rebalance.mode, Mode::DryRun);

    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "steward.toml",
        "[rebalance]\nmode = \"auto\"\nforbidden_windows = [\"11:00-14:00\", \"lunch\"]\n\
         max_concurrent_per_target = 0\nsteal_exit = 0.5\nprofile = \"nope\"\n",
    );
    let problems = load_from(Some(&file), &[]).unwrap_err();
    assert_eq!(
        keys(&problems),
        [
            "rebalance.steal_exit",
            "rebalance.max_concurrent_per_target",
            "rebalance.forbidden_windows[1]",
            "rebalance.profile",
        ]
    );
    let bad_mode = write(dir.path(), "mode.toml", "[rebalance]\nmode = \"yolo\"\n");
    let problems = load_from(Some(&bad_mode), &[]).unwrap_err();
    assert_eq!(keys(&problems), ["rebalance.mode"]);

    let v = load_from(
        None,
        &env(&[
            ("STEWARD__REBALANCE__MODE", "approve"),
            ("STEWARD__REBALANCE__BUDGET_GIB_PER_AZ_PER_HOUR", "50"),
        ]),
    )
    .unwrap();
    assert_eq!(v.settings.rebalance.mode, Mode::Approve);
    assert_eq!(v.settings.rebalance.budget_gib_per_az_per_hour, 50.0);
}

#[test]
fn a_host_cache_past_its_bound_is_a_problem_naming_the_key() {
    let problems = load_from(
        None,
        &env(&[("STEWARD__SERVER__HOST_CACHE_ENTRIES", "2000000")]),
    )
    .unwrap_err();
    assert_eq!(keys(&problems), ["server.host_cache_entries"]);
    assert!(
        problems[0].message.contains("twice your compute nodes"),
        "{problems:#?}"
    );
    let v = load_from(None, &env(&[("STEWARD__SERVER__HOST_CACHE_ENTRIES", "0")]))
        .unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(v.settings.server.host_cache_entries, 0, "0 turns it off");
}

#[test]
fn a_telemetry_nice_outside_what_a_thread_may_take_names_the_key_and_the_range() {
    for bad in ["-5", "20"] {
        let problems =
            load_from(None, &env(&[("STEWARD__SERVER__TELEMETRY_NICE", bad)])).unwrap_err();
        assert_eq!(keys(&problems), ["server.telemetry_nice"], "{bad}");
        assert!(
            problems[0]
                .message
                .contains("0 (the workers' priority) to 19"),
            "{problems:#?}"
        );
    }
    let v = load_from(None, &env(&[])).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(
        v.settings.server.telemetry_nice, 10,
        "pushes wait for callouts by default"
    );
}

/// `steward config check -f json` in `dir`: its exit code and the problems' keys and messages.
fn config_check(dir: &Path, config: &Path) -> (Option<i32>, Vec<(String, String)>) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args([
            "--config",
            config.to_str().unwrap(),
            "config",
            "check",
            "-f",
            "json",
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let problems = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (out.status.code(), problems)
}

#[test]
fn a_wrong_type_hides_no_other_problem_of_its_section() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "steward.toml",
        "[server]\nlisten = \"0.0.0.0:99999\"\nmax_body_bytes = -5\nworkers = 0\nmax_hosts = 0\n",
    );
    let problems = load_from(Some(&cfg), &[]).unwrap_err();
    let k = keys(&problems);
    for want in [
        "server.max_body_bytes",
        "server.listen",
        "server.workers",
        "server.max_hosts",
    ] {
        assert!(k.contains(&want), "{want} missing from {problems:#?}");
    }
    let body = problems
        .iter()
        .find(|p| p.key == "server.max_body_bytes")
        .unwrap();
    assert!(body.message.contains("-5"), "the type error: {body:?}");
    // The control: the same section without the type error lists the same other problems.
    let cfg = write(
        dir.path(),
        "typed.toml",
        "[server]\nlisten = \"0.0.0.0:99999\"\nworkers = 0\nmax_hosts = 0\n",
    );
    let problems = load_from(Some(&cfg), &[]).unwrap_err();
    assert_eq!(
        keys(&problems),
        ["server.listen", "server.max_hosts", "server.workers"]
    );
}

#[test]
fn a_bad_mode_hides_no_bad_window_and_good_keys_still_apply() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "steward.toml",
        "[rebalance]\nmode = \"yolo\"\nforbidden_windows = [\"lunch\"]\n\
         [rebalance.execution]\npoll_seconds = \"often\"\nmax_parallel = 0\n",
    );
    let problems = load_from(Some(&cfg), &[]).unwrap_err();
    let mut k = keys(&problems);
    k.sort();
    assert_eq!(
        k,
        [
            "rebalance.execution.max_parallel",
            "rebalance.execution.poll_seconds",
            "rebalance.forbidden_windows[0]",
            "rebalance.mode",
        ],
        "{problems:#?}"
    );
    // A key of the right type beside a wrong one is applied (and so validated).
    let cfg = write(
        dir.path(),
        "ok.toml",
        "[rebalance]\nmode = \"yolo\"\nmax_actions_per_cycle = 3\n",
    );
    let problems = load_from(Some(&cfg), &[]).unwrap_err();
    assert_eq!(keys(&problems), ["rebalance.mode"]);
}

#[test]
fn config_check_refuses_a_sqlite_file_serve_could_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.sqlite");
    let cfg = write(
        dir.path(),
        "steward.toml",
        &format!("[database]\nurl = \"sqlite://{}\"\n", db.display()),
    );
    let (code, problems) = config_check(dir.path(), &cfg);
    assert_eq!(code, Some(1), "{problems:?}");
    let (key, message) = &problems[0];
    assert_eq!(key, "database.url", "{problems:?}");
    assert!(message.contains("mode=rwc"), "says what to do: {message}");
    assert!(!db.exists(), "config check creates nothing");
    // Controls: with ?mode=rwc it can be created; an existing file needs no mode.
    let cfg = write(
        dir.path(),
        "rwc.toml",
        &format!("[database]\nurl = \"sqlite://{}?mode=rwc\"\n", db.display()),
    );
    let (code, problems) = config_check(dir.path(), &cfg);
    assert_eq!((code, problems), (Some(0), vec![]));
    std::fs::write(&db, b"").unwrap();
    let (code, problems) = config_check(dir.path(), &cfg);
    assert_eq!((code, problems), (Some(0), vec![]));
    // A directory that does not exist cannot hold the file, whatever the mode.
    let cfg = write(
        dir.path(),
        "nodir.toml",
        &format!(
            "[database]\nurl = \"sqlite://{}/nodir/s.sqlite?mode=rwc\"\n",
            dir.path().display()
        ),
    );
    let (code, problems) = config_check(dir.path(), &cfg);
    assert_eq!(code, Some(1));
    assert!(problems[0].1.contains("does not exist"), "{problems:?}");
}

#[test]
fn config_check_parses_a_mysql_url_fully() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "steward.toml",
        "[database]\nurl = \"mysql://steward:pw@db:notaport/steward\"\n",
    );
    let (code, problems) = config_check(dir.path(), &cfg);
    assert_eq!(code, Some(1), "{problems:?}");
    assert_eq!(problems[0].0, "database.url");
    assert!(!problems[0].1.contains("pw@"), "no password: {problems:?}");
    let cfg = write(
        dir.path(),
        "ok.toml",
        "[database]\nurl = \"mysql://steward:pw@db:3306/steward\"\n",
    );
    let (code, problems) = config_check(dir.path(), &cfg);
    assert_eq!((code, problems), (Some(0), vec![]));
}

#[test]
fn config_check_refuses_a_listener_that_cannot_be_bound() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("s.sqlite").display()
    );
    let cfg = write(
        dir.path(),
        "steward.toml",
        &format!("[server]\nlisten = \"{addr}\"\n[database]\nurl = \"{db}\"\n"),
    );
    let (code, problems) = config_check(dir.path(), &cfg);
    assert_eq!(code, Some(1), "{problems:?}");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "server.listen");
    assert!(problems[0].1.contains(&addr.to_string()), "{problems:?}");
    // The control: once released, the same address passes (and is released again).
    drop(taken);
    let (code, problems) = config_check(dir.path(), &cfg);
    assert_eq!((code, problems), (Some(0), vec![]));
    std::net::TcpListener::bind(addr).expect("config check released the address");
}
