//! The OpenAPI document of the gateway, served at `GET /openapi.json`: built from the routes'
//! own declarations (`routes::api`), completed here with what no single route says.

use axum::{routing::get, Json, Router};
use utoipa::{
    openapi::{
        security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme},
        Content, Ref, RefOr,
    },
    Modify, OpenApi,
};
use utoipa_axum::router::OpenApiRouter;

use crate::{error::ErrorBody, routes, AppState};

/// What the document says beyond the routes: its title, the security schemes, and the schemas
/// no route names.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "vidconv gateway",
        description = "Upload videos, follow their conversion to MP3, download the result."
    ),
    components(schemas(crate::webhooks::WebhookPayload, ErrorBody)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

/// The gateway's OpenAPI document, as `GET /openapi.json` serves it; needs no running server.
pub fn document() -> utoipa::openapi::OpenApi {
    // The upload's body limit is not part of the document.
    split(routes::api(0)).1
}

/// The router of `api` and its complete document.
pub fn split(api: OpenApiRouter<AppState>) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api)
        .split_for_parts();
    ErrorBodies.modify(&mut document);
    (router, document)
}

/// `GET /openapi.json`, answering `document`.
pub fn router(document: utoipa::openapi::OpenApi) -> Router<AppState> {
    let document = std::sync::Arc::new(document);
    Router::new().route(
        "/openapi.json",
        get(move || {
            let document = document.clone();
            async move { Json(document.as_ref().clone()) }
        }),
    )
}

/// Documents every 4xx/5xx answer that names no body as an [`ErrorBody`], which is what the
/// gateway sends, so that schema checks (`make test-fuzz`) hold error answers to it too.
struct ErrorBodies;

impl Modify for ErrorBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in &mut operation.responses.responses {
                    let is_error = status.parse::<u16>().is_ok_and(|s| s >= 400);
                    if let (true, RefOr::T(response)) = (is_error, response) {
                        if response.content.is_empty() {
                            response.content.insert(
                                "application/json".to_owned(),
                                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                            );
                        }
                    }
                }
            }
        }
    }
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "media_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::claims::MEDIA_COOKIE,
                "The JWT in the HttpOnly cookie POST /media-cookie sets; GET /download only",
            ))),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "email:password; for POST /register they must meet NewAccount",
                    ))
                    .build(),
            ),
        );
        components
            .schemas
            .insert("NewAccount".to_owned(), new_account().into());
    }
}

/// The rules auth applies to a new account's Basic credentials (`common::accounts`), stated in
/// the document so that clients (the frontend's form) take them from it.
fn new_account() -> utoipa::openapi::Schema {
    use common::accounts::{MAX_EMAIL_CHARS, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
    use utoipa::openapi::{schema::Type, ObjectBuilder};
    let text = |min: usize, max: usize, description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(min))
            .max_length(Some(max))
            .description(Some(description))
    };
    ObjectBuilder::new()
        .description(Some(
            "The credentials of POST /register (sent as HTTP Basic, not as a body): the rules \
             auth checks, in characters.",
        ))
        .property(
            "email",
            text(1, MAX_EMAIL_CHARS, "The new account's email."),
        )
        .property(
            "password",
            text(
                MIN_PASSWORD_CHARS,
                MAX_PASSWORD_CHARS,
                "The new account's password.",
            ),
        )
        .required("email")
        .required("password")
        .into()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn json() -> Value {
        serde_json::to_value(document()).unwrap()
    }

    /// `schema`, or the component it refers to.
    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.trim_start_matches("#/components/schemas/");
                &doc["components"]["schemas"][name]
            }
            None => schema,
        }
    }

    #[test]
    fn file_ids_are_required_and_shaped() {
        let doc = json();
        for (path, method, name, location) in [
            ("/status", "get", "fid", "query"),
            ("/download", "get", "fid", "query"),
            ("/events", "get", "fid", "query"),
            ("/jobs/{video_fid}", "delete", "video_fid", "path"),
        ] {
            let params = doc["paths"][path][method]["parameters"].as_array().unwrap();
            let [param] = params.as_slice() else {
                panic!("{path}: {params:?}");
            };
            assert_eq!(param["name"], name, "{path}");
            assert_eq!(param["in"], location, "{path}");
            assert_eq!(param["required"], true, "{path}");
            let schema = resolve(&doc, &param["schema"]);
            assert_eq!(schema["type"], "string", "{path}");
            assert_eq!(schema["pattern"], crate::routes::fid::FID_PATTERN, "{path}");
        }
    }

    #[test]
    fn every_operation_is_secured_and_every_error_has_the_error_body() {
        let doc = json();
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                operations += 1;
                let security = operation["security"].as_array();
                if (path.as_str(), method.as_str()) == ("/media-cookie", "delete") {
                    // Clearing the cookie works without a session, on purpose.
                    assert!(security.is_none(), "{method} {path}");
                } else {
                    let security = security.unwrap_or_else(|| panic!("{method} {path}"));
                    for requirement in security {
                        for scheme in requirement.as_object().unwrap().keys() {
                            assert!(schemes.contains_key(scheme), "{method} {path}: {scheme}");
                        }
                    }
                }
                for (status, response) in operation["responses"].as_object().unwrap() {
                    if status.parse::<u16>().unwrap() >= 400 {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
        assert!(operations >= 10, "{operations}");
        assert!(doc["components"]["schemas"]["ErrorBody"]["properties"]["error"].is_object());
    }

    #[test]
    fn the_upload_form_offers_exactly_the_converters_bitrates() {
        let doc = json();
        let form = resolve(
            &doc,
            &doc["paths"]["/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
                ["schema"],
        );
        assert_eq!(form["required"], serde_json::json!(["file"]));
        assert_eq!(
            form["properties"]["bitrate"]["enum"],
            serde_json::json!(common::jobs::ALLOWED_BITRATES_KBPS)
        );
        assert_eq!(form["properties"]["vbr_quality"]["maximum"], 9);
    }
}
