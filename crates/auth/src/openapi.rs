//! The parts of the OpenAPI document that belong to no single route: its title, the security
//! schemes and the error body. Each route brings its own entry (see `routes::api`), so nothing
//! here names a handler.

use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

/// The auth service's document, before the routes add their paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth",
        description = "Registers users, checks passwords and issues the JWTs the gateway accepts."
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("The email as user name, and the password"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A token from POST /login"))
                    .build(),
            ),
        );
    }
}
