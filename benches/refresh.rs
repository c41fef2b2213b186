//! A cluster refresh of 5,000 hypervisors and 100,000 servers from a fake Nova that pages like
//! the real one (marker links, 1,000 a page, server bodies shaped like a recorded Nova 34
//! answer). The fake runs in a child process so its memory and CPU are not counted.
//! Prints wall time per refresh and this process's peak RSS (VmHWM).
//! Run: cargo bench --bench refresh

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use steward::cluster::ClusterHandle;
use steward::jobs::{Jobs, NovaSource};
use steward::openstack::cloud::{resolve, ConfigText};
use steward::openstack::nova::{ListOptions, Nova};
use steward::openstack::{Session, SessionOptions};

const PAGE: usize = 1_000;

/// `cargo bench` passes `--bench`: then the full size. `cargo test` runs this target too, as a
/// quick check that the refresh still works (debug build, a fiftieth of the size, one run).
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn sizes() -> (usize, usize) {
    if full() {
        (5_000, 100_000)
    } else {
        (100, 2_000)
    }
}
const ROLES: [&str; 5] = ["web", "db", "cache", "batch", "api"];

fn uuid(kind: u32, i: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

fn template() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openstack/nova-2.87-servers-detail-page1.json"
    ))
    .unwrap()
    .replace("{{nova}}", "http://127.0.0.1");
    let page: Value = serde_json::from_str(&text).unwrap();
    page["servers"][0].clone()
}

fn server(t: &Value, i: usize, hosts: usize) -> Value {
    let mut s = t.clone();
    let host = format!("cmp-{:05}", i % hosts);
    s["id"] = json!(uuid(1, i));
    s["name"] = json!(format!("vm-{i}"));
    s["OS-EXT-SRV-ATTR:host"] = json!(host);
    s["OS-EXT-SRV-ATTR:hypervisor_hostname"] = json!(host);
    s["OS-EXT-AZ:availability_zone"] = json!(format!("az{}", i % hosts % 3 + 1));
    s["metadata"] = json!({"role": ROLES[i % ROLES.len()]});
    s
}

fn hypervisor(i: usize) -> Value {
    let host = format!("cmp-{i:05}");
    json!({"id": uuid(2, i), "hypervisor_hostname": host, "hypervisor_type": "QEMU", "state": "up",
           "status": "enabled", "host_ip": "192.0.2.1", "service": {"host": host, "id": uuid(3, i), "disabled_reason": null},
           "vcpus": 64, "vcpus_used": 20, "memory_mb": 262144, "memory_mb_used": 90000, "local_gb": 2000,
           "local_gb_used": 400, "running_vms": 20, "current_workload": 0, "disk_available_least": 1500,
           "free_disk_gb": 1600, "free_ram_mb": 172144, "hypervisor_version": 8002000, "cpu_info": "{}"})
}

/// Pre-rendered pages keyed by the marker that asks for them ("" for the first).
fn pages(key: &str, items: Vec<Value>, path: &str, port: u16) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut marker = String::new();
    for chunk in items.chunks(PAGE) {
        let last = chunk.last().unwrap()["id"].as_str().unwrap().to_string();
        let mut body = json!({ key: chunk });
        if chunk.len() == PAGE {
            body[format!("{key}_links")] = json!([{"rel": "next",
                "href": format!("http://127.0.0.1:{port}/v2.1/{path}?limit={PAGE}&marker={last}")}]);
        }
        out.push((marker.clone(), serde_json::to_vec(&body).unwrap()));
        marker = last;
    }
    out
}

