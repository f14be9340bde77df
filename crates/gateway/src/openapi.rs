//! The OpenAPI document of the gateway, served at `GET /openapi.json`.

use axum::{routing::get, Json, Router};
use utoipa::{
    openapi::{
        security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme},
        Content, Ref, RefOr,
    },
    Modify, OpenApi,
};

use crate::{routes, AppState};

/// The gateway's API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "vidconv gateway",
        description = "Upload videos, follow their conversion to MP3, download the result."
    ),
    paths(
        routes::auth_proxy::login,
        routes::auth_proxy::register,
        routes::upload::upload,
        routes::status::status,
        routes::download::download,
        routes::media_cookie::set_cookie,
        routes::media_cookie::clear_cookie,
        routes::events::events,
        routes::jobs::list_jobs,
        routes::jobs::delete_job,
    ),
    components(schemas(
        routes::upload::UploadResponse,
        routes::status::StatusBody,
        routes::jobs::JobsPage,
        routes::jobs::JobView,
        crate::webhooks::WebhookPayload,
        ErrorBody,
    )),
    modifiers(&SecuritySchemes, &ErrorBodies)
)]
pub struct ApiDoc;

/// Every error answer: `{"error": "<message>"}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    error: String,
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
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// `GET /openapi.json`.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
