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
    let fell: Vec<&Value> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "fell_back")
        .collect();
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