/// The child: serve the fake Nova until stdin closes.
fn fake_nova() {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = template();
    let (n_hosts, n_servers) = sizes();
    let servers = pages(
        "servers",
        (0..n_servers).map(|i| server(&t, i, n_hosts)).collect(),
        "servers/detail",
        port,
    );
    let hypervisors = pages(
        "hypervisors",
        (0..n_hosts).map(hypervisor).collect(),
        "os-hypervisors/detail",
        port,
    );
    let aggregates = serde_json::to_vec(&json!({"aggregates": (1..=3).map(|z| json!({
        "id": z, "name": format!("az{z}"), "availability_zone": format!("az{z}"),
        "metadata": {"availability_zone": format!("az{z}")},
        "hosts": (0..n_hosts).filter(|i| i % 3 + 1 == z).map(|i| format!("cmp-{i:05}")).collect::<Vec<_>>()
    })).collect::<Vec<_>>()})).unwrap();
    let groups = serde_json::to_vec(&json!({"server_groups": []})).unwrap();
    let data = web::Data::new((servers, hypervisors, aggregates, groups));
    println!("{port}");
    std::thread::spawn(|| {
        // Parent gone: stop.
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        std::process::exit(0);
    });
    type D = (
        Vec<(String, Vec<u8>)>,
        Vec<(String, Vec<u8>)>,
        Vec<u8>,
        Vec<u8>,
    );
    fn page(req: &HttpRequest, pages: &[(String, Vec<u8>)]) -> HttpResponse {
        let marker = req
            .query_string()
            .split('&')
            .find_map(|kv| kv.strip_prefix("marker="))
            .unwrap_or("");
        match pages.iter().find(|(m, _)| m == marker) {
            Some((_, body)) => HttpResponse::Ok()
                .content_type("application/json")
                .body(body.clone()),
            None => HttpResponse::Ok()
                .content_type("application/json")
                .body("{\"servers\": [], \"hypervisors\": []}"),
        }
    }
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/v2.1/servers/detail",
                    web::get().to(|r: HttpRequest, d: web::Data<D>| async move { page(&r, &d.0) }),
                )
                .route(
                    "/v2.1/os-hypervisors/detail",
                    web::get().to(|r: HttpRequest, d: web::Data<D>| async move { page(&r, &d.1) }),
                )
                .route(
                    "/v2.1/os-aggregates",
                    web::get().to(|d: web::Data<D>| async move {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(d.2.clone())
                    }),
                )
                .route(
                    "/v2.1/os-server-groups",
                    web::get().to(|d: web::Data<D>| async move {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(d.3.clone())
                    }),
                )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run()
        .await
        .unwrap()
    });
}

fn vm_hwm_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == "--fake-nova") {
        return fake_nova();
    }
    if std::env::args().any(|a| a == "--list") {
        println!("refresh: bench");
        return;
    }
    let (n_hosts, n_servers) = sizes();
    let runs = if full() { 3 } else { 1 };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--fake-nova")
        .args(full().then_some("--bench"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let port: u16 = port.trim().parse().expect("the fake Nova prints its port");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clouds = ConfigText::new(
            "bench-clouds.yaml",
            format!("clouds:\n  bench:\n    auth_type: admin_token\n    auth:\n      token: bench-token\n    compute_endpoint_override: http://127.0.0.1:{port}/v2.1\n"),
        );
        let cloud = resolve(Some("bench"), &[], Some(&clouds), None).unwrap();
        let mut options = SessionOptions::for_cloud(&cloud);
        options.timeout = Duration::from_secs(120);
        let session = Arc::new(Session::new(cloud, options).unwrap());
        let nova = Nova::new(session).with_list_options(ListOptions { page_size: PAGE as u32, ..Default::default() });
        let dir = tempfile::tempdir().unwrap();
        let url = steward::store::DatabaseUrl(format!("sqlite://{}?mode=rwc", dir.path().join("b.sqlite").display()));
        let store = steward::store::Store::connect(&url, 1).await.unwrap();
        let jobs = Jobs {
            prometheus: None,
            nova: Some(NovaSource { nova: Arc::new(nova), role_key: "role".into(), default_az: "nova".into(), every: Duration::from_secs(60) }),
            store,
            cluster: Arc::new(ClusterHandle::new(Default::default())),
            metrics: steward::metrics::Metrics::new(),
        };
        println!("baseline peak RSS before any refresh: {:.0} MB", vm_hwm_mb());
        let mut times = Vec::new();
        for run in 1..=runs {
            let started = Instant::now();
            let (hosts, vms) = jobs.refresh_nova(0.0).await.expect("refresh");
            let secs = started.elapsed().as_secs_f64();
            assert_eq!((hosts, vms), (n_hosts, n_servers));
            println!("refresh {run}: {hosts} hypervisors, {vms} servers in {secs:.2} s; peak RSS so far {:.0} MB", vm_hwm_mb());
            times.push(secs);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "median refresh {:.2} s; peak RSS {:.0} MB (VmHWM of the steward side)",
            times[times.len() / 2],
            vm_hwm_mb()
        );
    });
    drop(child.stdin.take());
    let _ = child.wait();
}
