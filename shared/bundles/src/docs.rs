//! A documentation page per bundle, generated from the bundle itself (model, shape, inputs,
//! pricing, limits, errors, steps). The pages are committed in `docs/bundles/`; a test fails
//! when they differ from what this generator produces (`UPDATE_DOCS=1` rewrites them).

use crate::adapters;
use crate::format::{Bundle, BundleShape, Pricing, Step};
use serde_json::Value;
use std::fmt::Write as _;

fn shape_words(s: BundleShape) -> &'static str {
    match s {
        BundleShape::Immediate => "immediate — the result is in the answer to the create call",
        BundleShape::Polling => "polling — a job id, then status calls until it ends",
        BundleShape::Callback => {
            "callback — a job id, then the provider calls back (slow safety polls meanwhile)"
        }
    }
}

/// One line saying how a model is priced (the docs pages and `GET /v1/models`).
pub fn pricing_summary(p: &Pricing) -> String {
    pricing_words(p)
}

fn pricing_words(p: &Pricing) -> String {
    match p {
        Pricing::PerToken {
            input_usd_per_million,
            output_usd_per_million,
            image_input_usd_per_million: None,
        } => format!(
            "per token: ${input_usd_per_million} per million input tokens + ${output_usd_per_million} per million output tokens (`usage.input_tokens`, `usage.output_tokens`)"
        ),
        Pricing::PerToken {
            input_usd_per_million,
            output_usd_per_million,
            image_input_usd_per_million: Some(image),
        } => format!(
            "per token: ${input_usd_per_million} per million text input tokens + ${image} per million image input tokens + ${output_usd_per_million} per million output tokens (`usage.input_text_tokens`, `usage.input_image_tokens`, `usage.output_tokens`)"
        ),
        Pricing::PerOutput { usd_per_output } => {
            format!("per output: ${usd_per_output} × number of outputs")
        }
        Pricing::PerSecond { usd_per_second } => {
            format!("per second of provider compute: ${usd_per_second} × `usage.predict_time`")
        }
        Pricing::PerCredit {
            credits_per_second,
            usd_per_credit,
        } => format!(
            "credits per second of output: {credits_per_second} credits × `usage.duration_seconds` × ${usd_per_credit} per credit"
        ),
        Pricing::PerCharacter { usd_per_thousand } => {
            format!("per character: ${usd_per_thousand} per 1,000 characters (`usage.characters`)")
        }
        Pricing::PerOutputCredits {
            credits_per_output,
            usd_per_credit,
        } => format!(
            "flat credits per output: {credits_per_output} credits × ${usd_per_credit} per credit × number of outputs"
        ),
        Pricing::PerOutputSecond { usd_per_second } => {
            format!("per second of output: ${usd_per_second} × `usage.duration_seconds`")
        }
        Pricing::PerUsage {
            field,
            usd_per_unit,
        } => format!("per unit of `usage.{field}`: ${usd_per_unit} each"),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => format!("`{}`", s.replace('|', "\\|")),
        other => format!("`{}`", other.to_string().replace('|', "\\|")),
    }
}

