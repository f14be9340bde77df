//! The OpenAPI document served at `/openapi.json`.

use axum::Json;
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi, ToSchema,
};

/// The claims `/validate` answers (the same as `common::jwt::Claims`).
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the JSON only; the handler serialises `common::jwt::Claims`.
pub struct TokenClaims {
    /// The user's email.
    username: String,
    /// Expiry, seconds since the Unix epoch (issue time + 1 day).
    exp: i64,
    /// Issue time, seconds since the Unix epoch.
    iat: i64,
    /// Always `true`, as in the original.
    admin: bool,
}

/// The auth service's API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth",
        description = "Registers users, checks passwords and issues the JWTs the gateway accepts."
    ),
    paths(
        crate::routes::login::login,
        crate::routes::register::register,
        crate::routes::validate::validate,
        crate::routes::health::readyz,
    ),
    components(schemas(
        crate::error::ErrorBody,
        crate::routes::register::Registered,
        crate::routes::health::Readiness,
        TokenClaims
    )),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
