//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers themselves: each route
//! is registered through its `#[utoipa::path]` (utoipa-axum's `routes!`), so a route cannot be
//! served without being described. Served at `GET /api/openapi.json` to logged-in operators.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Extension;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Authorized, OperatorRole, SESSION_COOKIE};
use crate::app::AppState;

/// The document's frame: title, the session cookie as the security scheme every route needs
/// unless it says otherwise, and the error body.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Dispatch HTTP API",
        description = "The console's and the administrators' HTTP API. Every route needs the \
            session cookie of `POST /api/login` unless its security list is empty. Errors are \
            `{\"error\": {\"code\", \"message\"}}`."
    ),
    security(("session" = [])),
    modifiers(&SessionCookie),
    components(schemas(ErrorBody))
)]
struct Frame;

/// Adds the session cookie as the `session` security scheme.
struct SessionCookie;

impl Modify for SessionCookie {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "Set by `POST /api/login` (HttpOnly, Secure, SameSite=Strict).",
            ))),
        );
    }
}

/// An empty router carrying the document's frame, for each resource to add its routes to.
pub fn new_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Frame::openapi())
}

/// The route that serves the document (its JSON is handed in by `api::router` once every route
/// is known).
pub fn router() -> OpenApiRouter<AppState> {
    new_router().routes(routes!(document))
}

/// The document, serialized once.
#[derive(Debug, Clone)]
pub struct Document(pub Bytes);

/// This document.
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "session",
    responses(
        (
            status = 200,
            description = "The OpenAPI 3.1 document of this API.",
            body = Object,
            content_type = "application/json",
        ),
        SessionErrors,
    )
)]
async fn document(
    _: Authorized<OperatorRole>,
    Extension(doc): Extension<Document>,
) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], doc.0)
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code for programs and a sentence for people.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case: each answer's description lists the codes it can carry.
    pub code: &'static str,
    pub message: String,
}

/// A short machine code, such as an incident kind or a capability (`domain::code`).
pub struct Code;

impl utoipa::PartialSchema for Code {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^[a-z0-9_]{1,40}$"))
            .description(Some("1 to 40 of a-z, 0-9 and _."))
            .into()
    }
}

impl ToSchema for Code {}

/// One error status, its body the error body.
fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

fn responses(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description)| ((*status).to_owned(), error(description)))
        .collect()
}

/// What any route behind the session can answer before (or besides) its own work.
pub struct SessionErrors;

impl IntoResponses for SessionErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            (
                "401",
                "`unauthenticated`: no session cookie, or its session ended or idled out.",
            ),
            (
                "403",
                "`forbidden`: the operator's role is not enough; `password_change_required`: \
                 an admin reset the password, only changing it is allowed; \
                 `second_factor_enrolment_required`: the role needs a second factor the account \
                 lacks; `cross_origin`: a state change from another origin.",
            ),
            (
                "503",
                "`storage_unavailable`: the storage failed; nothing was saved, retry later \
                 (`Retry-After`).",
            ),
        ])
    }
}

/// A path, query or header the route refuses as malformed.
pub struct Malformed;

impl IntoResponses for Malformed {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[(
            "400",
            "`invalid_request`: malformed path, query or `Idempotency-Key` header.",
        )])
    }
}

/// A path, query, header or body the route refuses as malformed (400) or invalid (422).
pub struct InputErrors;

impl IntoResponses for InputErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            (
                "400",
                "`invalid_request`: malformed path, query, body (not JSON, wrong types, unknown \
                 field) or `Idempotency-Key` header.",
            ),
            (
                "422",
                "`invalid_field`: well-formed, but a value is invalid; the message names it.",
            ),
        ])
    }
}

/// What a write can answer besides its own refusals.
pub struct WriteErrors;

impl IntoResponses for WriteErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            ("413", "`too_large`: the body is larger than the limit."),
            (
                "507",
                "`storage_full`: the disk is full; nothing was saved (`Retry-After`).",
            ),
        ])
    }
}

/// The resource the path names (or one the body names) does not exist.
pub struct NotFound;

impl IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[("404", "`not_found`: the message names what.")])
    }
}

/// The request contradicts what is stored (a duplicate, a wrong state) or what is configured.
pub struct Conflict;

impl IntoResponses for Conflict {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[(
            "409",
            "The request contradicts what is stored or configured; the code says how: \
             `duplicate`, `last_admin`, `second_factor_enrolled`, `no_second_factor_setup`, \
             `no_second_factor`, `incident_closed`, `orders_active`, `no_device`, \
             `unit_unavailable`, `unit_disabled`, `order_final`, `already_revoked`, `idempotency_key_reused`, \
             `no_unit_available`, `plan_fulfilled`, `no_recipients`, `no_map`.",
        )])
    }
}

/// The password workers are all busy (or, at login, too many attempts from one address).
pub struct Busy;

impl IntoResponses for Busy {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[(
            "429",
            "`too_many_attempts`: retry after `Retry-After` seconds.",
        )])
    }
}
