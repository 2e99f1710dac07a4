//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the response types' `ToSchema` derives (never hand-written). The router and the document
//! come from the same list of handlers, so a route cannot exist without being documented.
//! `docs/openapi.json` is this document, checked by a drift test.

use crate::{
    ApiState, batches, executions, failures, files, list, models, problem::Problem, usage, webhooks,
};
use axum::Router;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Adds the bearer API key scheme.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some("An API key: `Authorization: Bearer <key>`. `executor dev` prints one at start (or takes one with `--api-key`).".into());
        components.add_security_scheme("api_key", SecurityScheme::Http(http));
    }
}

/// The static part of the document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "executor",
        description = "Run AI model executions across many providers as one product: one lifecycle (submit → poll → finalize), one failure taxonomy, normalized outputs, cost computed at the end.\n\nErrors are RFC 9457 problem details (`application/problem+json`) with the failing `field` as a JSON pointer and the `error_class` of the taxonomy where one applies.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:8080", description = "executor dev")),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    components(schemas(Problem)),
    tags(
        (name = "executions", description = "Create, read, list and cancel executions"),
        (name = "batches", description = "Up to 100 executions created as one, atomic with respect to idempotency, followed as one"),
        (name = "files", description = "Uploaded media, named in inputs by id: multipart or presigned uploads, typed by their bytes, tenant-scoped, expiring"),
        (name = "models", description = "The models (bundles) this deployment serves, with their input JSON Schemas"),
        (name = "webhooks", description = "Provider callbacks, authenticated by each provider's signature scheme"),
        (name = "meta", description = "Health and this document"),
    )
)]
struct ApiDoc;

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    operation_id = "health",
    security(()),
    responses((status = 200, description = "The process serves requests", body = String, content_type = "text/plain"))
)]
pub async fn health() -> &'static str {
    "ok"
}

/// The routes and their generated document.
pub fn router_and_doc() -> (Router<Arc<ApiState>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(executions::create, list::list))
        .routes(routes!(executions::get_one))
        .routes(routes!(executions::cancel))
        .routes(routes!(executions::events))
        .routes(routes!(executions::raw))
        .routes(routes!(executions::media))
        .routes(routes!(batches::rerun))
        .routes(routes!(batches::create))
        .routes(routes!(batches::get_one))
        .routes(routes!(failures::piles))
        .routes(routes!(failures::pile))
        .routes(routes!(usage::usage))
        .routes(routes!(usage::estimate))
        .routes(routes!(files::upload))
        .routes(routes!(files::get_one, files::delete))
        .routes(routes!(files::content, files::put_content))
        .routes(routes!(executions::redrive))
        .routes(routes!(models::list))
        .routes(routes!(models::get_one))
        .routes(routes!(webhooks::receive))
        .routes(routes!(health))
        .split_for_parts()
}

/// Adds what the annotations cannot say: OpenAPI links from a created execution to the
/// operations on it (clients and Schemathesis' stateful phase follow them), and the
/// document's own route.
fn finish(mut doc: Value) -> Value {
    let id_link = |op: &str, description: &str| {
        json!({
            "operationId": op,
            "parameters": {"id": "$response.body#/id"},
            "description": description,
        })
    };
    let links = json!({
        "GetExecution": id_link("get_execution", "Read the execution created"),
        "CancelExecution": id_link("cancel_execution", "Cancel the execution created"),
        "ExecutionEvents": id_link("execution_events", "The execution's timeline"),
        "ReceiveCallback": {
            "operationId": "receive_callback",
            "parameters": {
                "provider": "$response.body#/provider",
                "execution_id": "$response.body#/id",
            },
            "description": "Where the provider calls back for this execution",
        },
    });
    let mut with_rerun = links.clone();
    if let Some(l) = with_rerun.as_object_mut() {
        l.insert(
            "RerunExecution".into(),
            id_link("rerun_execution", "Rerun the execution created"),
        );
    }
    for path in [
        "/paths/~1v1~1executions/post",
        "/paths/~1v1~1executions~1{id}~1rerun/post",
    ] {
        if let Some(responses) = doc
            .pointer_mut(&format!("{path}/responses"))
            .and_then(Value::as_object_mut)
        {
            for code in ["200", "201", "202"] {
                if let Some(r) = responses.get_mut(code).and_then(Value::as_object_mut) {
                    r.insert("links".into(), with_rerun.clone());
                }
            }
        }
    }
    let batch_link = json!({"GetBatch": {
        "operationId": "get_batch",
        "parameters": {"id": "$response.body#/id"},
        "description": "Follow the batch created",
    }});
    if let Some(responses) = doc
        .pointer_mut("/paths/~1v1~1batches/post/responses")
        .and_then(Value::as_object_mut)
    {
        for code in ["200", "202"] {
            if let Some(r) = responses.get_mut(code).and_then(Value::as_object_mut) {
                r.insert("links".into(), batch_link.clone());
            }
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        paths.insert(
            "/openapi.json".into(),
            json!({"get": {
                "tags": ["meta"],
                "summary": "This OpenAPI 3.1 document",
                "operationId": "openapi_document",
                "security": [{}],
                "responses": {"200": {
                    "description": "The document",
                    "content": {"application/json": {"schema": {"type": "object"}}}
                }}
            }}),
        );
    }
    doc
}

/// The whole document as JSON (what `GET /openapi.json` serves and `docs/openapi.json` holds).
pub fn document_json() -> Value {
    let (_, doc) = router_and_doc();
    finish(serde_json::to_value(&doc).unwrap_or(Value::Null))
}

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    let body = DOC.get_or_init(|| serde_json::to_vec(&document_json()).unwrap_or_default());
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.clone(),
    )
        .into_response()
}
