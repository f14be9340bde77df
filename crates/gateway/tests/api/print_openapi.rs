//! `gateway --print-openapi`: the document the frontend's API types are generated from
//! (frontend/scripts/gen-api.sh) must be the one `/openapi.json` serves.

use std::process::Command;

use serde_json::Value;

use crate::helpers::TestApp;

#[tokio::test]
async fn print_openapi_prints_the_served_document_without_any_configuration() {
    let app = TestApp::spawn().await;
    let served: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // No environment at all: generating types must not need a database or a secret.
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--print-openapi")
        .env_clear()
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, served);
}

#[tokio::test]
async fn the_document_says_where_each_parameter_goes_and_which_bitrates_exist() {
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--print-openapi")
        .env_clear()
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    let located = |path: &str, method: &str, name: &str| {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .map(|p| p["in"].as_str().unwrap_or_default().to_owned())
    };
    for path in ["/status", "/download", "/events"] {
        assert_eq!(
            located(path, "get", "fid").as_deref(),
            Some("query"),
            "{path}"
        );
    }
    for name in ["page", "per_page"] {
        assert_eq!(
            located("/jobs", "get", name).as_deref(),
            Some("query"),
            "{name}"
        );
    }
    assert_eq!(
        located("/jobs/{video_fid}", "delete", "video_fid").as_deref(),
        Some("path")
    );
    // The frontend offers these bitrates from the document (frontend/src/api/limits.ts).
    let offered: Vec<u64> = doc["components"]["schemas"]["UploadForm"]["properties"]["bitrate"]
        ["enum"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    let accepted: Vec<u64> = common::jobs::ALLOWED_BITRATES_KBPS
        .iter()
        .map(|&kbps| u64::from(kbps))
        .collect();
    assert_eq!(offered, accepted);
    // The form's password rule too (frontend/src/api/rules.gen.ts), as auth checks it.
    let password = &doc["components"]["schemas"]["NewAccount"]["properties"]["password"];
    assert_eq!(
        password["minLength"].as_u64(),
        u64::try_from(common::accounts::MIN_PASSWORD_CHARS).ok()
    );
    assert_eq!(
        password["maxLength"].as_u64(),
        u64::try_from(common::accounts::MAX_PASSWORD_CHARS).ok()
    );
    // The credentials go in the Authorization header; the browser sends no body.
    for path in ["/login", "/register"] {
        assert_ne!(
            doc["paths"][path]["post"]["requestBody"]["required"],
            Value::Bool(true),
            "{path}"
        );
    }
}
