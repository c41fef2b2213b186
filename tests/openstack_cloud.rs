//! Resolving a cloud as openstacksdk and the `openstack` CLI do: clouds.yaml + secure.yaml +
//! OS_* variables, legacy spellings, and errors that name the cloud, the file and the key.

use std::path::PathBuf;
use std::time::Duration;

use steward::openstack::cloud::{
    load_with, resolve, search_paths, ApplicationCredentialRef, Auth, ConfigText, DomainRef,
    ProjectRef, Scope, UserRef,
};
use steward::openstack::Interface;

const CLOUDS: &str = "
clouds:
  prod:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: steward
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: internal
    placement_endpoint_override: http://placement.internal:8778
    cacert: /etc/ssl/certs/cloud-ca.pem
  lab:
    auth_type: v3applicationcredential
    auth:
      auth_url: http://10.0.0.5:5000
      application_credential_id: 0123abcd
    regions:
      - RegionA
      - name: RegionB
        values:
          interface: admin
";

const SECURE: &str = "
clouds:
  prod:
    auth:
      password: prod-secret-from-secure-yaml
  lab:
    auth:
      application_credential_secret: lab-appcred-secret
";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn files() -> (ConfigText, ConfigText) {
    (
        ConfigText::new("/etc/openstack/clouds.yaml", CLOUDS),
        ConfigText::new("/etc/openstack/secure.yaml", SECURE),
    )
}

#[test]
fn a_named_cloud_takes_its_password_from_secure_yaml() {
    let (c, s) = files();
    let cloud = resolve(Some("prod"), &[], Some(&c), Some(&s)).unwrap();
    assert_eq!(cloud.name, "prod");
    assert_eq!(
        cloud.files,
        [
            PathBuf::from("/etc/openstack/clouds.yaml"),
            PathBuf::from("/etc/openstack/secure.yaml")
        ]
    );
    let Auth::Password {
        auth_url,
        user,
        password,
        scope,
    } = &cloud.auth
    else {
        panic!("expected a password login, got {:?}", cloud.auth)
    };
    assert_eq!(auth_url.as_str(), "https://keystone.example:5000/v3");
    assert_eq!(
        *user,
        UserRef::Name {
            name: "steward".into(),
            domain: DomainRef::Name("Default".into())
        }
    );
    assert_eq!(password.expose(), "prod-secret-from-secure-yaml");
    assert_eq!(
        *scope,
        Scope::Project(ProjectRef::Name {
            name: "admin".into(),
            domain: DomainRef::Name("Default".into())
        })
    );
    assert_eq!(cloud.region_name.as_deref(), Some("RegionOne"));
    assert_eq!(cloud.interface, Interface::Internal);
    assert_eq!(
        cloud.endpoint_override("placement").unwrap().as_str(),
        "http://placement.internal:8778/"
    );
    assert_eq!(
        cloud.cacert.as_deref(),
        Some(std::path::Path::new("/etc/ssl/certs/cloud-ca.pem"))
    );
    assert!(!cloud.insecure);
}

#[test]
fn os_cloud_picks_the_cloud_and_the_first_region_is_the_default() {
    let (c, s) = files();
    let cloud = resolve(None, &env(&[("OS_CLOUD", "lab")]), Some(&c), Some(&s)).unwrap();
    assert_eq!(cloud.name, "lab");
    assert_eq!(cloud.region_name.as_deref(), Some("RegionA"));
    assert_eq!(cloud.interface, Interface::Public);
    let Auth::ApplicationCredential {
        auth_url,
        credential,
        secret,
    } = &cloud.auth
    else {
        panic!("expected an application credential, got {:?}", cloud.auth)
    };
    assert_eq!(auth_url.as_str(), "http://10.0.0.5:5000/");
    assert_eq!(*credential, ApplicationCredentialRef::Id("0123abcd".into()));
    assert_eq!(secret.expose(), "lab-appcred-secret");

    // OS_REGION_NAME picks a region, and that region's values apply.
    let b = resolve(
        None,
        &env(&[("OS_CLOUD", "lab"), ("OS_REGION_NAME", "RegionB")]),
        Some(&c),
        Some(&s),
    )
    .unwrap();
    assert_eq!(b.region_name.as_deref(), Some("RegionB"));
    assert_eq!(b.interface, Interface::Admin);
}

