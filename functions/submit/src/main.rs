//! The submit function: the execution API (API Gateway HTTP API through the shared axum
//! router) and the submit queue (SQS batches with partial failures).
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    executor_lambda::run_function("submit").await
}
