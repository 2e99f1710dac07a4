//! Terminal rendering of executions: progress lines and the normalized outcome.

use owo_colors::OwoColorize;
use serde_json::Value;

/// One progress line for a status change.
pub fn progress_line(v: &Value, color: bool) -> String {
    let status = v["status"].as_str().unwrap_or("?");
    let mut line = format!("{:<20}", status);
    if let Some(p) = v["progress"].as_f64() {
        line.push_str(&format!(" {:>3.0}%", p * 100.0));
    }
    if let Some(ps) = v["provider_status"].as_str() {
        line.push_str(&format!("  provider: {ps}"));
    }
    if let Some(w) = v["waiting"]["reason"].as_str() {
        line.push_str(&format!("  waiting: {w} ({})", v["waiting"]["detail"].as_str().unwrap_or("")));
    }
    if !color {
        return line;
    }
    match status {
        "succeeded" | "finalized" => line.green().to_string(),
        "failed" | "timed_out" | "finalized_degraded" => line.red().to_string(),
        "canceled" => line.yellow().to_string(),
        _ => line.cyan().to_string(),
    }
}

/// The terminal status an execution reached (`succeeded`, `failed`, ...), from its view.
pub fn outcome_of(v: &Value) -> String {
    v["outcome"].as_str().or(v["status"].as_str()).unwrap_or("?").to_string()
}

/// The outcome summary printed at the end of `executor run`.
pub fn outcome_json(v: &Value) -> Value {
    serde_json::json!({
        "id": v["id"],
        "model": v["model"],
        "status": v["status"],
        "outcome": outcome_of(v),
        "outputs": v["outputs"],
        "usage": v["usage"],
        "error": v["error"],
        "cost": v["cost"],
        "provider_job_id": v["provider_job_id"],
    })
}