fn constraints(p: &Value) -> String {
    let mut out = Vec::new();
    if let Some(e) = p["enum"].as_array() {
        out.push(format!(
            "one of {}",
            e.iter().map(cell).collect::<Vec<_>>().join(", ")
        ));
    }
    for (k, label) in [
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minimum", "min"),
        ("maximum", "max"),
        ("pattern", "pattern"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ] {
        if !p[k].is_null() {
            out.push(format!("{label} {}", cell(&p[k])));
        }
    }
    if let Some(m) = p["x-media"].as_object() {
        let mut s = format!(
            "{} URL or data URI; no private/loopback/metadata address",
            m.get("kind").and_then(Value::as_str).unwrap_or("media")
        );
        if let Some(b) = m.get("max_bytes") {
            let _ = write!(s, "; at most {b} bytes");
        }
        if let Some(px) = m.get("max_pixels") {
            let _ = write!(s, "; at most {px} pixels");
        }
        out.push(s);
    }
    out.join("; ")
}

fn steps_outline(steps: &[Step], indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    for s in steps {
        let line = match s {
            Step::HttpRequest(h) => format!(
                "`http-request` **{}**: {} `{}`",
                h.id,
                h.method.as_str(),
                h.url
            ),
            Step::TransformPayload(t) => format!("`transform-payload` **{}**", t.id),
            Step::TransformImage(t) => format!("`transform-image` **{}**", t.id),
            Step::PublishEvent(p) => format!("`publish-event` **{}** (`{}`)", p.id, p.event),
            Step::FileHandler(f) => format!("`file-handler` **{}**: fetch `{}`", f.id, f.url),
            Step::ForEach(f) => format!(
                "`for-each` **{}** over `{}` (at most {})",
                f.id, f.items, f.max_items
            ),
            Step::Conditional(c) => format!("`conditional` if `{}`", c.condition),
            Step::StopExecution(s) => format!(
                "`stop-execution` ({}){}",
                s.error_class.as_deref().unwrap_or("provider_fatal"),
                s.condition
                    .as_ref()
                    .map(|c| format!(" if `{c}`"))
                    .unwrap_or_default()
            ),
        };
        let _ = writeln!(out, "{pad}- {line}");
        match s {
            Step::Conditional(c) => {
                steps_outline(&c.then, indent + 1, out);
                if !c.otherwise.is_empty() {
                    let _ = writeln!(out, "{pad}  - else:");
                    steps_outline(&c.otherwise, indent + 2, out);
                }
            }
            Step::ForEach(f) => steps_outline(&f.steps, indent + 1, out),
            _ => {}
        }
    }
}

/// The page of one bundle. `file` is the bundle's file name, for the source link.
pub fn page(bundle: &Bundle, file: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", bundle.id);
    let _ = writeln!(
        o,
        "<!-- Generated from bundles/{file} by executor-bundles' docs generator; do not edit. \
         Regenerate: UPDATE_DOCS=1 cargo test -p executor-bundles --test bundles -->\n"
    );
    let _ = writeln!(o, "{}\n", bundle.description);
    let _ = writeln!(o, "| | |\n|---|---|");
    if let Some(m) = bundle.modality {
        let _ = writeln!(o, "| Modality | {} |", m.as_str());
    }
    let _ = writeln!(o, "| Provider | `{}` |", bundle.provider);
    if let Some(m) = &bundle.provider_model {
        let _ = writeln!(o, "| Provider's model name | `{m}` |");
    }
    if let Some(d) = &bundle.docs_url {
        let _ = writeln!(o, "| Provider docs | <{d}> |");
    }
    let _ = writeln!(o, "| Adapter | `{}` |", bundle.adapter);
    let _ = writeln!(o, "| Shape | {} |", shape_words(bundle.shape));
    let _ = writeln!(o, "| Base URL | `{}` |", bundle.base_url);
    let _ = writeln!(
        o,
        "| Credentials | {} |",
        bundle
            .credentials
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let l = &bundle.limits;
    let _ = writeln!(
        o,
        "| Limits | at most {} s per execution; {} submit attempt(s); {} s per submit{}{} |",
        l.max_duration_seconds,
        l.max_submit_attempts,
        l.submit_timeout_seconds,
        l.capacity
            .map(|c| format!("; {c} in flight"))
            .unwrap_or_default(),
        if l.job_retries > 0 {
            format!("; a failed job retried {} time(s)", l.job_retries)
        } else {
            String::new()
        }
    );
    if let Some(p) = &bundle.polling {
        let _ = writeln!(
            o,
            "| Polling | first after {} ms, ×{} each time, at most every {} ms |",
            p.initial_delay_ms, p.multiplier, p.max_delay_ms
        );
    }
    if let Some(c) = &bundle.callback {
        let _ = writeln!(
            o,
            "| Callback | safety poll every {} s while waiting |",
            c.safety_poll_seconds
        );
    }
    let _ = writeln!(
        o,
        "| Ambiguous create | {} |",
        match bundle.ambiguous_submit {
            crate::format::AmbiguousSubmit::Fail => "fail with `submit_ambiguous`",
            crate::format::AmbiguousSubmit::Resubmit => "submit again",
        }
    );
    let _ = writeln!(o, "\n## Input\n");
    let required: Vec<&str> = bundle.input_schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "| Field | Type | Required | Default | Constraints | Description |\n|---|---|---|---|---|---|"
    );
    if let Some(props) = bundle.input_schema["properties"].as_object() {
        for (name, p) in props {
            let _ = writeln!(
                o,
                "| `{name}` | {} | {} | {} | {} | {} |",
                p["type"].as_str().unwrap_or("any"),
                if required.contains(&name.as_str()) {
                    "yes"
                } else {
                    ""
                },
                cell(&p["default"]),
                constraints(p),
                p["description"].as_str().unwrap_or("").replace('|', "\\|")
            );
        }
    }
    if bundle.input_schema["additionalProperties"] == Value::Bool(false) {
        let _ = writeln!(o, "\nOther fields are refused (`validation_error`).");
    }
    let _ = writeln!(o, "\n## Pricing\n\n{}.", pricing_words(&bundle.pricing));
    let _ = writeln!(o, "\n## Errors\n");
    let _ = writeln!(
        o,
        "Input that fails the schema above is refused at submit with `validation_error` naming the field; the provider is not called.\n"
    );
    let mut rows: Vec<(String, String, String)> = crate::rules::table(&bundle.errors);
    if let Some(a) = adapters::by_name(&bundle.adapter) {
        rows.extend(
            a.error_table()
                .iter()
                .map(|(s, c, n)| (s.to_string(), c.to_string(), n.to_string())),
        );
    }
    if !rows.is_empty() {
        let _ = writeln!(
            o,
            "The first matching row applies (the provider file's `errors`, which the system runs, then the adapter's own rules).\n"
        );
        let _ = writeln!(o, "| Provider answer | Error class | Note |\n|---|---|---|");
        for (signal, class, note) in rows {
            let _ = writeln!(
                o,
                "| {} | `{class}` | {} |",
                signal.replace('|', "\\|"),
                note.replace('|', "\\|")
            );
        }
    }
    let _ = writeln!(
        o,
        "\nA create that got no connection at all is `provider_unavailable` and retried without using an attempt. A create whose fate is unknown — a timeout, a connection closed or reset after the request was sent, a 5xx or 408 answer — may have started a paid job: it follows the ambiguous-create policy above and is never re-sent silently."
    );
    if bundle.lookup.is_some() {
        let _ = writeln!(
            o,
            "\nAn ambiguous create is first looked up at the provider (the `lookup` steps below): the job found is this execution's, and the execution goes on with it; only when none is found does the policy above apply."
        );
    }
    if !bundle.not_created.is_empty() {
        let _ = writeln!(
            o,
            "\nThese create answers are refusals the provider documents (nothing was created), retried as attempts:\n\n| Status | Source |\n|---|---|"
        );
        for n in &bundle.not_created {
            let _ = writeln!(o, "| {} | {} |", n.status, n.source.replace('|', "\\|"));
        }
    }
    let _ = writeln!(o, "\n## Steps\n");
    for (name, steps) in [
        ("submit", &bundle.steps.submit),
        ("poll", &bundle.steps.poll),
        ("cancel", &bundle.steps.cancel),
        ("lookup", &bundle.steps.lookup),
    ] {
        if steps.is_empty() {
            continue;
        }
        let _ = writeln!(o, "{name}:\n");
        steps_outline(steps, 0, &mut o);
        o.push('\n');
    }
    if bundle.steps.cancel.is_empty() {
        let _ = writeln!(
            o,
            "No cancel call: a cancel ends the execution here; the provider job runs on.\n"
        );
    }
    let _ = writeln!(
        o,
        "## Fixtures\n\nReplay: `executor bundle test bundles/{file}` (fixtures in `bundles/fixtures/{}/`).",
        file.trim_end_matches(".yaml").trim_end_matches(".yml")
    );
    o
}

/// The index page of all bundles.
pub fn index(bundles: &[(String, Bundle)]) -> String {
    let mut o = String::from(
        "# Model catalogue\n\n<!-- Generated from bundles/ by executor-bundles' docs generator; do not edit. -->\n\n| Model | Modality | Provider | Shape | Pricing |\n|---|---|---|---|---|\n",
    );
    for (file, b) in bundles {
        let stem = file.trim_end_matches(".yaml").trim_end_matches(".yml");
        let unit = serde_json::to_value(&b.pricing)
            .ok()
            .and_then(|v| v["unit"].as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "| [{}]({stem}.md) | {} | {} | {:?} | {} |",
            b.id,
            b.modality.map(|m| m.as_str()).unwrap_or(""),
            b.provider,
            b.shape,
            unit
        );
    }
    o
}
