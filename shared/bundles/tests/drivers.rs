//! Every committed bundle, driven end to end against the provider simulators: a result with
//! outputs and a cost; the provider's 429, validation, failure and content-policy answers in
//! the taxonomy's classes; cancel; refused connections and timed-out creates; no secret in
//! any record or message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{End, context, driver, run_to_end, setup};
use executor_bundles::BundleCatalog;
use executor_lifecycle::{
    Catalog, ErrorClass, JobCreation, OutputKind, PollOutcome, SubmitOutcome,
};
use serde_json::{Value, json};
use std::collections::HashMap;

/// (model id, input with `{p}` standing for the prompt text, expected output kind).
const MODELS: [(&str, &str, OutputKind); 4] = [
    (
        "openai/gpt-image-1",
        r#"{"prompt": "{p}"}"#,
        OutputKind::Image,
    ),
    (
        "runway/gen4-turbo",
        r#"{"promptImage": "https://example.com/first-frame.png", "promptText": "{p}"}"#,
        OutputKind::Video,
    ),
    (
        "black-forest-labs/flux-schnell",
        r#"{"prompt": "{p}"}"#,
        OutputKind::Image,
    ),
    ("fal-ai/flux-dev", r#"{"prompt": "{p}"}"#, OutputKind::Image),
];

fn input(template: &str, prompt: &str) -> Value {
    serde_json::from_str(&template.replace("{p}", prompt)).unwrap()
}

fn failure_of(model: &str, end: End) -> executor_lifecycle::Failure {
    match end {
        End::Failed(f) => f,
        other => panic!("{model}: expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn every_bundle_runs_to_outputs_and_a_cost() {
    let (_sims, catalog) = setup().await;
    for (model, template, kind) in MODELS {
        let d = driver(&catalog, model);
        let ctx = context(d.as_ref(), input(template, "a lighthouse at dusk"), "");
        let (end, calls) = run_to_end(d.as_ref(), ctx).await;
        let End::Succeeded(result) = end else {
            panic!("{model}: {end:?}");
        };
        assert!(!result.outputs.is_empty(), "{model}: no outputs");
        for o in &result.outputs {
            assert_eq!(o.kind, kind, "{model}: {o:?}");
            assert!(o.url.is_some() || o.data.is_some(), "{model}: {o:?}");
        }
        let cost = d.cost(&result);
        assert!(cost.provider_usd_micros > 0, "{model}: {cost:?}");
        assert!(
            calls.iter().all(|c| c.status.is_some_and(|s| s < 300)),
            "{model}: {calls:?}"
        );
    }
}

#[tokio::test]
async fn costs_follow_each_bundles_pricing() {
    let (_sims, catalog) = setup().await;
    let cost_of = |model: &str, end: End| match end {
        End::Succeeded(r) => catalog.get(model).unwrap().cost(&r),
        other => panic!("{model}: {other:?}"),
    };
    // OpenAI: base64 image inline, token usage priced per million.
    let d = driver(&catalog, "openai/gpt-image-1");
    let (end, _) = run_to_end(d.as_ref(), context(d.as_ref(), json!({"prompt": "a"}), "")).await;
    if let End::Succeeded(r) = &end {
        let o = &r.outputs[0];
        assert_eq!(o.mime_type.as_deref(), Some("image/png"));
        assert!(
            o.data
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|s| s.len() > 16)
        );
    }
    let c = cost_of("openai/gpt-image-1", end);
    // Text and image input priced apart (the simulator's prompt is text only), then output.
    assert_eq!(c.lines.len(), 3, "{c:?}");
    assert!(c.lines.iter().all(|l| l.unit.ends_with("token")));
    assert_eq!(c.lines[1].unit, "input_image_token");
    assert_eq!(c.lines[1].quantity, 0.0);
    assert!(c.lines[0].quantity > 0.0, "{c:?}");
    // Runway: 5 credits per output second x 5 s x $0.01 = $0.25.
    let d = driver(&catalog, "runway/gen4-turbo");
    let ctx = context(
        d.as_ref(),
        json!({"promptImage": "https://example.com/a.png"}),
        "",
    );
    let c = cost_of("runway/gen4-turbo", run_to_end(d.as_ref(), ctx).await.0);
    assert_eq!(c.provider_usd_micros, 250_000, "{c:?}");
    // Replicate: $0.003 per image, two images.
    let d = driver(&catalog, "black-forest-labs/flux-schnell");
    let ctx = context(d.as_ref(), json!({"prompt": "a", "num_outputs": 2}), "");
    let c = cost_of(
        "black-forest-labs/flux-schnell",
        run_to_end(d.as_ref(), ctx).await.0,
    );
    assert_eq!(c.provider_usd_micros, 6_000, "{c:?}");
}

#[tokio::test]
async fn a_429_is_rate_limited_with_retry_after_and_the_next_attempt_is_accepted() {
    let (_sims, catalog) = setup().await;
    for (model, template, _) in MODELS {
        let d = driver(&catalog, model);
        let ctx = context(d.as_ref(), input(template, "a cat sim:rate_limit=1"), "");
        match d.submit(&ctx).await.outcome {
            SubmitOutcome::Rejected {
                failure, creation, ..
            } => {
                assert_eq!(
                    failure.class,
                    ErrorClass::RateLimited,
                    "{model}: {failure:?}"
                );
                assert_eq!(failure.http_status, Some(429), "{model}");
                assert!(
                    failure.retry_after_ms.is_some_and(|ms| ms > 0),
                    "{model}: {failure:?}"
                );
                assert_eq!(creation, JobCreation::NotCreated, "{model}");
            }
            other => panic!("{model}: {other:?}"),
        }
        let again = d.submit(&ctx).await.outcome;
        assert!(
            !matches!(again, SubmitOutcome::Rejected { .. }),
            "{model}: {again:?}"
        );
    }
}

#[tokio::test]
async fn provider_validation_errors_name_the_field() {
    let (_sims, catalog) = setup().await;
    let expected = [
        ("openai/gpt-image-1", "/quality"),
        ("runway/gen4-turbo", "/promptText"),
        ("black-forest-labs/flux-schnell", "/prompt"),
        ("fal-ai/flux-dev", "/prompt"),
    ];
    for ((model, template, _), (_, field)) in MODELS.into_iter().zip(expected) {
        let d = driver(&catalog, model);
        let ctx = context(d.as_ref(), input(template, "a cat sim:invalid"), "");
        let f = failure_of(model, run_to_end(d.as_ref(), ctx).await.0);
        assert_eq!(f.class, ErrorClass::ValidationError, "{model}: {f:?}");
        assert_eq!(f.field.as_deref(), Some(field), "{model}: {f:?}");
    }
}

#[tokio::test]
async fn provider_failures_land_in_provider_classes() {
    let (_sims, catalog) = setup().await;
    let expected = [
        ErrorClass::ProviderTransient,   // OpenAI 500 server_error
        ErrorClass::ProviderTransient,   // Runway FAILED INTERNAL.BAD_OUTPUT.CODE01
        ErrorClass::ProviderFatal,       // Replicate failed "... run out of memory?"
        ErrorClass::ProviderUnavailable, // fal COMPLETED + runner_disconnected
    ];
    for ((model, template, _), class) in MODELS.into_iter().zip(expected) {
        let d = driver(&catalog, model);
        let ctx = context(d.as_ref(), input(template, "a cat sim:fail"), "");
        let f = failure_of(model, run_to_end(d.as_ref(), ctx).await.0);
        assert_eq!(f.class, class, "{model}: {f:?}");
    }
}

#[tokio::test]
async fn safety_refusals_are_content_policy() {
    let (_sims, catalog) = setup().await;
    for (model, template, _) in MODELS {
        let d = driver(&catalog, model);
        let ctx = context(d.as_ref(), input(template, "a cat sim:content_policy"), "");
        let f = failure_of(model, run_to_end(d.as_ref(), ctx).await.0);
        assert_eq!(f.class, ErrorClass::ContentPolicy, "{model}: {f:?}");
    }
}

#[tokio::test]
async fn cancel_reaches_the_provider_and_the_job_ends_canceled() {
    let (_sims, catalog) = setup().await;
    for (model, template) in [
        ("runway/gen4-turbo", MODELS[1].1),
        ("black-forest-labs/flux-schnell", MODELS[2].1),
        ("fal-ai/flux-dev", MODELS[3].1),
    ] {
        let d = driver(&catalog, model);
        let mut ctx = context(d.as_ref(), input(template, "slow sim:duration=5000"), "");
        let SubmitOutcome::Created { job_id, .. } = d.submit(&ctx).await.outcome else {
            panic!("{model}: not created");
        };
        ctx.job_id = Some(job_id);
        let reply = d.cancel(&ctx).await;
        assert!(reply.outcome.is_ok(), "{model}: {:?}", reply.outcome);
        assert_eq!(reply.calls.len(), 1);
        let polled = d.poll(&ctx).await.outcome;
        assert!(
            matches!(polled, PollOutcome::Canceled { .. }),
            "{model}: {polled:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_and_certainly_not_created() {
    let (sims, _) = setup().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut o = common::sim_options(&sims, HashMap::new());
    o.base_url_overrides
        .insert("runway".into(), format!("http://127.0.0.1:{closed}/runway"));
    let catalog = BundleCatalog::load(&common::repo().join("bundles"), o).unwrap();
    let d = driver(&catalog, "runway/gen4-turbo");
    let ctx = context(
        d.as_ref(),
        json!({"promptImage": "https://e.com/a.png"}),
        "",
    );
    let reply = d.submit(&ctx).await;
    match reply.outcome {
        SubmitOutcome::Rejected {
            failure, creation, ..
        } => {
            assert_eq!(
                failure.class,
                ErrorClass::ProviderUnavailable,
                "{failure:?}"
            );
            assert_eq!(creation, JobCreation::NotCreated);
        }
        other => panic!("{other:?}"),
    }
    assert!(reply.calls[0].error.is_some() && reply.calls[0].status.is_none());
}

#[tokio::test]
async fn a_create_that_times_out_after_sending_is_ambiguous() {
    let (sims, _) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let provider = std::fs::read_to_string(common::repo().join("bundles/providers/runway.yaml"))
        .unwrap()
        .replacen(
            "    json: \"{{ input | merge({'model': model.name}) }}\"\n",
            "    json: \"{{ input | merge({'model': model.name}) }}\"\n    timeout_seconds: 1\n",
            1,
        );
    assert!(provider.contains("timeout_seconds: 1"));
    std::fs::create_dir_all(dir.path().join("providers")).unwrap();
    std::fs::write(dir.path().join("providers/runway.yaml"), provider).unwrap();
    std::fs::copy(
        common::repo().join("bundles/runway-gen4-turbo.yaml"),
        dir.path().join("runway.yaml"),
    )
    .unwrap();
    let catalog =
        BundleCatalog::load(dir.path(), common::sim_options(&sims, HashMap::new())).unwrap();
    let d = driver(&catalog, "runway/gen4-turbo");
    let ctx = context(
        d.as_ref(),
        json!({"promptImage": "https://e.com/a.png", "promptText": "x sim:hang_after_create=3000"}),
        "",
    );
    match d.submit(&ctx).await.outcome {
        SubmitOutcome::Rejected {
            failure, creation, ..
        } => {
            assert_eq!(failure.class, ErrorClass::Timeout, "{failure:?}");
            assert_eq!(creation, JobCreation::Unknown);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn credentials_never_appear_in_records_or_messages() {
    let (sims, _) = setup().await;
    let secret = "invalid-sk-TOPSECRET-7f3a9c";
    let secrets = HashMap::from([("OPENAI_API_KEY".to_string(), secret.to_string())]);
    let catalog = BundleCatalog::load(
        &common::repo().join("bundles"),
        common::sim_options(&sims, secrets),
    )
    .unwrap();
    let d = driver(&catalog, "openai/gpt-image-1");
    let ctx = context(d.as_ref(), json!({"prompt": "a cat"}), "");
    let (end, calls) = run_to_end(d.as_ref(), ctx).await;
    let f = failure_of("openai", end);
    assert_eq!(f.class, ErrorClass::PipelineConfiguration, "{f:?}");
    assert_eq!(f.http_status, Some(401));
    let everything = format!("{f:?} {calls:?}");
    assert!(!everything.contains("TOPSECRET"), "{everything}");
}

/// Pass-through: a Replicate model by name, one by version id, and a fal endpoint run with
/// no model file once the operator enables their platforms; the same ids without it are
/// unknown; a path-like id is not a model.
#[tokio::test]
async fn passthrough_models_run_without_a_model_file() {
    let (sims, _) = setup().await;
    let mut o = common::sim_options(&sims, HashMap::new());
    let closed = BundleCatalog::load(&common::repo().join("bundles"), o.clone()).unwrap();
    assert!(
        closed.get("replicate/acme/painter").is_none(),
        "off by default"
    );
    o.passthrough = vec!["replicate".into(), "fal".into()];
    let catalog = BundleCatalog::load(&common::repo().join("bundles"), o).unwrap();
    for bad in [
        "replicate/../x",
        "replicate/a/b/c",
        "fal/solo",
        "stability/x/y",
        "replicate/",
    ] {
        assert!(catalog.get(bad).is_none(), "{bad}");
    }
    let version = "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637";
    for id in [
        "replicate/acme/painter".to_string(),
        format!("replicate/{version}"),
        "fal/fal-ai/flux/schnell".to_string(),
    ] {
        let d = catalog.get(&id).unwrap_or_else(|| panic!("{id}"));
        assert_eq!(d.spec().id, id);
        let ctx = context(d.as_ref(), json!({"prompt": "a lighthouse"}), "");
        let (end, calls) = run_to_end(d.as_ref(), ctx).await;
        let create = &calls[0];
        match &end {
            End::Succeeded(r) => {
                assert!(!r.outputs.is_empty(), "{id}: {r:?}");
                let cost = d.cost(r);
                if id.starts_with("replicate/") {
                    assert!(
                        cost.provider_usd_micros > 0,
                        "{id}: predict time priced: {cost:?}"
                    );
                }
            }
            other => panic!("{id}: {other:?} after {calls:?}"),
        }
        if id.contains(version) {
            assert!(create.url.ends_with("/v1/predictions"), "{}", create.url);
        } else if id.starts_with("replicate/") {
            assert!(
                create.url.ends_with("/v1/models/acme/painter/predictions"),
                "{}",
                create.url
            );
        } else {
            assert!(
                create.url.ends_with("/fal-ai/flux/schnell"),
                "{}",
                create.url
            );
        }
    }
}

/// A tiny WAV (8 kHz mono, 800 samples of silence) as a data URI, for audio inputs.
fn wav_data_uri() -> String {
    use base64::Engine as _;
    let samples = 800u32;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&8000u32.to_le_bytes());
    b.extend_from_slice(&16000u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(samples * 2).to_le_bytes());
    b.resize(b.len() + samples as usize * 2, 0);
    format!(
        "data:audio/wav;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(b)
    )
}

/// A valid input from a model's schema: the prompt-like field carries `text`, every required
/// field gets its first enum value, a media data URI of its kind, or a number at its minimum.
fn input_for(schema: &Value, text: &str) -> Value {
    const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut out = serde_json::Map::new();
    for k in [
        "prompt",
        "promptText",
        "text",
        "prompt_text",
        "text_prompt",
        "input",
        "inputs",
    ] {
        if props.get(k).is_some_and(|p| p["type"] == "string") {
            out.insert(k.into(), json!(text));
            break;
        }
    }
    let required: Vec<String> = schema["required"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for name in required {
        if out.contains_key(&name) {
            continue;
        }
        let p = &props[&name];
        let media = p["x-media"]["kind"]
            .as_str()
            .or(p["items"]["x-media"]["kind"].as_str());
        let one = |kind: Option<&str>| match kind {
            Some("audio") => json!(wav_data_uri()),
            Some(_) => json!(PNG),
            None => json!(text),
        };
        let first_enum = p["enum"]
            .as_array()
            .or_else(|| {
                p["anyOf"]
                    .as_array()?
                    .iter()
                    .find_map(|a| a["enum"].as_array())
            })
            .and_then(|a| a.first());
        let v = if let Some(e) = first_enum {
            e.clone()
        } else if name == "messages" {
            json!([{"role": "user", "content": text}])
        } else if name == "contents" {
            json!([{"role": "user", "parts": [{"text": text}]}])
        } else if p["type"] == "array" {
            json!([one(media)])
        } else if media.is_some() || name.to_lowercase().contains("image") {
            one(media.or(Some("image")))
        } else {
            match p["type"].as_str() {
                Some("integer") | Some("number") => {
                    json!(p["minimum"].as_f64().unwrap_or(1.0).max(1.0) as i64)
                }
                Some("boolean") => json!(false),
                _ => json!(text),
            }
        };
        out.insert(name, v);
    }
    Value::Object(out)
}

/// Every model of the catalogue against its provider's simulator (written from the
/// provider's documentation, not from the bundles): the create, the polls or callback, the
/// outputs of the model's modality, and a cost from the provider's billing figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalogue_model_runs_against_its_simulator() {
    let (_sims, catalog) = setup().await;
    let mut failures = Vec::new();
    let mut ran = 0;
    for d in catalog.drivers() {
        let b = d.bundle();
        let input = input_for(&b.input_schema, "a lighthouse at dusk");
        let d: std::sync::Arc<dyn executor_lifecycle::ModelDriver> = d.clone();
        let input = match d.validate(&input) {
            Ok(i) => i,
            Err(f) => {
                failures.push(format!(
                    "{}: the test's input is refused: {f:?} ({input})",
                    b.id
                ));
                continue;
            }
        };
        ran += 1;
        if b.callback.as_ref().is_some_and(|c| c.no_status.is_some()) {
            // No call reads the job: the result is the callback, which must verify.
            if let Err(f) = callback_only(d.as_ref(), input).await {
                failures.push(format!("{}: {f}", b.id));
            }
            continue;
        }
        let ctx = context(d.as_ref(), input, "");
        let (end, calls) = run_to_end(d.as_ref(), ctx).await;
        match end {
            End::Succeeded(r) if !r.outputs.is_empty() => {
                let cost = d.cost(&r);
                if cost.provider_usd_micros <= 0 {
                    failures.push(format!("{}: no cost from {:?}", b.id, r.usage));
                }
            }
            other => failures.push(format!(
                "{}: {other:?} after {:?}",
                b.id,
                calls
                    .iter()
                    .map(|c| format!("{} {} {:?}", c.method, c.url, c.status))
                    .collect::<Vec<_>>()
            )),
        }
    }
    assert!(ran >= 60, "{ran} models ran");
    assert!(
        failures.is_empty(),
        "{} of {ran} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs a callback-only model (`callback.no_status`, Deepgram's callback mode) against its
/// simulator: the create names a job, the simulator calls back with the credentials the
/// create put in the URL, and the verified callback is the job's priced result; the same
/// callback with its credentials changed is refused.
async fn callback_only(
    d: &dyn executor_lifecycle::ModelDriver,
    input: Value,
) -> Result<(), String> {
    use executor_lifecycle::{CallbackVerdict, PollOutcome, SubmitOutcome};
    let mut rx = common::receiver(200).await;
    let mut ctx = context(d, input, &rx.url);
    let job = match d.submit(&ctx).await.outcome {
        SubmitOutcome::Created { job_id, .. } => job_id,
        other => return Err(format!("create: {other:?}")),
    };
    ctx.job_id = Some(job.clone());
    let got = rx.next(20).await;
    let auth = got.header("authorization").unwrap_or_default().to_string();
    if !auth.starts_with("Basic ") {
        return Err(format!(
            "the callback carries no Basic credentials: {:?}",
            got.headers
        ));
    }
    let forged: Vec<(String, String)> =
        vec![("authorization".into(), "Basic ZXhlY3V0b3I6eA==".into())];
    if d.verify_callback(&forged, &got.body, common::now_ms())
        .is_ok()
    {
        return Err("a callback with other credentials verified".into());
    }
    let verified = d
        .verify_callback(&got.headers, &got.body, common::now_ms())
        .map_err(|f| format!("the genuine callback is refused: {f}"))?;
    if d.callback_job_id(&verified.payload).as_deref() != Some(job.as_str()) {
        return Err(format!("the callback is not about job {job}"));
    }
    match d.interpret_callback(&ctx, &verified.payload) {
        CallbackVerdict::Outcome(PollOutcome::Succeeded(r)) if !r.outputs.is_empty() => {
            if d.cost(&r).provider_usd_micros <= 0 {
                return Err(format!("no cost from {:?}", r.usage));
            }
            Ok(())
        }
        CallbackVerdict::Outcome(o) => Err(format!("callback outcome {o:?}")),
        CallbackVerdict::NeedsPoll => Err("a trusted callback asks for a poll".into()),
    }
}
