//! Terminal rendering of executions: progress lines and the normalized outcome.

use owo_colors::OwoColorize;
use serde_json::Value;

/// One progress line for a status change.
pub fn progress_line(v: &Value, color: bool) -> String {
    let status = v["status"].as_str().unwrap_or("?");
    let mut line = format!("{:<20}", status);
    if let Some(d) = v["delivery"]["state"].as_str() {
        line.push_str(&format!(" delivery: {d}"));
        if let Some(n) = v["delivery"]["attempts"].as_u64().filter(|n| *n > 0) {
            line.push_str(&format!(" ({n} attempt{})", if n == 1 { "" } else { "s" }));
        }
    }
    if let Some(p) = v["progress"].as_f64() {
        line.push_str(&format!(" {:>3.0}%", p * 100.0));
    }
    if let Some(ps) = v["provider_status"].as_str() {
        line.push_str(&format!("  provider: {ps}"));
    }
    if let Some(w) = v["waiting"]["reason"].as_str() {
        line.push_str(&format!(
            "  waiting: {w} ({})",
            v["waiting"]["detail"].as_str().unwrap_or("")
        ));
    }
    if !color {
        return line;
    }
    match status {
        "succeeded" => line.green().to_string(),
        "failed" | "timed_out" => line.red().to_string(),
        "canceled" => line.yellow().to_string(),
        _ => line.cyan().to_string(),
    }
}

/// The terminal status an execution reached (`succeeded`, `failed`, ...), from its view: its
/// `status` (once terminal, the outcome).
pub fn outcome_of(v: &Value) -> String {
    v["status"]
        .as_str()
        .or(v["outcome"].as_str())
        .unwrap_or("?")
        .to_string()
}

/// The outcome summary printed at the end of `executor run`.
pub fn outcome_json(v: &Value) -> Value {
    let mut out = serde_json::json!({
        "id": v["id"],
        "model": v["model"],
        "status": v["status"],
        "outcome": outcome_of(v),
        "delivery": v["delivery"],
        "outputs": v["outputs"],
        "usage": v["usage"],
        "error": v["error"],
        "cost": v["cost"],
        "provider_job_id": v["provider_job_id"],
    });
    // A fallback chain: which model answered, and the attempts.
    if v["chain"].is_object() {
        out["provider"] = v["provider"].clone();
        out["chain"] = v["chain"].clone();
    }
    out
}

