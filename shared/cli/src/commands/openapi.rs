//! `executor openapi`: print the HTTP API's OpenAPI 3.1 document.

use anyhow::Result;

/// Prints the document `GET /openapi.json` serves.
pub fn run() -> Result<i32> {
    println!(
        "{}",
        serde_json::to_string_pretty(&executor_api::openapi::document_json())?
    );
    Ok(0)
}
