//! The finalize function: the finalize queue (SQS batches with partial failures).
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    executor_lambda::run_function("finalize").await
}
