//! Attack: large bodies on endpoints whose input travels in headers.

use crate::helpers::{basic, email, error_message, spawn_app};

#[tokio::test]
async fn oversized_bodies_get_413_on_every_auth_endpoint() {
    let app = spawn_app().await;
    let user = email();
    let token = app.token_for(&user, "long enough").await;
    let newcomer = email();
    let endpoints = [
        ("/login", basic(&user, "long enough")),
        ("/register", basic(&newcomer, "long enough")),
        ("/validate", format!("Bearer {token}")),
    ];
    for (path, authorization) in &endpoints {
        // With a Content-Length, and streamed without one.
        let declared = app
            .client
            .post(format!("{}{path}", app.address))
            .header("authorization", authorization)
            .body(vec![b'x'; 2 * 1024 * 1024])
            .send()
            .await
            .unwrap();
        let chunks = (0..3).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1000]));
        let streamed = app
            .client
            .post(format!("{}{path}", app.address))
            .header("authorization", authorization)
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await
            .unwrap();
        for response in [declared, streamed] {
            assert_eq!(response.status(), 413, "{path}");
            let message = error_message(response).await;
            assert!(message.contains("at most 1024 bytes"), "{path}: {message}");
        }
    }
    // Small bodies, such as a client's empty JSON object, are still fine.
    for (path, authorization) in &endpoints[..1] {
        let small = app
            .client
            .post(format!("{}{path}", app.address))
            .header("authorization", authorization)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(small.status(), 200, "{path}");
    }
    // The oversized registrations created nobody.
    assert_eq!(app.login(&newcomer, "long enough").await.status(), 401);
}
