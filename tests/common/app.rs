//! A steward app in-process over a temporary SQLite store, with one static token per role.

use steward::api::AppState;
use steward::cluster::ClusterHandle;
use steward::store::Store;

pub const READER: &str = "reader-token-0123456789abcdef";
pub const TELEMETRY: &str = "telemetry-token-0123456789abc";
pub const ADMIN: &str = "admin-token-0123456789abcdefg";

/// Settings: static auth, a private SQLite file, then `extra` (TOML) appended.
pub async fn state(extra: &str) -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("tokens"),
        format!("{READER} reader\n{TELEMETRY} telemetry\n{ADMIN} admin\n"),
    )
    .unwrap();
    let db = dir.path().join("steward.sqlite");
    let cfg = dir.path().join("steward.toml");
    std::fs::write(
        &cfg,
        format!(
            "[auth]\nstrategy = \"static\"\ntoken_file = \"tokens\"\n[database]\nurl = \"sqlite://{}?mode=rwc\"\n{extra}\n",
            db.display()
        ),
    )
    .unwrap();
    let v = steward::config::load_from(Some(&cfg), &[]).unwrap_or_else(|p| panic!("{p:#?}"));
    let store = Store::connect(&v.settings.database.url, 1).await.unwrap();
    store.upgrade().await.unwrap();
    let view = store.load_view().await.unwrap();
    (dir, AppState::new(v, store, ClusterHandle::new(view)))
}
