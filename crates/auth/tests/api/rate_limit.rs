//! The login limits, attacked. Client addresses reach auth the way the gateway sends them:
//! `X-Forwarded-For` with `TRUSTED_PROXY_HOPS=1` (the gateway is the one trusted hop).

use crate::helpers::{basic, error_message, spawn_app_with, TestApp, TestDb};

const RIGHT: &str = "right password";

/// Auth behind one trusted proxy, with `extra` settings.
async fn behind_gateway(extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("TRUSTED_PROXY_HOPS", "1")];
    env.extend_from_slice(extra);
    spawn_app_with(TestDb::create().await, &env).await
}

async fn registered(app: &TestApp, email: &str) {
    assert_eq!(app.register(email, RIGHT).await.status(), 201, "{email}");
}

#[tokio::test]
async fn guessing_from_one_address_locks_only_that_email_from_that_address() {
    let app = behind_gateway(&[("LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP", "3")]).await;
    registered(&app, "victim@example.com").await;
    registered(&app, "other@example.com").await;

    for _ in 0..3 {
        let guess = app
            .login_from("203.0.113.5", "victim@example.com", "guess")
            .await;
        assert_eq!(guess.status(), 401);
    }
    // From that address, even the right password is refused, in any letter case.
    for email in ["victim@example.com", "VICTIM@example.com"] {
        let limited = app.login_from("203.0.113.5", email, RIGHT).await;
        assert_eq!(limited.status(), 429);
        let retry_after: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");
        assert!(error_message(limited)
            .await
            .contains("too many failed login attempts"));
    }
    // Another account from the same address, and the same account elsewhere, are untouched.
    let other = app
        .login_from("203.0.113.5", "other@example.com", RIGHT)
        .await;
    assert_eq!(other.status(), 200);
    let owner = app
        .login_from("198.51.100.7", "victim@example.com", RIGHT)
        .await;
    assert_eq!(owner.status(), 200);
}

#[tokio::test]
async fn a_successful_login_clears_the_count_of_its_address() {
    let app = behind_gateway(&[("LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP", "3")]).await;
    registered(&app, "typo@example.com").await;

    for _ in 0..2 {
        for _ in 0..2 {
            let typo = app
                .login_from("203.0.113.5", "typo@example.com", "wrong")
                .await;
            assert_eq!(typo.status(), 401);
        }
        let right = app
            .login_from("203.0.113.5", "typo@example.com", RIGHT)
            .await;
        assert_eq!(right.status(), 200);
    }
}

/// Attack: lock the owner out of their account by guessing wrong from elsewhere.
#[tokio::test]
async fn failures_from_another_address_do_not_lock_the_owner_out() {
    let app = behind_gateway(&[
        // The email is slowed down from its 3rd failure on, by a few milliseconds here.
        ("LOGIN_MAX_FAILURES_PER_EMAIL", "3"),
        ("LOGIN_SLOWDOWN_MS", "5"),
        ("LOGIN_MAX_SLOWDOWN_MS", "20"),
    ])
    .await;
    registered(&app, "victim@example.com").await;

    // The attacker keeps guessing from one address until that pair is refused...
    let mut statuses = Vec::new();
    for i in 0..12 {
        let guess = app
            .login_from("203.0.113.66", "victim@example.com", &format!("guess {i}"))
            .await;
        statuses.push(guess.status().as_u16());
    }
    assert_eq!(statuses[..10], [401; 10]);
    assert_eq!(statuses[10..], [429; 2]);
    // ...and from others, slowed down but never told the account is locked.
    for i in 0..5 {
        let guess = app
            .login_from(&format!("198.18.0.{i}"), "victim@example.com", "guess")
            .await;
        assert_eq!(guess.status(), 401);
    }
    assert!(
        app.metrics().await.contains("auth_login_slowdowns_total"),
        "the attempts on the attacked email were slowed down"
    );

    // The owner logs in from their own address.
    let owner = app
        .login_from("192.0.2.10", "victim@example.com", RIGHT)
        .await;
    assert_eq!(owner.status(), 200);
}

