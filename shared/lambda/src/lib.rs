//! Lambda glue that is not a `main`: building the engine from the environment on the AWS
//! backend ([`app`]), serving API Gateway HTTP events with the shared axum router ([`apigw`]),
//! turning SQS batches into lifecycle calls with partial batch failures ([`sqs`]), and an
//! in-process event source mapping for running the handlers against moto/LocalStack ([`esm`]).

pub mod apigw;
pub mod app;
pub mod emf;
pub mod esm;
pub mod local;
pub mod sqs;

pub use app::App;
/// The configuration file (moved to `executor_system::config`, shared with `executor dev`).
pub use executor_system::config;
pub use sqs::handle_sqs_batch;

/// The bundles compiled into this binary.
pub mod embedded {
    include!(concat!(env!("OUT_DIR"), "/bundles.rs"));
}

/// JSON logs (one object per line, with the span fields: execution id, provider, model...).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EXECUTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .without_time()
        .try_init();
}

/// The whole `main` of a function: JSON logs, the app from the environment (one clear line
/// and a non-zero exit when configuration is missing), then the Lambda runtime loop.
pub async fn run_function(name: &'static str) -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let app = match App::from_env().await {
        Ok(a) => std::sync::Arc::new(a),
        Err(e) => {
            tracing::error!(function = name, error = %format!("{e:#}"), "startup failed");
            eprintln!(
                "{name}: startup failed: {}",
                format!("{e:#}").replace('\n', "; ")
            );
            return Err(e.into());
        }
    };
    lambda_runtime::run(lambda_runtime::service_fn(
        move |ev: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let app = app.clone();
            async move {
                app.dispatch(ev.payload)
                    .await
                    .map_err(lambda_runtime::Error::from)
            }
        },
    ))
    .await
}
