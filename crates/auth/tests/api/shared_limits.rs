//! The limits with several replicas: two auth services on one database, as two pods behind the
//! `auth` Service. With `REDIS_URL` they count together; without it each counts alone, which
//! is why Redis is needed once auth runs more than one replica.

use crate::helpers::{redis_url, spawn_app_with, spawn_replica, RedisPrefix, TestApp, TestDb};

const RIGHT: &str = "right password";
const ATTACKER: &str = "203.0.113.5";

/// Two replicas behind the gateway (one trusted proxy hop), with `extra` settings each.
async fn two_replicas(extra: &[(&str, &str)]) -> [TestApp; 2] {
    let mut env = vec![("TRUSTED_PROXY_HOPS", "1")];
    env.extend_from_slice(extra);
    let first = spawn_app_with(TestDb::create().await, &env).await;
    let second = spawn_replica(&first, &env).await;
    [first, second]
}

async fn registered(app: &TestApp, email: &str) {
    assert_eq!(app.register(email, RIGHT).await.status(), 201, "{email}");
}

/// Wrong passwords for `email` from the attacker, alternating between the replicas (as a load
/// balancer spreads them); their statuses.
async fn guesses(replicas: &[TestApp; 2], email: &str, count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..count {
        let guess = replicas[i % 2]
            .login_from(ATTACKER, email, &format!("guess {i}"))
            .await;
        statuses.push(guess.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn the_pair_limit_holds_across_replicas_sharing_redis() {
    let prefix = RedisPrefix::new();
    let redis = redis_url();
    let replicas = two_replicas(&[
        ("LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP", "4"),
        ("REDIS_URL", &redis),
        ("REDIS_KEY_PREFIX", &prefix.0),
    ])
    .await;
    registered(&replicas[0], "victim@example.com").await;

    // Four failures, two on each replica: the pair is at its limit on both.
    assert_eq!(guesses(&replicas, "victim@example.com", 4).await, [401; 4]);
    for replica in &replicas {
        let locked = replica
            .login_from(ATTACKER, "victim@example.com", RIGHT)
            .await;
        assert_eq!(locked.status(), 429);
        assert!(locked.headers().contains_key("retry-after"));
    }
    // The owner elsewhere is untouched, on either replica.
    for replica in &replicas {
        let owner = replica
            .login_from("198.51.100.7", "victim@example.com", RIGHT)
            .await;
        assert_eq!(owner.status(), 200);
    }
    // What Redis holds is named by digests: no email, no address.
    let keys = prefix.keys().await;
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            !key.contains("victim") && !key.contains(ATTACKER) && !key.contains("198.51"),
            "{key}"
        );
    }
}

#[tokio::test]
async fn without_redis_each_replica_counts_alone() {
    let replicas = two_replicas(&[("LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP", "4")]).await;
    registered(&replicas[0], "victim@example.com").await;

    // The same four failures leave each replica at two of four: the attacker gets twice the
    // configured guesses (N replicas, N times), which is what REDIS_URL prevents.
    assert_eq!(guesses(&replicas, "victim@example.com", 6).await, [401; 6]);
    assert_eq!(
        guesses(&replicas, "victim@example.com", 4).await,
        [401, 401, 429, 429]
    );
    // And a lock-out depends on which replica answers: each is at its own limit now.
    for replica in &replicas {
        let locked = replica
            .login_from(ATTACKER, "victim@example.com", RIGHT)
            .await;
        assert_eq!(locked.status(), 429);
    }
}

#[tokio::test]
async fn a_sprayer_is_throttled_across_replicas_sharing_redis() {
    let prefix = RedisPrefix::new();
    let redis = redis_url();
    let replicas = two_replicas(&[
        ("LOGIN_MAX_FAILED_EMAILS_PER_IP", "4"),
        ("REDIS_URL", &redis),
        ("REDIS_KEY_PREFIX", &prefix.0),
    ])
    .await;
    registered(&replicas[0], "regular@example.com").await;
    // A regular user of the address logged in from it before, on the second replica.
    let earlier = replicas[1]
        .login_from(ATTACKER, "regular@example.com", RIGHT)
        .await;
    assert_eq!(earlier.status(), 200);

    // Four failing emails split across the replicas throttle the address on both.
    for i in 0..4 {
        let guess = replicas[i % 2]
            .login_from(ATTACKER, &format!("sprayed{i}@example.com"), "Winter2026!")
            .await;
        assert_eq!(guess.status(), 401);
    }
    for (i, replica) in replicas.iter().enumerate() {
        let guess = replica
            .login_from(ATTACKER, &format!("more{i}@example.com"), "Winter2026!")
            .await;
        assert_eq!(guess.status(), 429);
    }
    // The known pair, written by one replica, is honoured by the other.
    let regular = replicas[0]
        .login_from(ATTACKER, "regular@example.com", RIGHT)
        .await;
    assert_eq!(regular.status(), 200);
}

#[tokio::test]
async fn registrations_per_address_count_across_replicas_sharing_redis() {
    let prefix = RedisPrefix::new();
    let redis = redis_url();
    let replicas = two_replicas(&[
        ("REGISTER_MAX_PER_IP", "2"),
        ("REDIS_URL", &redis),
        ("REDIS_KEY_PREFIX", &prefix.0),
    ])
    .await;
    for (i, replica) in replicas.iter().enumerate() {
        let created = replica
            .register_from(ATTACKER, &format!("new{i}@example.com"), RIGHT)
            .await;
        assert_eq!(created.status(), 201);
    }
    for replica in &replicas {
        let refused = replica
            .register_from(ATTACKER, "third@example.com", RIGHT)
            .await;
        assert_eq!(refused.status(), 429);
    }
}

#[tokio::test]
async fn readyz_reports_redis() {
    let prefix = RedisPrefix::new();
    let redis = redis_url();
    let replicas = two_replicas(&[("REDIS_URL", &redis), ("REDIS_KEY_PREFIX", &prefix.0)]).await;
    let ready = replicas[0].get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["redis"], "ok");

    // Without REDIS_URL there is nothing to report.
    let alone = spawn_app_with(TestDb::create().await, &[]).await;
    let body: serde_json::Value = alone.get("/readyz").await.json().await.unwrap();
    assert!(body.get("redis").is_none(), "{body}");
}