/// Attack: one client behind a shared address (NAT, a node's address) hammers one account.
#[tokio::test]
async fn an_attack_on_one_account_does_not_lock_out_the_others_behind_the_same_address() {
    let app = behind_gateway(&[
        // The deprecated name of LOGIN_MAX_FAILED_EMAILS_PER_IP still works.
        ("LOGIN_MAX_FAILURES_PER_IP", "5"),
    ])
    .await;
    registered(&app, "target@example.com").await;
    let neighbours: Vec<String> = (0..5)
        .map(|i| format!("neighbour{i}@example.com"))
        .collect();
    for email in &neighbours {
        registered(&app, email).await;
    }

    for i in 0..20 {
        let guess = app
            .login_from("198.51.100.1", "target@example.com", &format!("guess {i}"))
            .await;
        assert!([401, 429].contains(&guess.status().as_u16()));
    }
    // Everyone else behind that address logs in, for the first time from there.
    for email in &neighbours {
        let login = app.login_from("198.51.100.1", email, RIGHT).await;
        assert_eq!(login.status(), 200, "{email}");
    }
}

#[tokio::test]
async fn a_sprayer_is_throttled_per_address_while_known_users_there_are_not() {
    let app = behind_gateway(&[("LOGIN_MAX_FAILED_EMAILS_PER_IP", "3")]).await;
    registered(&app, "regular@example.com").await;
    registered(&app, "newcomer@example.com").await;
    // A regular user of the shared address logged in from it before.
    let earlier = app
        .login_from("198.51.100.1", "regular@example.com", RIGHT)
        .await;
    assert_eq!(earlier.status(), 200);

    // One password against many emails: three failing emails throttle the address.
    for i in 0..3 {
        let guess = app
            .login_from(
                "198.51.100.1",
                &format!("sprayed{i}@example.com"),
                "Winter2026!",
            )
            .await;
        assert_eq!(guess.status(), 401);
    }
    for i in 3..6 {
        let guess = app
            .login_from(
                "198.51.100.1",
                &format!("sprayed{i}@example.com"),
                "Winter2026!",
            )
            .await;
        assert_eq!(guess.status(), 429);
        assert!(guess.headers().contains_key("retry-after"));
    }
    // The regular user still gets in; someone new to this address waits for the window; the
    // same account from another address is not affected.
    let regular = app
        .login_from("198.51.100.1", "regular@example.com", RIGHT)
        .await;
    assert_eq!(regular.status(), 200);
    let newcomer = app
        .login_from("198.51.100.1", "newcomer@example.com", RIGHT)
        .await;
    assert_eq!(newcomer.status(), 429);
    let elsewhere = app
        .login_from("192.0.2.44", "newcomer@example.com", RIGHT)
        .await;
    assert_eq!(elsewhere.status(), 200);
}

#[tokio::test]
async fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let app = spawn_app_with(
        TestDb::create().await,
        &[("LOGIN_MAX_FAILED_EMAILS_PER_IP", "3")],
    )
    .await;
    registered(&app, "real@example.com").await;

    // A sprayer connecting directly names a new address each time: all count as its own.
    for i in 0..3 {
        let guess = app
            .login_from(
                &format!("198.51.100.{i}"),
                &format!("guess{i}@example.com"),
                "pw",
            )
            .await;
        assert_eq!(guess.status(), 401);
    }
    let spoofed = app
        .login_from("198.51.100.99", "real@example.com", RIGHT)
        .await;
    assert_eq!(spoofed.status(), 429);
}

#[tokio::test]
async fn a_burst_of_concurrent_guesses_gets_no_more_than_the_limit() {
    let app = spawn_app_with(
        TestDb::create().await,
        &[("LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP", "3")],
    )
    .await;
    registered(&app, "burst@example.com").await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let client = app.client.clone();
        let url = format!("{}/login", app.address);
        tasks.spawn(async move {
            client
                .post(url)
                .header(
                    "authorization",
                    basic("burst@example.com", &format!("guess-{i}")),
                )
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = tasks.join_all().await;
    statuses.sort_unstable();

    // Each guess took its place before its password was checked: three were checked, the
    // rest refused at once.
    let mut expected = vec![401; 3];
    expected.extend([429; 7]);
    assert_eq!(statuses, expected);
}