#[test]
fn the_argument_beats_os_cloud() {
    let (c, s) = files();
    let cloud = resolve(
        Some("prod"),
        &env(&[("OS_CLOUD", "lab")]),
        Some(&c),
        Some(&s),
    )
    .unwrap();
    assert_eq!(cloud.name, "prod");
}

#[test]
fn os_variables_override_the_named_cloud_key_by_key() {
    let (c, s) = files();
    let cloud = resolve(
        None,
        &env(&[
            ("OS_CLOUD", "prod"),
            ("OS_PASSWORD", "from-the-environment"),
            ("OS_INTERFACE", "public"),
            ("OS_PROJECT_NAME", "service"),
            ("OS_INSECURE", "true"),
            // Empty values count as unset, as for the CLI.
            ("OS_USERNAME", ""),
        ]),
        Some(&c),
        Some(&s),
    )
    .unwrap();
    let Auth::Password {
        password,
        scope,
        user,
        ..
    } = &cloud.auth
    else {
        panic!("{:?}", cloud.auth)
    };
    assert_eq!(password.expose(), "from-the-environment");
    assert_eq!(
        *scope,
        Scope::Project(ProjectRef::Name {
            name: "service".into(),
            domain: DomainRef::Name("Default".into())
        })
    );
    assert!(matches!(user, UserRef::Name { name, .. } if name == "steward"));
    assert_eq!(cloud.interface, Interface::Public);
    assert!(cloud.insecure);
    // Untouched keys keep the file's values.
    assert_eq!(cloud.region_name.as_deref(), Some("RegionOne"));
}

#[test]
fn os_variables_alone_make_the_envvars_cloud() {
    let vars = env(&[
        ("OS_AUTH_URL", "http://keystone:5000/v3"),
        ("OS_USERNAME", "admin"),
        ("OS_PASSWORD", "openrc-secret"),
        ("OS_USER_DOMAIN_ID", "default"),
        ("OS_PROJECT_ID", "09f2c3c531d14c8f89ff9a26401a5389"),
        ("OS_REGION_NAME", "RegionOne"),
        ("OS_INTERFACE", "internalURL"),
        ("OS_CACERT", "/etc/ssl/ca.pem"),
        ("OS_IDENTITY_API_VERSION", "3"),
    ]);
    let cloud = resolve(None, &vars, None, None).unwrap();
    assert_eq!(cloud.name, "envvars");
    assert!(cloud.files.is_empty());
    let Auth::Password { user, scope, .. } = &cloud.auth else {
        panic!("{:?}", cloud.auth)
    };
    assert_eq!(
        *user,
        UserRef::Name {
            name: "admin".into(),
            domain: DomainRef::Id("default".into())
        }
    );
    assert_eq!(
        *scope,
        Scope::Project(ProjectRef::Id("09f2c3c531d14c8f89ff9a26401a5389".into()))
    );
    assert_eq!(cloud.interface, Interface::Internal);
    assert_eq!(cloud.cacert, Some(PathBuf::from("/etc/ssl/ca.pem")));

    // With a file present, the variables' cloud still wins when no cloud is named.
    let (c, s) = files();
    let named = resolve(
        None,
        &[vars.clone(), env(&[("OS_CLOUD_NAME", "openrc")])].concat(),
        Some(&c),
        Some(&s),
    )
    .unwrap();
    assert_eq!(named.name, "openrc");
    assert!(named.files.is_empty());
}

