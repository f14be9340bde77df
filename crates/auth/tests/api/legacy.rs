//! A database as the original deployment left it: created by its `init.sql`, passwords in
//! plain text.

use sqlx::Executor;

use crate::helpers::{error_message, spawn_app_with, TestDb};

const ORIGINAL_INIT_SQL: &str = include_str!("../fixtures/original_init.sql");
const SEED_EMAIL: &str = "mohamed@email.com";
const SEED_PASSWORD: &str = "Admin123";

/// A fresh database prepared by the original's init.sql (plus `extra` SQL).
async fn original_database(extra: &str) -> TestDb {
    let db = TestDb::create().await;
    let pool = db.pool().await;
    pool.execute(ORIGINAL_INIT_SQL)
        .await
        .expect("original init.sql");
    if !extra.is_empty() {
        pool.execute(extra).await.expect("extra SQL");
    }
    pool.close().await;
    db
}

async fn rows(db: &TestDb) -> Vec<(i32, String, String)> {
    let pool = db.pool().await;
    let rows = sqlx::query_as("SELECT id, email, password FROM auth_user ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn original_database_is_kept_and_its_seed_user_logs_in_and_is_upgraded() {
    let db = original_database("").await;
    let before = rows(&db).await;
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].2, SEED_PASSWORD);

    let app = spawn_app_with(db, &[]).await;

    // Start-up kept every row as it was.
    assert_eq!(rows(&app.db).await, before);

    // The plaintext seed user logs in...
    let response = app.login(SEED_EMAIL, SEED_PASSWORD).await;
    assert_eq!(response.status(), 200);
    let token = response.text().await.unwrap();
    assert_eq!(app.validate(&token).await.status(), 200);

    // ...and the row now holds an argon2id hash, same id and email.
    let after = rows(&app.db).await;
    assert_eq!(after.len(), 1);
    assert_eq!((after[0].0, &after[0].1), (before[0].0, &before[0].1));
    assert!(after[0].2.starts_with("$argon2id$"), "{}", after[0].2);

    // The upgraded row keeps working; the old plaintext comparison is gone for wrong passwords.
    assert_eq!(app.login(SEED_EMAIL, SEED_PASSWORD).await.status(), 200);
    let wrong = app.login(SEED_EMAIL, "admin123").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(error_message(wrong).await, "invalid credentials");
    // The hash is stable after the upgrade (no rehash on every login).
    assert_eq!(rows(&app.db).await, after);
}

#[tokio::test]
async fn with_the_upgrade_off_plaintext_rows_log_in_and_stay_plaintext() {
    let app = spawn_app_with(
        original_database("").await,
        &[("AUTH_UPGRADE_LEGACY_PASSWORDS", "false")],
    )
    .await;
    let before = rows(&app.db).await;

    for _ in 0..2 {
        let response = app.login(SEED_EMAIL, SEED_PASSWORD).await;
        assert_eq!(response.status(), 200);
        let token = response.text().await.unwrap();
        assert_eq!(app.validate(&token).await.status(), 200);
    }
    let wrong = app.login(SEED_EMAIL, "admin123").await;
    assert_eq!(wrong.status(), 401);

    // The row is exactly as the original auth needs it: it still compares the plaintext.
    assert_eq!(rows(&app.db).await, before);
    assert_eq!(app.stored_password(SEED_EMAIL).await, SEED_PASSWORD);

    // Accounts made meanwhile get argon2id all the same (the original auth cannot log them in).
    assert_eq!(
        app.register("mixed@example.com", "long enough")
            .await
            .status(),
        201
    );
    assert!(app
        .stored_password("mixed@example.com")
        .await
        .starts_with("$argon2id$"));
    assert_eq!(
        app.login("mixed@example.com", "long enough").await.status(),
        200
    );
}

#[tokio::test]
async fn with_the_upgrade_on_explicitly_plaintext_rows_are_rehashed() {
    let app = spawn_app_with(
        original_database("").await,
        &[("AUTH_UPGRADE_LEGACY_PASSWORDS", "true")],
    )
    .await;
    assert_eq!(app.login(SEED_EMAIL, SEED_PASSWORD).await.status(), 200);
    assert!(app
        .stored_password(SEED_EMAIL)
        .await
        .starts_with("$argon2id$"));
}

