//! A database for a test: an SQLite file in a temporary directory, or a schema of its own
//! on the PostgreSQL server `SDN_TEST_POSTGRES_URL` names.

use chrono::Utc;

/// The URL of the SQLite file at `path`.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A database to test against; dropped (Postgres schema) by `finish`.
pub struct Target {
    /// The URL to open.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Target {
    /// A new SQLite file in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("sdn.db").display());
        Self {
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A new schema on `SDN_TEST_POSTGRES_URL`, or `None` when it is not set (an error
    /// when `SDN_REQUIRE_POSTGRES` is).
    pub async fn postgres(test: &str) -> Option<Self> {
        let Ok(base) = std::env::var("SDN_TEST_POSTGRES_URL") else {
            // `cargo xtask test` (and so CI) starts a server and requires these tests to run.
            assert!(
                std::env::var_os("SDN_REQUIRE_POSTGRES").is_none(),
                "SDN_REQUIRE_POSTGRES is set but SDN_TEST_POSTGRES_URL is not"
            );
            return None;
        };
        let schema = format!(
            "sdn_test_{test}_{}_{}",
            std::process::id(),
            Utc::now().timestamp_subsec_nanos()
        );
        let pool = sqlx::PgPool::connect(&base).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        Some(Self {
            url,
            _dir: None,
            pg: Some((base, schema)),
        })
    }

    /// Drops the PostgreSQL schema.
    pub async fn finish(self) {
        if let Some((base, schema)) = &self.pg {
            let pool = sqlx::PgPool::connect(base).await.unwrap();
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}
