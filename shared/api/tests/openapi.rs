//! `docs/openapi.json` is the document the code generates (regenerate with
//! `UPDATE_OPENAPI=1 cargo test -p executor-api --test openapi`), and the document promises
//! problem details for every error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::Path;

fn committed_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn committed_document_matches_the_code() {
    let generated = executor_api::openapi::document_json();
    let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "docs/openapi.json drifted from the code; regenerate it with \
         UPDATE_OPENAPI=1 cargo test -p executor-api --test openapi"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_every_route() {
    let doc = executor_api::openapi::document_json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for p in [
        "/v1/executions",
        "/v1/executions/{id}",
        "/v1/executions/{id}/cancel",
        "/v1/executions/{id}/events",
        "/v1/executions/{id}/raw",
        "/v1/media/{execution_id}/{name}",
        "/v1/failures",
        "/v1/executions/{id}/redrive",
        "/v1/executions/{id}/rerun",
        "/v1/batches",
        "/v1/batches/{id}",
        "/v1/failures/{pile_id}",
        "/v1/usage",
        "/v1/estimates",
        "/v1/files",
        "/v1/files/{id}",
        "/v1/files/{id}/content",
        "/v1/models",
        "/v1/models/{owner}/{name}",
        "/v1/webhooks/{provider}/{execution_id}",
        "/healthz",
        "/openapi.json",
    ] {
        assert!(
            paths.iter().any(|q| q.as_str() == p),
            "{p} missing: {paths:?}"
        );
    }
    assert_eq!(paths.len(), 22, "{paths:?}");
}

#[test]
fn every_error_response_is_problem_json_and_every_operation_has_an_id() {
    let doc = executor_api::openapi::document_json();
    let mut errors = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
            for (code, resp) in op["responses"].as_object().unwrap() {
                let n: u16 = code.parse().unwrap();
                if n < 400 {
                    continue;
                }
                errors += 1;
                let content = resp["content"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{method} {path} {code} has no content"));
                let schema = &content["application/problem+json"]["schema"]["$ref"];
                assert_eq!(
                    schema,
                    &Value::from("#/components/schemas/Problem"),
                    "{method} {path} {code}"
                );
                if n == 429 || n == 503 {
                    assert!(
                        resp["headers"]["Retry-After"].is_object(),
                        "{method} {path} {code} lacks Retry-After"
                    );
                }
            }
        }
    }
    assert!(errors >= 25, "only {errors} error responses documented");
}