fn fmt_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// The human-readable timeline of an execution: one block per committed transition, with
/// provider calls, failures, waits, callbacks, delivery and cost.
pub fn explain(view: &Value, events: &Value, color: bool) -> String {
    let paint = |s: String, status: &str| -> String {
        if !color {
            return s;
        }
        match status {
            "succeeded" | "delivered" | "none" => s.green().to_string(),
            "failed" | "timed_out" | "degraded" => s.red().to_string(),
            "canceled" => s.yellow().to_string(),
            _ => s.cyan().to_string(),
        }
    };
    let mut out = String::new();
    out.push_str(&format!(
        "execution {}  model {}  provider {}  shape {}\n",
        view["id"].as_str().unwrap_or("?"),
        view["model"].as_str().unwrap_or("?"),
        view["provider"].as_str().unwrap_or("?"),
        view["shape"].as_str().unwrap_or("?"),
    ));
    let status = view["status"].as_str().unwrap_or("?");
    let delivery = view["delivery"]["state"].as_str().unwrap_or("-");
    out.push_str(&format!(
        "status {}  delivery {}  created {}\n",
        paint(status.to_string(), status),
        paint(delivery.to_string(), delivery),
        view["created_at"].as_str().unwrap_or("?")
    ));
    if let Some(e) = view.get("error").filter(|e| !e.is_null()) {
        out.push_str(&format!(
            "error {} ({} fault, {}): {}\n",
            e["class"].as_str().unwrap_or("?"),
            e["fault"].as_str().unwrap_or("?"),
            if e["retryable"] == true {
                "retryable"
            } else {
                "not retryable"
            },
            e["detail"].as_str().unwrap_or("")
        ));
    }
    if let Some(chain) = view.get("chain").filter(|c| c.is_object()) {
        let models: Vec<&str> = chain["models"]
            .as_array()
            .map(|m| m.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "fallback chain {}{}\n",
            models.join(" -> "),
            if chain["fallback_used"] == true {
                " (fell back)"
            } else {
                ""
            }
        ));
        for (i, a) in chain["attempts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let status = a["status"].as_str().unwrap_or("?");
            out.push_str(&format!(
                "  attempt {}: {} ({}) {}{}{}{}\n",
                i + 1,
                a["model"].as_str().unwrap_or("?"),
                a["provider"].as_str().unwrap_or("?"),
                paint(status.to_string(), status),
                a["provider_job_id"]
                    .as_str()
                    .map(|j| format!("  job {j}"))
                    .unwrap_or_default(),
                a["error"]["class"]
                    .as_str()
                    .map(|c| format!("  {c}: {}", a["error"]["message"].as_str().unwrap_or("")))
                    .unwrap_or_default(),
                a["cost"]["provider_usd_micros"]
                    .as_i64()
                    .map(|m| format!("  ${:.6}", m as f64 / 1e6))
                    .unwrap_or_default(),
            ));
        }
    }
    if let Some(ids) = view["callbacks_received"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        let ids: Vec<&str> = ids.iter().filter_map(Value::as_str).collect();
        out.push_str(&format!(
            "callbacks received (verified): {}\n",
            ids.join(", ")
        ));
    }
    for r in view["callbacks_rejected"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        out.push_str(&paint(
            format!(
                "callback rejected at {}: {}",
                r["at"].as_str().unwrap_or("?"),
                r["reason"].as_str().unwrap_or("?")
            ),
            "failed",
        ));
        out.push('\n');
    }
    for j in events["late_jobs"].as_array().cloned().unwrap_or_default() {
        out.push_str(&paint(
            format!(
                "late provider job {} (attempt {}): its id arrived after the submit was resolved; provider cancel: {}",
                j["job_id"].as_str().unwrap_or("?"),
                j["attempt"],
                j["provider_cancel"].as_str().unwrap_or("?")
            ),
            "failed",
        ));
        out.push('\n');
    }
    out.push('\n');
    for r in events["data"].as_array().cloned().unwrap_or_default() {
        let to = r["to"].as_str().unwrap_or("?");
        let from = r["from"].as_str().unwrap_or("(new)");
        // The public status (and delivery) a client read after it, then the lifecycle's
        // internal transition.
        let public = r["status"].as_str().unwrap_or(to);
        let shown = match r["delivery"].as_str() {
            Some(d) => format!("{public}/{d}"),
            None => public.to_string(),
        };
        let head = format!(
            "{:>9}  v{:<3} {:<9} {:<18} {:<20} {} -> {}",
            fmt_duration(r["since_created_ms"].as_i64().unwrap_or(0)),
            r["version"].as_u64().unwrap_or(0),
            r["action"].as_str().unwrap_or("?"),
            r["event"].as_str().unwrap_or("?"),
            shown,
            from,
            to
        );
        out.push_str(&paint(head, public));
        out.push('\n');
        for c in r["calls"].as_array().cloned().unwrap_or_default() {
            out.push_str(&format!(
                "{:>16}call {} {} {} -> {} in {}\n",
                "",
                c["step"].as_str().unwrap_or("?"),
                c["method"].as_str().unwrap_or("?"),
                c["url"].as_str().unwrap_or("?"),
                c["status"]
                    .as_u64()
                    .map(|s| s.to_string())
                    .or(c["error"].as_str().map(str::to_string))
                    .unwrap_or_default(),
                fmt_duration(c["latency_ms"].as_i64().unwrap_or(0))
            ));
        }
        if let Some(f) = r.get("failure").filter(|f| !f.is_null()) {
            out.push_str(&format!(
                "{:>16}failure {}: {}{}\n",
                "",
                f["class"].as_str().unwrap_or("?"),
                f["message"].as_str().unwrap_or(""),
                f["provider_code"]
                    .as_str()
                    .map(|c| format!(" [{c}]"))
                    .unwrap_or_default()
            ));
        }
        if let Some(d) = r.get("detail").and_then(|d| d.as_object()) {
            let facts: Vec<String> = d
                .iter()
                .filter(|(k, _)| k.as_str() != "cost_lines")
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    )
                })
                .collect();
            if !facts.is_empty() {
                out.push_str(&format!("{:>16}{}\n", "", facts.join("  ")));
            }
            for line in d
                .get("cost_lines")
                .and_then(|l| l.as_array())
                .cloned()
                .unwrap_or_default()
            {
                out.push_str(&format!(
                    "{:>16}cost {} {} x ${} = ${:.6} (from {})\n",
                    "",
                    line["quantity"],
                    line["unit"].as_str().unwrap_or("?"),
                    line["unit_price_usd"],
                    line["amount_usd_micros"].as_f64().unwrap_or(0.0) / 1e6,
                    line["source"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    out
}

/// The failure piles as an aligned table, most frequent first.
pub fn failures(piles: &Value, color: bool) -> String {
    let data = piles["data"].as_array().cloned().unwrap_or_default();
    let mut out = format!(
        "{} failed or degraded since {}{}\n",
        piles["failed"].as_u64().unwrap_or(0),
        piles["since"].as_str().unwrap_or("?"),
        if piles["truncated"] == true {
            " (newest only: over the scan limit)"
        } else {
            ""
        }
    );
    if data.is_empty() {
        out.push_str("no failures\n");
    } else {
        out.push_str(&failure_table(&data, color));
        out.push_str("rerun a pile after a fix: executor failures rerun PILE [--dry-run]\n");
    }
    let parked = piles["parked_piles"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !parked.is_empty() {
        out.push_str(&format!(
            "\n{} parked by the reconciler (it could not re-drive them {} times in a row; still retried with backoff)\n",
            piles["parked"].as_u64().unwrap_or(0),
            executor_lifecycle::engine::RECONCILE_PARK_AFTER
        ));
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header(vec![
            "count",
            "status",
            "provider",
            "model",
            "reason",
            "tries",
            "first failure",
            "last failure",
            "example",
            "pile",
        ]);
        for p in &parked {
            let status = p["status"].as_str().unwrap_or("?");
            table.add_row(vec![
                p["count"].to_string(),
                if color {
                    status.yellow().to_string()
                } else {
                    status.to_string()
                },
                p["provider"].as_str().unwrap_or("").to_string(),
                p["model"].as_str().unwrap_or("").to_string(),
                p["reason"].as_str().unwrap_or("").to_string(),
                p["failures"].to_string(),
                p["first_failure"].as_str().unwrap_or("").to_string(),
                p["last_failure"].as_str().unwrap_or("").to_string(),
                p["example_execution_id"].as_str().unwrap_or("").to_string(),
                p["id"].as_str().unwrap_or("").to_string(),
            ]);
        }
        out.push_str(&table.to_string());
        out.push('\n');
    }
    out
}

fn failure_table(data: &[Value], color: bool) -> String {
    let mut out = String::new();
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(vec![
        "count",
        "error class",
        "provider",
        "model",
        "message",
        "first seen",
        "last seen",
        "example",
        "pile",
    ]);
    for p in data {
        let class = p["error_class"].as_str().unwrap_or("?");
        let class = if color {
            class.red().to_string()
        } else {
            class.to_string()
        };
        table.add_row(vec![
            p["count"].to_string(),
            class,
            p["provider"].as_str().unwrap_or("").to_string(),
            p["model"].as_str().unwrap_or("").to_string(),
            p["message"].as_str().unwrap_or("").to_string(),
            p["first_seen"].as_str().unwrap_or("").to_string(),
            p["last_seen"].as_str().unwrap_or("").to_string(),
            p["example_execution_id"].as_str().unwrap_or("").to_string(),
            p["id"].as_str().unwrap_or("").to_string(),
        ]);
    }
    out.push_str(&table.to_string());
    out.push('\n');
    out
}

/// `executor reconcile`: what one pass did.
pub fn reconcile(report: &executor_lifecycle::engine::ReconcileReport) -> String {
    let mut out = format!(
        "examined {} overdue execution(s): {} pending outbox(es) applied, {} message(s) re-sent\n",
        report.examined, report.outboxes_applied, report.redriven
    );
    for id in &report.execution_ids {
        out.push_str(&format!("  {id}\n"));
    }
    if !report.failed.is_empty() {
        out.push_str(&format!(
            "{} execution(s) could not be re-driven (retried with backoff):\n",
            report.failed.len()
        ));
        for f in &report.failed {
            let parked = if f.parked { ", parked" } else { "" };
            out.push_str(&format!(
                "  {}  failed {} time(s) in a row{parked}: {}\n",
                f.execution_id, f.failures, f.reason
            ));
        }
    }
    if !report.backing_off.is_empty() {
        let parked = report.backing_off.iter().filter(|f| f.parked).count();
        out.push_str(&format!(
            "{} execution(s) skipped while backing off after failures ({parked} parked)\n",
            report.backing_off.len()
        ));
    }
    if !report.recovered.is_empty() {
        out.push_str(&format!(
            "{} execution(s) re-driven after earlier failures (no longer parked):\n",
            report.recovered.len()
        ));
        for id in &report.recovered {
            out.push_str(&format!("  {id}\n"));
        }
    }
    out
}

/// `executor usage`: the groups of a `GET /v1/usage` report as a table, the total, and the
/// tenant's budgets.
pub fn usage(report: &Value) -> String {
    let mut out = format!(
        "executions created {} .. {} by {}{}\n",
        report["from"].as_str().unwrap_or("?"),
        report["to"].as_str().unwrap_or("?"),
        report["group_by"].as_str().unwrap_or("?"),
        if report["truncated"] == true {
            " (newest only: over the scan limit; narrow the window)"
        } else {
            ""
        }
    );
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(vec![
        "group",
        "executions",
        "succeeded",
        "failed",
        "canceled",
        "timed out",
        "running",
        "cost $",
        "reserved $",
    ]);
    let groups = report["data"].as_array().cloned().unwrap_or_default();
    for g in groups.iter().chain(std::iter::once(&report["total"])) {
        table.add_row(vec![
            g["key"].as_str().unwrap_or("").to_string(),
            g["executions"].to_string(),
            g["succeeded"].to_string(),
            g["failed"].to_string(),
            g["canceled"].to_string(),
            g["timed_out"].to_string(),
            g["in_progress"].to_string(),
            format!("{:.4}", g["cost_usd"].as_f64().unwrap_or(0.0)),
            format!("{:.4}", g["reserved_usd"].as_f64().unwrap_or(0.0)),
        ]);
    }
    out.push_str(&table.to_string());
    out.push('\n');
    let budgets = report["budgets"].as_array().cloned().unwrap_or_default();
    if budgets.is_empty() {
        out.push_str("no budgets\n");
    }
    for b in &budgets {
        out.push_str(&format!(
            "budget {} {}{}: ${:.4} spent + ${:.4} reserved of ${:.2}, ${:.4} left\n",
            b["period"].as_str().unwrap_or("?"),
            b["period_key"].as_str().unwrap_or("?"),
            b["model"]
                .as_str()
                .map(|m| format!(" for {m}"))
                .unwrap_or_default(),
            b["spent_usd"].as_f64().unwrap_or(0.0),
            b["reserved_usd"].as_f64().unwrap_or(0.0),
            b["limit_usd"].as_f64().unwrap_or(0.0),
            b["remaining_usd"].as_f64().unwrap_or(0.0),
        ));
    }
    out
}
