//! Steward's own store on both backends, for the tests: a fresh database per test (a temporary
//! SQLite file, or a `steward_test_<random>` database on MariaDB, dropped after) and a runner
//! of one async test body on each.

use sqlx::Connection;
use steward::store::DatabaseUrl;
use steward::store::{Backend, Store};

/// MariaDB for the tests: `STEWARD_TEST_MYSQL_URL`, else the machine's own server.
pub fn mysql_server() -> String {
    std::env::var("STEWARD_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// A fresh database on the backend, and what removes it.
pub struct Scratch {
    pub url: DatabaseUrl,
    drop_db: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Scratch {
    pub async fn new(backend: Backend) -> Scratch {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("s.sqlite").display()
                );
                Scratch {
                    url: DatabaseUrl(url),
                    drop_db: None,
                    _dir: Some(dir),
                }
            }
            Backend::MySql => {
                let server = mysql_server();
                let name = format!("steward_test_{}", uuid::Uuid::new_v4().simple());
                let mut c = sqlx::MySqlConnection::connect(&format!("{server}/mysql"))
                    .await
                    .unwrap_or_else(|e| panic!("MariaDB at {server} is needed ({e}); run ./scripts/test, which starts a private one, or set STEWARD_TEST_MYSQL_URL"));
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .await
                    .unwrap();
                Scratch {
                    url: DatabaseUrl(format!("{server}/{name}")),
                    drop_db: Some((server, name)),
                    _dir: None,
                }
            }
        }
    }

    pub async fn cleanup(self) {
        if let Some((server, name)) = self.drop_db {
            let mut c = sqlx::MySqlConnection::connect(&format!("{server}/mysql"))
                .await
                .unwrap();
            sqlx::query(&format!("DROP DATABASE {name}"))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}

/// Run one async test body on both backends.
pub fn on_both<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    on_both_with_url(|store, _, _| test(store));
}

/// [`on_both`], the body also given the backend and the database's URL (for a raw connection
/// beside the store's pool).
pub fn on_both_with_url<F, Fut>(test: F)
where
    F: Fn(Store, Backend, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for backend in [Backend::Sqlite, Backend::MySql] {
            let scratch = Scratch::new(backend).await;
            let store = Store::connect(&scratch.url, 4).await.unwrap();
            assert_eq!(store.backend(), backend);
            test(store.clone(), backend, scratch.url.0.clone()).await;
            store.close().await;
            scratch.cleanup().await;
        }
    });
}

/// A leader's claim on lease `name` at `epoch`, current for a minute by this process's clock
/// (whether the store still honours it is the store's to say).
pub fn fence(name: &str, holder: &str, epoch: i64) -> steward::store::lease::Fence {
    steward::store::lease::Fence {
        name: name.into(),
        holder: holder.into(),
        epoch,
        valid_until: std::time::Instant::now() + std::time::Duration::from_secs(60),
    }
}
