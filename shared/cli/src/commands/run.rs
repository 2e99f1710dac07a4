//! `executor run`: submit one execution (to a server, or to a local system started for the
//! run), follow its timeline live, print the normalized outcome.

use crate::client::{Client, CreateOptions};
use crate::local::{LocalOptions, LocalSystem};
use crate::render::{outcome_json, outcome_of};
use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};

/// Arguments of `executor run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Model id (see `GET /v1/models`).
    model: String,
    /// Input JSON.
    #[arg(long)]
    input: String,
    /// API base URL; without it a local system with simulators is started for this run.
    #[arg(long, env = "EXECUTOR_URL")]
    server: Option<String>,
    /// API key (with --server).
    #[arg(long, env = "EXECUTOR_API_KEY")]
    key: Option<String>,
    /// Customer webhook for the outcome.
    #[arg(long)]
    webhook: Option<String>,
    /// Idempotency key.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Maximum duration in seconds.
    #[arg(long)]
    max_duration: Option<u64>,
    /// A model to fall back on when an attempt fails with a class a chain falls back on
    /// (repeat for a longer chain, in order).
    #[arg(long = "fallback")]
    fallbacks: Vec<String>,
    /// Times a job that failed after it was created with a transient class runs again on
    /// the same model (0 to 3; default: each model's bundle).
    #[arg(long)]
    retries: Option<u32>,
    /// Print only the outcome JSON.
    #[arg(long)]
    json: bool,
}

/// Exits 0 when the execution succeeded and its delivery is not degraded, 1 otherwise.
pub async fn run(a: RunArgs) -> Result<i32> {
    super::init_logs("warn");
    let input: serde_json::Value =
        serde_json::from_str(&a.input).context("--input is not valid JSON")?;
    let mut local = None;
    let client = match a.server {
        Some(url) => {
            let Some(key) = a.key else {
                bail!("--key (or EXECUTOR_API_KEY) is required with --server")
            };
            Client::new(&url, &key)?
        }
        None => {
            let dir = tempfile::tempdir()?;
            let sys = LocalSystem::start(LocalOptions::dev(dir.path().to_path_buf())).await?;
            let c = Client::new(&sys.url, &sys.dev_key)?;
            local = Some((sys, dir));
            c
        }
    };
    let opts = CreateOptions {
        webhook_url: a.webhook,
        idempotency_key: a.idempotency_key,
        max_duration_seconds: a.max_duration,
        wait_seconds: None,
        fallbacks: a.fallbacks,
        retries: a.retries,
    };
    let json = a.json;
    let started = Instant::now();
    let (status, body) = client.create(&a.model, &input, &opts).await?;
    if status >= 400 {
        eprintln!(
            "rejected ({status}): {} [{}] field {}",
            body["detail"].as_str().unwrap_or("?"),
            body["error_class"].as_str().unwrap_or("-"),
            body["field"].as_str().unwrap_or("-")
        );
        return Ok(1);
    }
    let id = body["id"].as_str().unwrap_or_default().to_string();
    if !json {
        println!("execution {id} ({})", a.model);
    }
    let color = !json && super::stdout_is_terminal();
    // Live progress from the timeline's event stream (one line per transition).
    let v = client
        .follow_events(&id, Duration::from_secs(900), |t| {
            if !json {
                println!(
                    "  {:>7.2}s  {}",
                    started.elapsed().as_secs_f64(),
                    transition_line(t, color)
                );
            }
        })
        .await?;
    println!("{}", serde_json::to_string_pretty(&outcome_json(&v))?);
    if let Some((sys, _dir)) = local {
        sys.stop().await;
    }
    let outcome = outcome_of(&v);
    if outcome == "succeeded" && v["delivery"]["state"] != "degraded" {
        Ok(0)
    } else {
        eprintln!(
            "execution {outcome}: {}",
            v["error"]["class"]
                .as_str()
                .or(v["delivery_error"]["class"].as_str())
                .unwrap_or("-")
        );
        Ok(1)
    }
}

/// One line of `executor run`'s live progress: a transition of the timeline.
fn transition_line(t: &serde_json::Value, _color: bool) -> String {
    let mut line = format!(
        "{} → {}",
        t["action"].as_str().unwrap_or("?"),
        t["to"].as_str().unwrap_or("?")
    );
    if let Some(p) = t["detail"]["progress"].as_f64() {
        line.push_str(&format!(" {:.0}%", p * 100.0));
    }
    if let Some(c) = t["failure"]["class"].as_str() {
        line.push_str(&format!(
            " ({c}: {})",
            t["failure"]["message"].as_str().unwrap_or("")
        ));
    }
    let calls = t["calls"].as_array().map(|a| a.len()).unwrap_or(0);
    if calls > 0 {
        line.push_str(&format!(" [{calls} provider call(s)]"));
    }
    line
}
