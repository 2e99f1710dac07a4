//! The webhook function: provider callbacks (`POST /v1/webhooks/{provider}/{execution_id}`)
//! through the shared axum router.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    executor_lambda::run_function("webhook").await
}
