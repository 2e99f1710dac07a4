//! Fallback chains (issue 21), end to end through the HTTP API: `fallbacks: [model, ...]` on
//! a create; an attempt that fails with a class the chain falls back on moves the execution
//! to the next model (one execution id, the attempts listed, the outcome and cost the last
//! attempt's); one that fails otherwise ends the execution; a chain whose input cannot be
//! mapped to a model is refused at create. The simulators are told which provider misbehaves
//! with `sim:only=PROVIDER`, since every step is sent the same prompt.
//!
//! Needs moto server (scripts/services.sh) for the `aws_` tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::Client;
use executor_tests::Harness;
use serde_json::{Value, json};
use std::time::Duration;

struct Sys {
    url: String,
    key: String,
    client: Client,
    _keep: Box<dyn std::any::Any + Send>,
}

async fn embedded() -> Sys {
    let h = Harness::start().await;
    Sys {
        url: h.sys.url.clone(),
        key: h.sys.dev_key.clone(),
        client: Client::new(&h.sys.url, &h.sys.dev_key).unwrap(),
        _keep: Box::new(h),
    }
}

async fn aws() -> Sys {
    let a = executor_tests::aws_sys::start("fallbacks", "acme", |_| {}).await;
    Sys {
        client: Client::new(&a.url, &a.key).unwrap(),
        url: a.url.clone(),
        key: a.key.clone(),
        _keep: Box::new(a),
    }
}

async fn create(sys: &Sys, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/executions", sys.url))
        .bearer_auth(&sys.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn settled(sys: &Sys, id: &str) -> Value {
    sys.client
        .wait_final(id, Duration::from_secs(60), |_| {})
        .await
        .unwrap();
    for _ in 0..600 {
        let v = sys.client.get(id).await.unwrap();
        if v["delivery"]["state"]
            .as_str()
            .is_some_and(|s| s != "pending")
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} did not settle");
}

/// The timeline entries of one event.
fn named<'a>(events: &'a Value, event: &str) -> Vec<&'a Value> {
    events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == event)
        .collect()
}

/// An empty output of the primary falls back (rather than succeeding empty): two attempts,
/// one execution id, outputs and cost from the second.
async fn empty_output_falls_back(sys: &Sys, primary: &str, fallback: &str, provider: &str) {
    let (s, v) = create(
        sys,
        json!({"model": primary, "fallbacks": [fallback],
               "input": {"prompt": format!("sim:only={provider} sim:empty_output a lighthouse")}}),
    )
    .await;
    assert!(s == 201 || s == 202, "{s} {v}");
    let id = v["id"].as_str().unwrap().to_string();
    let v = settled(sys, &id).await;
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["model"], primary, "the model asked for: {v}");
    let chain = &v["chain"];
    assert_eq!(chain["models"], json!([primary, fallback]), "{v}");
    assert_eq!(chain["fallback_used"], true, "{v}");
    assert_eq!(chain["primary_error"]["class"], "partial_result", "{v}");
    let attempts = chain["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{v}");
    assert_eq!(attempts[0]["model"], primary);
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[0]["error"]["class"], "partial_result");
    assert_eq!(attempts[1]["model"], fallback);
    assert_eq!(attempts[1]["status"], "succeeded");
    assert!(!v["outputs"].as_array().unwrap().is_empty(), "{v}");
    let cost = v["cost"]["provider_usd_micros"].as_i64().unwrap();
    assert!(cost > 0 && v["cost"]["billable"] == true, "{v}");
    assert_eq!(attempts[1]["cost"]["provider_usd_micros"], cost);
    // The timeline names the move.
    let events = sys.client.events(&id).await.unwrap();
    let fell = named(&events, "fell_back");
    assert_eq!(fell.len(), 1, "{events}");
    assert_eq!(fell[0]["to"], "queued", "{events}");
}