/// Redis down (nothing listens on port 1): logins go on, limited per replica, and the service
/// stays ready.
#[tokio::test]
async fn an_unreachable_redis_never_stops_logins_and_limits_hold_per_replica() {
    let replicas = two_replicas(&[
        ("LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP", "3"),
        ("REGISTER_MAX_PER_IP", "2"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
    ])
    .await;
    registered(&replicas[0], "owner@example.com").await;
    for replica in &replicas {
        let login = replica.login("owner@example.com", RIGHT).await;
        assert_eq!(login.status(), 200);
    }

    // Three failures on one replica lock the pair there.
    for i in 0..3 {
        let guess = replicas[0]
            .login_from(ATTACKER, "owner@example.com", &format!("guess {i}"))
            .await;
        assert_eq!(guess.status(), 401);
    }
    let locked = replicas[0]
        .login_from(ATTACKER, "owner@example.com", RIGHT)
        .await;
    assert_eq!(locked.status(), 429);
    // Registrations too: the first replica had one (above), one more then 429.
    assert_eq!(
        replicas[0]
            .register("second@example.com", RIGHT)
            .await
            .status(),
        201
    );
    assert_eq!(
        replicas[0]
            .register("third@example.com", RIGHT)
            .await
            .status(),
        429
    );

    let ready = replicas[1].get("/readyz").await;
    assert_eq!(
        ready.status(),
        200,
        "a Redis outage degrades, never unreadies"
    );
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["redis"], "degraded");
    let metrics = replicas[0].metrics().await;
    assert!(metrics.contains("auth_redis_errors_total"), "{metrics}");
    assert!(metrics.contains("auth_redis_degraded 1"), "{metrics}");
}