#[tokio::test]
async fn wrong_password_does_not_touch_a_plaintext_row() {
    let app = spawn_app_with(original_database("").await, &[]).await;

    assert_eq!(app.login(SEED_EMAIL, "Admin1234").await.status(), 401);
    assert_eq!(app.login(SEED_EMAIL, "").await.status(), 401);

    assert_eq!(app.stored_password(SEED_EMAIL).await, SEED_PASSWORD);
}

#[tokio::test]
async fn registration_works_on_the_original_table_and_the_unique_index_is_added() {
    let app = spawn_app_with(original_database("").await, &[]).await;

    assert_eq!(
        app.register("new@example.com", "long enough")
            .await
            .status(),
        201
    );
    assert_eq!(
        app.register("MOHAMED@email.com", "long enough")
            .await
            .status(),
        409
    );

    let pool = app.db.pool().await;
    let index: Option<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'auth_user' AND indexname = 'auth_user_email_lower_key'",
    )
    .fetch_optional(&pool)
    .await
    .unwrap();
    let index = index.expect("unique index on lower(email)");
    assert!(
        index.contains("UNIQUE") && index.contains("lower"),
        "{index}"
    );
    let ids: Vec<i32> = sqlx::query_scalar("SELECT id FROM auth_user ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids, vec![1, 2]);
}

#[tokio::test]
async fn case_only_duplicates_in_old_data_start_without_the_index() {
    // The original compared emails exactly, so its data may hold such pairs.
    let db = original_database(
        "INSERT INTO auth_user (email, password) VALUES ('Mohamed@Email.com', 'Other-pass1');",
    )
    .await;
    let app = spawn_app_with(db, &[]).await;

    // Both rows survive and each exact spelling logs in with its own password.
    assert_eq!(app.login(SEED_EMAIL, SEED_PASSWORD).await.status(), 200);
    assert_eq!(
        app.login("Mohamed@Email.com", "Other-pass1").await.status(),
        200
    );
    // Registering a third spelling is still a conflict, without the index.
    assert_eq!(
        app.register("MOHAMED@EMAIL.COM", "long enough")
            .await
            .status(),
        409
    );

    let pool = app.db.pool().await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM auth_user")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 2);
    let index: Option<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE indexname = 'auth_user_email_lower_key'",
    )
    .fetch_optional(&pool)
    .await
    .unwrap();
    assert_eq!(index, None);
}

#[tokio::test]
async fn auth_table_names_another_table() {
    let db = TestDb::create().await;
    let app = spawn_app_with(db, &[("AUTH_TABLE", "Service_Users")]).await;

    assert_eq!(
        app.register("t@example.com", "long enough").await.status(),
        201
    );
    assert_eq!(
        app.login("t@example.com", "long enough").await.status(),
        200
    );

    let stored = app
        .stored_password_in("service_users", "t@example.com")
        .await;
    assert!(stored.starts_with("$argon2id$"));
    let pool = app.db.pool().await;
    let default_table: Option<String> = sqlx::query_scalar("SELECT to_regclass('auth_user')::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(default_table, None, "only the configured table is created");
}

#[tokio::test]
async fn a_table_without_the_expected_columns_refuses_to_start() {
    let db = TestDb::create().await;
    let pool = db.pool().await;
    pool.execute("CREATE TABLE auth_user (id serial PRIMARY KEY, name text)")
        .await
        .unwrap();
    pool.close().await;

    let config = auth::Config::from_env(&crate::helpers::test_env(&db.url, &[])).unwrap();
    let error = match auth::Application::build(config).await {
        Ok(_) => panic!("started on a table without email/password columns"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("no column email"), "{error}");
}

#[tokio::test]
async fn the_upgrade_never_overwrites_a_password_changed_meanwhile() {
    let db = original_database("").await;
    let pool = db.pool().await;
    let store = auth::store::UserStore::new(pool.clone(), "auth_user".parse().unwrap());
    let user = store
        .find_by_email("MOHAMED@EMAIL.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.email, SEED_EMAIL);

    // Someone changes the password between our read and our write.
    sqlx::query("UPDATE auth_user SET password = 'changed-elsewhere' WHERE id = $1")
        .bind(user.id)
        .execute(&pool)
        .await
        .unwrap();
    let replaced = store
        .replace_password(user.id, &user.password, "$argon2id$new")
        .await
        .unwrap();

    assert!(!replaced);
    let stored: String = sqlx::query_scalar("SELECT password FROM auth_user WHERE id = $1")
        .bind(user.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, "changed-elsewhere");
    assert!(store
        .replace_password(user.id, "changed-elsewhere", "$argon2id$new")
        .await
        .unwrap());
    pool.close().await;
}
