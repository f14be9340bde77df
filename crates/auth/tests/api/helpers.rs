//! Starting the real auth service on port 0 against a fresh, uniquely named Postgres database.

use std::{collections::HashMap, sync::Arc};

use base64::Engine as _;
use sqlx::{postgres::PgPoolOptions, Connection, Executor, PgConnection, PgPool};

/// The server the tests use (`TEST_DATABASE_URL`, printed by `scripts/test-deps.sh`).
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("TEST_DATABASE_URL is not set: run eval \"$(bash scripts/test-deps.sh)\" first")
    })
}

/// `url` with its database replaced by `database`.
pub fn url_with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{base}/{database}{query}")
}

/// A database created for one test and dropped when this value is dropped (even on panic).
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// A connection string for it.
    pub url: String,
}

impl TestDb {
    /// Creates `auth_test_<uuid>`.
    pub async fn create() -> TestDb {
        let name = format!("auth_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .expect("connect to TEST_DATABASE_URL");
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .expect("create test database");
        TestDb {
            url: url_with_database(&admin_url(), &name),
            name,
        }
    }

    /// A name for a database that does not exist (yet); dropped if a test creates it.
    pub fn not_created() -> TestDb {
        let name = format!("auth_test_{}", uuid::Uuid::new_v4().simple());
        TestDb {
            url: url_with_database(&admin_url(), &name),
            name,
        }
    }

    /// Creates the database named by [`TestDb::not_created`].
    pub async fn create_now(&self) {
        let mut admin = PgConnection::connect(&admin_url()).await.expect("connect");
        admin
            .execute(format!("CREATE DATABASE \"{}\"", self.name).as_str())
            .await
            .expect("create test database");
    }

    /// A small pool on the test database, to look at rows directly.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.url)
            .await
            .expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; a small runtime of its own on a plain thread does the work.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url()).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await
                    .map(drop)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            tracing::warn!(database = %self.name, "could not drop test database");
        }
    }
}

/// The test secret (long enough for the service to accept it).
pub const JWT_SECRET: &str = "test-secret-for-auth-0123456789abcdef";

/// A running auth service and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// The service's database (shared with the other replicas of a test).
    pub db: Arc<TestDb>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The environment of a test service on `db`, with `extra` on top.
pub fn test_env(db_url: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("DATABASE_URL", db_url),
        ("JWT_SECRET", JWT_SECRET),
        ("AUTH_ADDR", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

/// The service on a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestDb::create().await, &[]).await
}

/// The service on `db` (which a test may have prepared), with extra environment variables.
pub async fn spawn_app_with(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
    spawn_on(Arc::new(db), extra).await
}

/// Another replica of `app`'s service: its own process state (limits in memory, connections),
/// the same database, with `extra` settings.
pub async fn spawn_replica(app: &TestApp, extra: &[(&str, &str)]) -> TestApp {
    spawn_on(app.db.clone(), extra).await
}

async fn spawn_on(db: Arc<TestDb>, extra: &[(&str, &str)]) -> TestApp {
    common::telemetry::init("auth");
    let config = auth::Config::from_env(&test_env(&db.url, extra)).expect("config");
    let app = auth::Application::build(config).await.expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        db,
        server,
    }
}

/// `Authorization: Basic` for `user:password`.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl TestApp {
    /// `POST path` with an `Authorization` header (none when `None`) and extra headers.
    pub async fn post(
        &self,
        path: &str,
        authorization: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(format!("{}{path}", self.address));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("request")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request")
    }

    /// `POST /register` with Basic credentials.
    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.post("/register", Some(&basic(email, password)), &[])
            .await
    }

    /// `POST /login` with Basic credentials.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post("/login", Some(&basic(email, password)), &[])
            .await
    }

    /// `POST /login` from the client address `ip`, as a proxy would forward it.
    pub async fn login_from(&self, ip: &str, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/login",
            Some(&basic(email, password)),
            &[("x-forwarded-for", ip)],
        )
        .await
    }

    /// `POST /register` from the client address `ip`, as a proxy would forward it.
    pub async fn register_from(&self, ip: &str, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/register",
            Some(&basic(email, password)),
            &[("x-forwarded-for", ip)],
        )
        .await
    }

    /// `GET /metrics` as text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.expect("metrics")
    }

    /// `POST /validate` with `Authorization: Bearer <token>`.
    pub async fn validate(&self, token: &str) -> reqwest::Response {
        self.post("/validate", Some(&format!("Bearer {token}")), &[])
            .await
    }

    /// Registers and logs in; the token.
    pub async fn token_for(&self, email: &str, password: &str) -> String {
        assert_eq!(self.register(email, password).await.status(), 201);
        let response = self.login(email, password).await;
        assert_eq!(response.status(), 200);
        response.text().await.expect("token")
    }

    /// The stored password of `email` (exact spelling).
    pub async fn stored_password(&self, email: &str) -> String {
        self.stored_password_in("auth_user", email).await
    }

    /// The stored password of `email` in `table`.
    pub async fn stored_password_in(&self, table: &str, email: &str) -> String {
        let pool = self.db.pool().await;
        let password: String =
            sqlx::query_scalar(&format!("SELECT password FROM {table} WHERE email = $1"))
                .bind(email)
                .fetch_one(&pool)
                .await
                .expect("row");
        pool.close().await;
        password
    }
}

/// The `{"error": ...}` message of a response.
pub async fn error_message(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {body}"))
        .to_owned()
}

/// The Redis the tests use (`TEST_REDIS_URL`, default the machine's `redis://127.0.0.1:6379`).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A `REDIS_KEY_PREFIX` of one test; its keys are deleted when this value is dropped.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    /// `vidconv-test:auth:<uuid>:`.
    pub fn new() -> Self {
        Self(format!(
            "vidconv-test:auth:{}:",
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// The keys under this prefix.
    pub async fn keys(&self) -> Vec<String> {
        keys_under(&self.0).await.expect("KEYS on TEST_REDIS_URL")
    }
}

async fn redis_connection() -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(redis_url())?
        .get_multiplexed_async_connection()
        .await
}

async fn keys_under(prefix: &str) -> redis::RedisResult<Vec<String>> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut redis_connection().await?)
        .await
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        // As TestDb: a runtime of its own on a plain thread.
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let keys = keys_under(&prefix).await?;
                if !keys.is_empty() {
                    redis::cmd("DEL")
                        .arg(keys)
                        .query_async::<i64>(&mut redis_connection().await?)
                        .await?;
                }
                redis::RedisResult::Ok(())
            })
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::warn!(prefix = %self.0, "could not delete the test's redis keys");
        }
    }
}

/// A unique email for a test.
pub fn email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}