#[test]
fn application_credentials_from_variables() {
    let cloud = resolve(
        None,
        &env(&[
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_AUTH_URL", "http://keystone:5000"),
            ("OS_APPLICATION_CREDENTIAL_ID", "abc123"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s3cret-app"),
        ]),
        None,
        None,
    )
    .unwrap();
    assert!(matches!(
        &cloud.auth,
        Auth::ApplicationCredential { credential: ApplicationCredentialRef::Id(id), .. } if id == "abc123"
    ));

    // By name, a credential needs its user: it is unique per user only.
    let by_name = env(&[
        ("OS_AUTH_TYPE", "applicationcredential"),
        ("OS_AUTH_URL", "http://keystone:5000"),
        ("OS_APPLICATION_CREDENTIAL_NAME", "steward"),
        ("OS_APPLICATION_CREDENTIAL_SECRET", "s3cret-app"),
    ]);
    let err = resolve(None, &by_name, None, None).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("auth.username"));
    let ok = resolve(
        None,
        &[by_name, env(&[("OS_USER_ID", "e7d418f8")])].concat(),
        None,
        None,
    )
    .unwrap();
    assert!(matches!(
        &ok.auth,
        Auth::ApplicationCredential {
            credential: ApplicationCredentialRef::Name { name, user: UserRef::Id(u) },
            ..
        } if name == "steward" && u == "e7d418f8"
    ));
}

#[test]
fn static_tokens_for_noauth_peers_and_token_exchange_with_keystone() {
    let yaml = "
clouds:
  noauth:
    auth_type: admin_token
    auth:
      token: admin
      endpoint: http://127.0.0.1:8774/v2.1
    placement_endpoint_override: http://127.0.0.1:8778
  rescope:
    auth_type: token
    auth:
      auth_url: http://keystone:5000/v3
      token: an-unscoped-token
      project_id: p1
";
    let c = ConfigText::new("clouds.yaml", yaml);
    let noauth = resolve(Some("noauth"), &[], Some(&c), None).unwrap();
    let Auth::Static { token, endpoint } = &noauth.auth else {
        panic!("{:?}", noauth.auth)
    };
    assert_eq!(token.expose(), "admin");
    assert_eq!(
        endpoint.as_ref().unwrap().as_str(),
        "http://127.0.0.1:8774/v2.1"
    );
    assert!(noauth.endpoint_override("placement").is_some());

    let rescope = resolve(Some("rescope"), &[], Some(&c), None).unwrap();
    assert!(matches!(
        &rescope.auth,
        Auth::Token { scope: Scope::Project(ProjectRef::Id(p)), .. } if p == "p1"
    ));

    // `token` with no Keystone to exchange it at is a static token too.
    let env_token = resolve(
        None,
        &env(&[
            ("OS_AUTH_TYPE", "token"),
            ("OS_TOKEN", "admin"),
            ("OS_ENDPOINT", "http://127.0.0.1:8778"),
        ]),
        None,
        None,
    )
    .unwrap();
    assert!(matches!(env_token.auth, Auth::Static { .. }));
}

#[test]
fn legacy_spellings_are_understood() {
    let yaml = "
clouds:
  old:
    auth_plugin: password
    endpoint_type: internalURL
    compute-endpoint-type: adminURL
    api_timeout: 45
    verify: false
    auth:
      auth-url: http://keystone:5000/v3
      username: u
      password: p
      tenant_name: t
      domain_name: Corp
";
    let c = ConfigText::new("clouds.yaml", yaml);
    let cloud = resolve(Some("old"), &[], Some(&c), None).unwrap();
    assert_eq!(cloud.interface, Interface::Internal);
    assert_eq!(cloud.interface_for("compute"), Interface::Admin);
    assert_eq!(cloud.api_timeout, Some(Duration::from_secs(45)));
    assert!(cloud.insecure, "verify: false means insecure");
    // domain_name fills both the user's and the project's domain of a project-scoped login.
    let Auth::Password { user, scope, .. } = &cloud.auth else {
        panic!("{:?}", cloud.auth)
    };
    assert_eq!(
        *user,
        UserRef::Name {
            name: "u".into(),
            domain: DomainRef::Name("Corp".into())
        }
    );
    assert_eq!(
        *scope,
        Scope::Project(ProjectRef::Name {
            name: "t".into(),
            domain: DomainRef::Name("Corp".into())
        })
    );
}