/// `content_policy` is not a class a chain falls back on: the execution ends on the first.
async fn content_policy_ends_it(sys: &Sys, primary: &str, fallback: &str, provider: &str) {
    let (s, v) = create(
        sys,
        json!({"model": primary, "fallbacks": [fallback],
               "input": {"prompt": format!("sim:only={provider} sim:content_policy a lighthouse")}}),
    )
    .await;
    assert!(s == 201 || s == 202, "{s} {v}");
    let v = settled(sys, v["id"].as_str().unwrap()).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["error"]["class"], "content_policy", "{v}");
    assert_eq!(v["chain"]["fallback_used"], false, "{v}");
    assert_eq!(v["chain"]["attempts"].as_array().unwrap().len(), 1, "{v}");
}

/// A chain whose input does not fit a fallback model is refused at create, naming the step.
async fn unmappable_chain_is_refused(sys: &Sys) {
    let (s, p) = create(
        sys,
        json!({"model": "runway/gen4-turbo", "fallbacks": ["bfl/flux-pro-1.1"],
               "input": {"promptImage": "https://example.com/a.png", "promptText": "waves"}}),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(p["field"], "/fallbacks/0", "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("bfl/flux-pro-1.1"),
        "{p}"
    );
    let (s, p) = create(
        sys,
        json!({"model": "bfl/flux-pro-1.1", "fallbacks": ["no/such-model"], "input": {"prompt": "x"}}),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(p["field"], "/fallbacks/0", "{p}");
    let (s, p) = create(
        sys,
        json!({"model": "bfl/flux-pro-1.1", "fallbacks": ["bfl/flux-pro-1.1"], "input": {"prompt": "x"}}),
    )
    .await;
    assert_eq!(s, 400, "{p}");
}

/// A step may map the input to its model: with `promptText` renamed to `prompt`, the chain
/// refused above runs, and the fallback gets the mapped input.
async fn a_mapped_step_runs_where_the_plain_one_is_refused(sys: &Sys) {
    let (s, v) = create(
        sys,
        json!({"model": "runway/gen4-turbo",
               "fallbacks": [{"model": "bfl/flux-pro-1.1", "rename": {"promptText": "prompt"},
                              "input": {"width": 768}}],
               "input": {"promptImage": "https://example.com/a.png",
                         "promptText": "sim:only=runway sim:empty_output waves"}}),
    )
    .await;
    assert!(s == 201 || s == 202, "{s} {v}");
    let id = v["id"].as_str().unwrap().to_string();
    let v = settled(sys, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(
        v["chain"]["models"],
        json!(["runway/gen4-turbo", "bfl/flux-pro-1.1"]),
        "{v}"
    );
    assert_eq!(v["chain"]["fallback_used"], true, "{v}");
    // A rename to a field the model does not have is refused at create.
    let (s, p) = create(
        sys,
        json!({"model": "runway/gen4-turbo",
               "fallbacks": [{"model": "bfl/flux-pro-1.1", "rename": {"promptText": "text"}}],
               "input": {"promptImage": "https://example.com/a.png", "promptText": "waves"}}),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(p["field"], "/fallbacks/0", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("'text'"), "{p}");
}

/// A cancel during the second attempt cancels that attempt's job at its provider.
async fn cancel_during_the_second_attempt(sys: &Sys) {
    let (s, v) = create(
        sys,
        json!({"model": "bfl/flux-pro-1.1", "fallbacks": ["fal-ai/flux-dev"],
               "input": {"prompt": "sim:only=bfl sim:empty_output sim:only=fal sim:duration=20000 a long one"}}),
    )
    .await;
    assert!(s == 201 || s == 202, "{s} {v}");
    let id = v["id"].as_str().unwrap().to_string();
    let mut job = None;
    for _ in 0..400 {
        let v = sys.client.get(&id).await.unwrap();
        let a = &v["chain"]["attempts"];
        if a.as_array().is_some_and(|a| a.len() == 2) && a[1]["provider_job_id"].is_string() {
            job = a[1]["provider_job_id"].as_str().map(str::to_string);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let job = job.expect("the second attempt never created its job");
    sys.client.cancel(&id).await.unwrap();
    let v = settled(sys, &id).await;
    assert_eq!(v["status"], "canceled", "{v}");
    assert_eq!(v["chain"]["attempts"][1]["provider_job_id"], job.as_str());
    let events = sys.client.events(&id).await.unwrap();
    let cancel_calls: Vec<String> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["calls"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["url"].as_str().map(str::to_string))
        .filter(|u| u.contains("/cancel") && u.contains(&job))
        .collect();
    assert!(
        !cancel_calls.is_empty(),
        "no cancel of {job} at fal: {events}"
    );
}

/// A job that fails after it was created with a transient class (fal's
/// `runner_disconnected`, `provider_unavailable`) runs again on the same model with
/// `retries`: one execution, two attempts of the model, the `retried` transition; without
/// `retries` the same failure ends the execution.
async fn a_transient_job_failure_is_retried_on_the_same_model(sys: &Sys, tag: &str) {
    let model = "fal-ai/flux-dev";
    let (s, v) = create(
        sys,
        json!({"model": model, "input": {"prompt": format!("sim:fail_jobs=1 no retry {tag}")}}),
    )
    .await;
    assert!(s == 201 || s == 202, "{s} {v}");
    let v = settled(sys, v["id"].as_str().unwrap()).await;
    assert_eq!(v["status"], "failed", "without retries it ends: {v}");
    assert_eq!(v["error"]["class"], "provider_unavailable", "{v}");

    let (s, v) = create(
        sys,
        json!({"model": model, "retries": 1,
               "input": {"prompt": format!("sim:fail_jobs=1 retried {tag}")}}),
    )
    .await;
    assert!(s == 201 || s == 202, "{s} {v}");
    let id = v["id"].as_str().unwrap().to_string();
    let v = settled(sys, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    let chain = &v["chain"];
    assert_eq!(chain["models"], json!([model, model]), "{v}");
    let attempts = chain["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{v}");
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[0]["error"]["class"], "provider_unavailable");
    assert_eq!(attempts[1]["status"], "succeeded");
    assert_ne!(
        attempts[0]["provider_job_id"], attempts[1]["provider_job_id"],
        "a second job: {v}"
    );
    let events = sys.client.events(&id).await.unwrap();
    let retried = named(&events, "retried");
    assert_eq!(retried.len(), 1, "{events}");
    assert_eq!(retried[0]["detail"]["retried"], model, "{events}");
    assert_eq!(retried[0]["detail"]["retry"], 1, "{events}");

    // More than 3 retries are refused at create.
    let (s, p) = create(
        sys,
        json!({"model": model, "retries": 4, "input": {"prompt": "too many"}}),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(p["field"], "/retries", "{p}");
}

/// Each class a chain falls back on, from the primary's fault, and the next model succeeds:
/// one id, two attempts, the first with the class, outputs and cost from the second.
async fn each_fallback_class_moves_to_the_next_model(sys: &Sys) {
    let fal = |fault: &str| {
        json!({"model": "fal-ai/flux-dev", "fallbacks": ["black-forest-labs/flux-schnell"],
               "input": {"prompt": format!("sim:only=fal {fault} each class")}})
    };
    let cases = [
        // fal's runner_disconnected: the job failed after it was created.
        (fal("sim:fail"), "provider_unavailable"),
        // Runway's INTERNAL.BAD_OUTPUT failure of the task (the mapped step gives BFL its
        // prompt). (A create answered 500 is ambiguous, never a fallback.)
        (
            json!({"model": "runway/gen4-turbo",
                   "fallbacks": [{"model": "bfl/flux-pro-1.1", "rename": {"promptText": "prompt"}}],
                   "input": {"promptImage": "https://example.com/a.png",
                             "promptText": "sim:only=runway sim:fail each class"}}),
            "provider_transient",
        ),
        // 429 on every create: past the submit's attempts, since the chain has somewhere
        // to go (without a chain it would wait to the deadline).
        (fal("sim:rate_limit=20"), "rate_limited"),
        // A success with no output.
        (fal("sim:empty_output"), "partial_result"),
    ];
    for (body, class) in cases {
        let (s, v) = create(sys, body.clone()).await;
        assert!(s == 201 || s == 202, "{s} {v}");
        let id = v["id"].as_str().unwrap().to_string();
        let v = settled(sys, &id).await;
        assert_eq!(v["id"], id.as_str());
        assert_eq!(v["status"], "succeeded", "{class}: {v}");
        let attempts = v["chain"]["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "{class}: {v}");
        assert_eq!(attempts[0]["error"]["class"], class, "{v}");
        assert_eq!(
            attempts[1]["model"],
            body["fallbacks"][0]["model"]
                .as_str()
                .or(body["fallbacks"][0].as_str())
                .unwrap()
        );
        assert!(!v["outputs"].as_array().unwrap().is_empty(), "{v}");
        assert_eq!(
            attempts[1]["cost"]["provider_usd_micros"], v["cost"]["provider_usd_micros"],
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_each_fallback_class() {
    let sys = embedded().await;
    each_fallback_class_moves_to_the_next_model(&sys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_retries() {
    let sys = embedded().await;
    a_transient_job_failure_is_retried_on_the_same_model(&sys, "embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_retries() {
    let sys = aws().await;
    a_transient_job_failure_is_retried_on_the_same_model(&sys, "aws").await;
}

/// Health-aware routing: a chain skips a model whose capacity is taken (instead of waiting
/// for a slot) and says so in the timeline; the skipped model's provider gets no job. A
/// later attempt's callback URL names its step, and a callback for another step is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_skips_a_model_with_no_capacity_and_each_step_has_its_callback_url() {
    let h = Harness::start_with(|o| {
        o.capacity_overrides.insert("fal".into(), 1);
    })
    .await;
    let sys = Sys {
        url: h.sys.url.clone(),
        key: h.sys.dev_key.clone(),
        client: Client::new(&h.sys.url, &h.sys.dev_key).unwrap(),
        _keep: Box::new(()),
    };
    // The one fal slot, held by a long job.
    let (s, holder) = create(
        &sys,
        json!({"model": "fal-ai/flux-dev", "input": {"prompt": "sim:duration=30000 holds the slot"}}),
    )
    .await;
    assert!(s == 201 || s == 202, "{s} {holder}");
    let holder = holder["id"].as_str().unwrap().to_string();
    for _ in 0..400 {
        let v = sys.client.get(&holder).await.unwrap();
        if v["provider_job_id"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (s, v) = create(
        &sys,
        json!({"model": "fal-ai/flux-dev", "fallbacks": ["black-forest-labs/flux-schnell"],
               "input": {"prompt": "skips fal"}}),
    )
    .await;
    assert!(s == 201 || s == 202, "{s} {v}");
    let id = v["id"].as_str().unwrap().to_string();
    let v = settled(&sys, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    let attempts = v["chain"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{v}");
    assert_eq!(attempts[0]["error"]["class"], "provider_unavailable", "{v}");
    assert!(
        attempts[0]["provider_job_id"].is_null(),
        "fal was not called: {v}"
    );
    assert_eq!(attempts[1]["model"], "black-forest-labs/flux-schnell");
    let events = sys.client.events(&id).await.unwrap();
    let fell = named(&events, "fell_back")
        .first()
        .copied()
        .cloned()
        .unwrap_or_else(|| panic!("no fell_back: {events}"));
    assert_eq!(fell["detail"]["skipped"], "capacity_exhausted", "{events}");
    let sims = h.sys.simulators.as_ref().unwrap().state();
    let fal_jobs = sims
        .jobs
        .newest_first(executor_simulators::Provider::Fal)
        .into_iter()
        .filter(|j| j.input.to_string().contains("skips fal"))
        .count();
    assert_eq!(fal_jobs, 0, "a skipped model gets no job");
    // The second step's job was given the step's own callback URL.
    let job_id = attempts[1]["provider_job_id"].as_str().unwrap();
    let job = sims
        .jobs
        .get(executor_simulators::Provider::Replicate, job_id)
        .unwrap();
    let hook = job.webhook.clone().unwrap_or_default();
    assert!(
        hook.ends_with(&format!("/v1/webhooks/replicate/{id}?step=1")),
        "{hook}"
    );
    // A callback for the first step (no `step`) is refused, whatever it carries.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/webhooks/replicate/{id}", sys.url))
        .json(&json!({"id": job_id, "status": "succeeded"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let p: Value = r.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap_or("").contains("step 0"), "{p}");
    sys.client.cancel(&holder).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_callback_primary_and_cancel() {
    let sys = embedded().await;
    empty_output_falls_back(&sys, "fal-ai/flux-dev", "bfl/flux-pro-1.1", "fal").await;
    cancel_during_the_second_attempt(&sys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_polling_chain() {
    let sys = embedded().await;
    empty_output_falls_back(&sys, "bfl/flux-pro-1.1", "fal-ai/flux-dev", "bfl").await;
    content_policy_ends_it(&sys, "bfl/flux-pro-1.1", "fal-ai/flux-dev", "bfl").await;
    unmappable_chain_is_refused(&sys).await;
    a_mapped_step_runs_where_the_plain_one_is_refused(&sys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_immediate_chain() {
    let sys = embedded().await;
    empty_output_falls_back(&sys, "openai/gpt-image-1", "ideogram/ideogram-v3", "openai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_polling_chain() {
    let sys = aws().await;
    empty_output_falls_back(&sys, "bfl/flux-pro-1.1", "fal-ai/flux-dev", "bfl").await;
    content_policy_ends_it(&sys, "bfl/flux-pro-1.1", "fal-ai/flux-dev", "bfl").await;
    unmappable_chain_is_refused(&sys).await;
    a_mapped_step_runs_where_the_plain_one_is_refused(&sys).await;
}

/// An alias names a chain: `GET /v1/models` lists it, a create of it runs the chain, and it
/// takes no fallbacks of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_names_a_chain() {
    let h = Harness::start_with(|o| {
        o.lifecycle.aliases.insert(
            "image/fast".into(),
            vec!["bfl/flux-pro-1.1".into(), "fal-ai/flux-dev".into()],
        );
        o.lifecycle
            .aliases
            .insert("image/gone".into(), vec!["no/such-model".into()]);
    })
    .await;
    let sys = Sys {
        url: h.sys.url.clone(),
        key: h.sys.dev_key.clone(),
        client: Client::new(&h.sys.url, &h.sys.dev_key).unwrap(),
        _keep: Box::new(()),
    };
    let models = sys.client.models().await.unwrap();
    let aliases = models["aliases"].as_array().unwrap();
    let fast = aliases.iter().find(|a| a["id"] == "image/fast").unwrap();
    assert_eq!(
        fast["models"],
        json!(["bfl/flux-pro-1.1", "fal-ai/flux-dev"])
    );
    assert_eq!(fast["available"], true);
    let gone = aliases.iter().find(|a| a["id"] == "image/gone").unwrap();
    assert_eq!(gone["available"], false);
    let (s, v) = create(
        &sys,
        json!({"model": "image/fast", "input": {"prompt": "sim:only=bfl sim:empty_output an alias"}}),
    )
    .await;
    assert!(s == 201 || s == 202, "{s} {v}");
    let v = settled(&sys, v["id"].as_str().unwrap()).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(
        v["chain"]["models"],
        json!(["bfl/flux-pro-1.1", "fal-ai/flux-dev"])
    );
    assert_eq!(v["chain"]["fallback_used"], true, "{v}");
    let (s, p) = create(
        &sys,
        json!({"model": "image/fast", "fallbacks": ["openai/gpt-image-1"], "input": {"prompt": "x"}}),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(p["field"], "/fallbacks", "{p}");
    let (s, p) = create(
        &sys,
        json!({"model": "image/gone", "input": {"prompt": "x"}}),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    drop(h);
}
