//! The poll function: the poll queue (SQS batches with partial failures) and the reconciler
//! schedule.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    executor_lambda::run_function("poll").await
}