#[test]
fn errors_name_the_cloud_the_file_and_the_key() {
    let (c, _) = files();
    // No secure.yaml: the password is missing.
    let err = resolve(Some("prod"), &[], Some(&c), None).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("auth.password"));
    let text = err.to_string();
    assert!(text.contains("cloud \"prod\""), "{text}");
    assert!(text.contains("/etc/openstack/clouds.yaml"), "{text}");
    assert!(text.contains("key auth.password"), "{text}");
    assert!(text.contains("OS_PASSWORD"), "the fix is named: {text}");

    let err = resolve(Some("staging"), &[], Some(&c), None).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cloud \"staging\""), "{text}");
    assert!(
        text.contains("prod, lab") || text.contains("lab, prod"),
        "{text}"
    );

    let err = resolve(None, &[], Some(&c), None).unwrap_err();
    assert!(err.to_string().contains("defines 2 clouds"), "{err}");
    assert!(err.to_string().contains("OS_CLOUD"), "{err}");

    let err = resolve(
        None,
        &env(&[("OS_CLOUD", "lab"), ("OS_REGION_NAME", "RegionC")]),
        Some(&c),
        None,
    )
    .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("region_name"));
    assert!(err.to_string().contains("RegionA, RegionB"), "{err}");

    let bad = ConfigText::new(
        "/home/op/clouds.yaml",
        "clouds:\n  x:\n    auth_type: oidcpassword\n    auth: {auth_url: http://k/v3}\n",
    );
    let err = resolve(None, &[], Some(&bad), None).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("auth_type"));
    assert!(err.to_string().contains("v3applicationcredential"), "{err}");

    let v2 = ConfigText::new(
        "c.yaml",
        "clouds:\n  x:\n    identity_api_version: 2\n    auth: {auth_url: http://k/v2.0, username: u, password: p}\n",
    );
    let err = resolve(None, &[], Some(&v2), None).unwrap_err();
    assert!(err.to_string().contains("Keystone v2"), "{err}");

    let named_without_domain = ConfigText::new(
        "c.yaml",
        "clouds:\n  x:\n    auth: {auth_url: http://k/v3, username: u, password: p}\n",
    );
    let err = resolve(None, &[], Some(&named_without_domain), None).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("auth.user_domain_name"));

    let profile = ConfigText::new("c.yaml", "clouds:\n  x:\n    profile: vexxhost\n");
    let err = resolve(None, &[], Some(&profile), None).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("profile"));
}

