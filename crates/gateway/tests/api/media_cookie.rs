//! The media cookie: set from a Bearer token, accepted by `GET /download` (with Range) and by
//! no other route, cleared on logout.

use mongodb::bson::oid::ObjectId;

use crate::helpers::{test_bytes, Options, TestApp};

const USER: &str = "listener@example.com";
const OTHER: &str = "mallory@example.com";

async fn converted(app: &TestApp) -> (ObjectId, ObjectId, Vec<u8>) {
    let video = app.upload_file(USER, "talk.mp4", b"some video").await;
    let mp3 = test_bytes(300_000, 3);
    let id = app.store_mp3(video, Some(USER), "talk.mp3", &mp3).await;
    (video, id, mp3)
}

/// `POST /media-cookie` with `authorization` and extra headers; the answer.
async fn set_cookie(
    app: &TestApp,
    authorization: Option<&str>,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = app.http.post(format!("{}/media-cookie", app.base));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The `name=value` part of the answer's Set-Cookie, and its attributes.
fn set_cookie_of(res: &reqwest::Response) -> (String, String) {
    let header = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    let (pair, attributes) = header.split_once(';').unwrap();
    (pair.trim().to_owned(), attributes.to_owned())
}

async fn get_with_cookie(
    app: &TestApp,
    path: &str,
    cookie: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .get(format!("{}{path}", app.base))
        .header("cookie", cookie);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_cookie_streams_downloads_with_ranges_and_nothing_else() {
    let app = TestApp::spawn().await;
    let (video, mp3_fid, mp3) = converted(&app).await;

    let res = set_cookie(&app, Some(&app.bearer(USER)), &[]).await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (pair, attributes) = set_cookie_of(&res);
    assert_eq!(pair, format!("vidconv_media={}", app.token(USER)));
    assert!(attributes.contains("HttpOnly"), "{attributes}");
    assert!(attributes.contains("SameSite=Strict"), "{attributes}");
    assert!(!attributes.contains("Secure"), "plain http: {attributes}");
    assert!(!attributes.contains("Path"), "{attributes}");
    let max_age: i64 = attributes
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    // The token lives one day: so does the cookie.
    assert!((86_000..=86_400).contains(&max_age), "{max_age}");

    let download = format!("/download?fid={}", mp3_fid.to_hex());
    let res = get_with_cookie(&app, &download, &pair, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), mp3.as_slice());
    // What an <audio> element asks: the start, then a seek.
    let res = get_with_cookie(&app, &download, &pair, Some("bytes=0-")).await;
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 0-{}/{}", mp3.len() - 1, mp3.len())
    );
    let res = get_with_cookie(&app, &download, &pair, Some("bytes=200000-200099")).await;
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &mp3[200_000..200_100]);

    // Every other route wants the header: the cookie alone is no login.
    for path in [
        format!("/status?fid={}", video.to_hex()),
        format!("/events?fid={}", video.to_hex()),
        "/jobs".to_owned(),
    ] {
        let res = get_with_cookie(&app, &path, &pair, None).await;
        assert_eq!(res.status(), 401, "{path}");
    }
    let res = app
        .http
        .delete(format!("{}/jobs/{}", app.base, video.to_hex()))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(app.mp3_counts().await.0, 1, "nothing was deleted");
}

#[tokio::test]
async fn another_users_cookie_or_a_bad_one_gets_nothing() {
    let app = TestApp::spawn().await;
    let (_, mp3_fid, _) = converted(&app).await;
    let download = format!("/download?fid={}", mp3_fid.to_hex());

    let res = get_with_cookie(
        &app,
        &download,
        &format!("vidconv_media={}", app.token(OTHER)),
        None,
    )
    .await;
    assert_eq!(res.status(), 404);
    for cookie in ["vidconv_media=not-a-jwt", "vidconv_media=", "other=1"] {
        let res = get_with_cookie(&app, &download, cookie, None).await;
        assert_eq!(res.status(), 401, "{cookie}");
    }
    // No token, no cookie.
    assert_eq!(set_cookie(&app, None, &[]).await.status(), 401);
    assert_eq!(
        set_cookie(&app, Some("Bearer nope"), &[]).await.status(),
        401
    );
}

#[tokio::test]
async fn the_cookie_is_secure_behind_https_and_logout_clears_it() {
    let app = TestApp::spawn().await;
    let res = set_cookie(
        &app,
        Some(&app.bearer(USER)),
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(res.status(), 204);
    let (_, attributes) = set_cookie_of(&res);
    assert!(attributes.contains("Secure"), "{attributes}");

    // Logging out needs no token (the session may have expired).
    let res = app
        .http
        .delete(format!("{}/media-cookie", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (pair, attributes) = set_cookie_of(&res);
    assert_eq!(pair, "vidconv_media=");
    assert!(attributes.contains("Max-Age=0"), "{attributes}");
}

#[tokio::test]
async fn the_cookie_works_when_tokens_are_validated_by_auth() {
    let app = TestApp::spawn_with(Options {
        with_auth: true,
        without_jwt_secret: true,
        ..Options::default()
    })
    .await;
    let (_, mp3_fid, mp3) = converted(&app).await;
    let res = set_cookie(&app, Some(&app.bearer(USER)), &[]).await;
    assert_eq!(res.status(), 204);
    let (pair, _) = set_cookie_of(&res);
    let res = get_with_cookie(
        &app,
        &format!("/download?fid={}", mp3_fid.to_hex()),
        &pair,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), mp3.len());
}