#[test]
fn a_broken_file_is_an_error_that_shows_no_secret() {
    let broken = ConfigText::new(
        "/etc/openstack/clouds.yaml",
        "clouds:\n  prod:\n    auth:\n      password: hunter2-secret\n     bad indent: [\n",
    );
    let err = resolve(Some("prod"), &[], Some(&broken), None).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("/etc/openstack/clouds.yaml"), "{text}");
    assert!(text.contains("not valid YAML"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn secrets_never_print() {
    let (c, s) = files();
    for name in ["prod", "lab"] {
        let cloud = resolve(Some(name), &[], Some(&c), Some(&s)).unwrap();
        let shown = format!("{cloud:?} {:?}", cloud.auth);
        assert!(!shown.contains("prod-secret-from-secure-yaml"), "{shown}");
        assert!(!shown.contains("lab-appcred-secret"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
    let t = steward::openstack::Secret::new("tok");
    assert_eq!(format!("{t} {t:?}"), "*** ***");
}

#[test]
fn a_stray_os_variable_does_not_hide_clouds_yaml() {
    let one = ConfigText::new(
        "c.yaml",
        "clouds:\n  only:\n    auth_type: admin_token\n    auth: {token: t, endpoint: 'http://p:8778'}\n",
    );
    // A service's own OS_* settings are not a login: the file's only cloud is used.
    let cloud = resolve(
        None,
        &env(&[
            ("OS_PLACEMENT_CONFIG_DIR", "/etc/placement"),
            ("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1"),
        ]),
        Some(&one),
        None,
    )
    .unwrap();
    assert_eq!(cloud.name, "only");
}

#[test]
fn a_file_cloud_named_like_the_variables_cloud_is_refused() {
    let c = ConfigText::new(
        "c.yaml",
        "clouds:\n  envvars:\n    auth_type: admin_token\n    auth: {token: t}\n",
    );
    let err = resolve(
        None,
        &env(&[("OS_AUTH_URL", "http://k/v3")]),
        Some(&c),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("OS_CLOUD_NAME"), "{err}");
}

#[test]
fn no_configuration_at_all_says_what_to_write() {
    let err = resolve(None, &[], None, None).unwrap_err();
    assert!(err.to_string().contains("clouds.yaml"), "{err}");
    assert!(err.to_string().contains("OS_AUTH_URL"), "{err}");
}

#[test]
fn files_are_searched_where_openstacksdk_looks() {
    let (clouds, secure) = search_paths(
        &env(&[
            ("OS_CLIENT_CONFIG_FILE", "/srv/steward/clouds.yaml"),
            ("OS_CLIENT_SECURE_FILE", "/run/secrets/secure.yaml"),
        ]),
        std::path::Path::new("/work"),
        Some(std::path::Path::new("/home/op")),
    );
    let shown =
        |v: &[PathBuf]| -> Vec<String> { v.iter().map(|p| p.display().to_string()).collect() };
    let clouds = shown(&clouds);
    assert_eq!(clouds[0], "/srv/steward/clouds.yaml");
    assert_eq!(clouds[1], "/work/clouds.yaml");
    assert!(clouds.contains(&"/home/op/.config/openstack/clouds.yaml".to_string()));
    assert_eq!(clouds.last().unwrap(), "/etc/openstack/clouds.json");
    let pos = |name: &str| clouds.iter().position(|p| p == name).unwrap();
    assert!(pos("/work/clouds.yaml") < pos("/home/op/.config/openstack/clouds.yaml"));
    assert!(pos("/home/op/.config/openstack/clouds.yaml") < pos("/etc/openstack/clouds.yaml"));
    assert_eq!(shown(&secure)[0], "/run/secrets/secure.yaml");
    assert!(shown(&secure).contains(&"/work/secure.yaml".to_string()));
}

#[test]
fn load_reads_clouds_yaml_and_secure_yaml_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clouds.yaml"), CLOUDS).unwrap();
    std::fs::write(dir.path().join("secure.yaml"), SECURE).unwrap();
    let cloud = load_with(Some("prod"), &env(&[]), dir.path(), None).unwrap();
    assert_eq!(cloud.files.len(), 2);
    assert!(
        matches!(&cloud.auth, Auth::Password { password, .. } if password.expose() == "prod-secret-from-secure-yaml")
    );

    // OS_CLIENT_CONFIG_FILE naming nothing is an error, not a silent fall-back.
    let err = load_with(
        Some("prod"),
        &env(&[("OS_CLIENT_CONFIG_FILE", "/nonexistent/clouds.yaml")]),
        dir.path(),
        None,
    )
    .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("OS_CLIENT_CONFIG_FILE"));
    assert!(
        err.to_string().contains("/nonexistent/clouds.yaml"),
        "{err}"
    );
}
