//! Reruns and batches end to end through the HTTP API on the embedded backend (issue 20,
//! items 4 and 6): a rerun is linked both ways, tenant-scoped, idempotent, validated against
//! another model; `executor failures rerun PILE` reruns a pile (dry run first); a batch runs
//! its items and reports progress, a retried batch creates nothing new, an interrupted batch
//! completes on retry without duplicates, an invalid item creates nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::reruns::{RerunAction, RerunPileOptions, rerun_pile};
use executor_lifecycle::GuardStore;
use executor_tests::Harness;
use parking_lot::Mutex;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The outcome of a terminal execution, whichever spelling the view uses (`outcome`, or the
/// terminal `status` itself).
fn outcome(v: &Value) -> Option<String> {
    v["outcome"]
        .as_str()
        .or_else(|| {
            v["status"]
                .as_str()
                .filter(|s| ["succeeded", "failed", "canceled", "timed_out"].contains(s))
        })
        .map(str::to_string)
}

async fn post(
    h: &Harness,
    key: &str,
    path: &str,
    body: Option<Value>,
    idem: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", h.sys.url))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(k) = idem {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(h: &Harness, key: &str, path: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", h.sys.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Every execution id of the dev tenant.
async fn all_ids(h: &Harness) -> Vec<String> {
    let (status, page) = get(h, &h.sys.dev_key, "/v1/executions?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["has_more"], false);
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

/// Polls a batch until every item is terminal.
async fn wait_batch(h: &Harness, id: &str) -> Value {
    for _ in 0..600 {
        let (status, b) = get(h, &h.sys.dev_key, &format!("/v1/batches/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        if b["done"] == true {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("batch {id} not done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_is_linked_both_ways_idempotent_and_tenant_scoped() {
    let h = Harness::start().await;
    let key = h.sys.dev_key.clone();
    let (model, schema) = h.model_of_shape("polling").await;
    let original = h.run(&model, &Harness::input(&schema, "rerun me")).await;
    let id = original["id"].as_str().unwrap();
    assert_eq!(
        outcome(&original).as_deref(),
        Some("succeeded"),
        "{original}"
    );

    // No body: the same request, same model.
    let (status, rerun) = post(
        &h,
        &key,
        &format!("/v1/executions/{id}/rerun"),
        None,
        Some("r-1"),
    )
    .await;
    assert!(
        status == StatusCode::ACCEPTED || status == StatusCode::CREATED,
        "{status} {rerun}"
    );
    let rerun_id = rerun["id"].as_str().unwrap().to_string();
    assert_ne!(rerun_id, id);
    assert_eq!(rerun["rerun_of"], id, "{rerun}");
    assert_eq!(rerun["model"], model);
    let done = h.wait(&rerun_id).await;
    assert_eq!(outcome(&done).as_deref(), Some("succeeded"), "{done}");
    // The same input reached the provider a second time.
    assert_eq!(
        h.creates(original["provider"].as_str().unwrap(), "rerun me"),
        2
    );
    let req_a = h.sys.engine.request(id).await.unwrap().unwrap();
    let req_b = h.sys.engine.request(&rerun_id).await.unwrap().unwrap();
    assert_eq!(req_a.input, req_b.input);
    assert_eq!(req_a.tenant, req_b.tenant);
    assert_eq!(req_a.webhook_url, req_b.webhook_url);
    // Linked both ways.
    let again = h.client.get(id).await.unwrap();
    assert_eq!(again["reruns"], json!([rerun_id]), "{again}");
    // The same Idempotency-Key replays the same rerun and adds no link.
    let (status, replay) = post(
        &h,
        &key,
        &format!("/v1/executions/{id}/rerun"),
        None,
        Some("r-1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(replay["id"], rerun_id.as_str());
    // ... and with another request (another model) it is a 409.
    let (status, p) = post(
        &h,
        &key,
        &format!("/v1/executions/{id}/rerun"),
        Some(json!({"model": "openai/gpt-image-1"})),
        Some("r-1"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert_eq!(
        h.client.get(id).await.unwrap()["reruns"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The listing shows the links too.
    let (_, page) = get(&h, &key, "/v1/executions?limit=10").await;
    let listed = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(listed["reruns"], json!([rerun_id]));

    // Another tenant: the execution does not exist for it.
    let other = h.sys.add_tenant_key("acme").await.unwrap();
    let (status, p) = post(
        &h,
        &other,
        &format!("/v1/executions/{id}/rerun"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
    assert_eq!(p["status"], 404);
    let (status, _) = post(
        &h,
        &key,
        "/v1/executions/ex_00000000000000000000000000/rerun",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        h.client.get(id).await.unwrap()["reruns"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_on_another_model_is_validated_against_it() {
    let h = Harness::start().await;
    let key = h.sys.dev_key.clone();
    // A prompt model (the reference polling model takes an image and `promptText`).
    let model = "fal-ai/flux-dev".to_string();
    let original = h.run(&model, &json!({"prompt": "other model"})).await;
    let id = original["id"].as_str().unwrap();
    let path = format!("/v1/executions/{id}/rerun");

    // An unknown model: 422 naming /model, nothing created.
    let before = all_ids(&h).await.len();
    let (status, p) = post(
        &h,
        &key,
        &path,
        Some(json!({"model": "nobody/nothing"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["field"], "/model", "{p}");
    // A model whose schema the input does not fit (ElevenLabs wants `text`): 422 naming the
    // field.
    let (status, p) = post(
        &h,
        &key,
        &path,
        Some(json!({"model": "elevenlabs/eleven-multilingual-v2"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(p["field"].as_str().unwrap().starts_with("/input"), "{p}");
    assert_eq!(p["error_class"], "validation_error");
    // A body that is not the rerun body: 400.
    let (status, p) = post(&h, &key, &path, Some(json!({"modle": "x"})), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    assert_eq!(all_ids(&h).await.len(), before, "nothing created");

    // A model the prompt fits: it runs there, linked.
    let models = h.client.models().await.unwrap();
    let mut on_other = None;
    for m in models["data"].as_array().unwrap() {
        let other = m["id"].as_str().unwrap();
        if other == model || m["input_schema"]["required"] != json!(["prompt"]) {
            continue;
        }
        let (status, v) = post(&h, &key, &path, Some(json!({"model": other})), None).await;
        if status.is_success() {
            on_other = Some(v);
            break;
        }
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }
    let v = on_other.expect("some prompt model takes the input");
    assert_ne!(v["model"], model.as_str());
    assert_eq!(v["rerun_of"], id);
    let done = h.wait(v["id"].as_str().unwrap()).await;
    assert!(outcome(&done).is_some(), "{done}");
    assert_eq!(h.client.get(id).await.unwrap()["reruns"], json!([v["id"]]));
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_rerun_reruns_a_pile_after_a_dry_run_and_each_execution_once() {
    let h = Harness::start().await;
    let (immediate, is) = h.model_of_shape("immediate").await;
    let mut failed = Vec::new();
    for i in 0..2 {
        let v = h
            .run(
                &immediate,
                &Harness::input(&is, &format!("sim:content_policy pile #{i}")),
            )
            .await;
        assert_eq!(v["error"]["class"], "content_policy", "{v}");
        failed.push(v["id"].as_str().unwrap().to_string());
    }
    let ok = h.run(&immediate, &Harness::input(&is, "fine")).await;
    let piles = h.client.failures("1h", None, None).await.unwrap();
    let pile = piles["data"].as_array().unwrap()[0].clone();
    assert_eq!(pile["count"], 2, "{piles}");
    let pile_id = pile["id"].as_str().unwrap().to_string();
    assert!(pile_id.starts_with("pile_"), "{pile}");
    let text = executor_cli::render::failures(&piles, false);
    assert!(text.contains(&pile_id), "{text}");
    // The pile's members, through the API.
    let members = h
        .client
        .failure_pile(&pile_id, "1h", None, None)
        .await
        .unwrap();
    assert_eq!(members["kind"], "failed");
    let ids: HashSet<String> = members["execution_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, failed.iter().cloned().collect::<HashSet<_>>());
    let (status, _) = get(&h, &h.sys.dev_key, "/v1/failures/pile_000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Dry run: lists both, creates nothing.
    let before = all_ids(&h).await.len();
    let opts = RerunPileOptions {
        since: "1h".into(),
        dry_run: true,
        ..Default::default()
    };
    let dry = rerun_pile(&h.client, &pile_id, &opts).await.unwrap();
    assert_eq!(dry.lines.len(), 2, "{dry:?}");
    assert!(
        dry.lines
            .iter()
            .all(|l| l.action == RerunAction::WouldRerun),
        "{dry:?}"
    );
    assert!(
        dry.render().contains("would be rerun; nothing was changed"),
        "{}",
        dry.render()
    );
    assert_eq!(all_ids(&h).await.len(), before);

    // For real: both rerun, linked.
    let opts = RerunPileOptions {
        since: "1h".into(),
        ..Default::default()
    };
    let report = rerun_pile(&h.client, &pile_id, &opts).await.unwrap();
    assert_eq!(report.failed(), 0, "{report:?}");
    let mut reruns = Vec::new();
    for l in &report.lines {
        let RerunAction::Rerun { rerun_id } = &l.action else {
            panic!("{report:?}")
        };
        let v = h.wait(rerun_id).await;
        assert_eq!(v["rerun_of"], l.execution_id.as_str());
        // The simulator fails the same prompt the same way.
        assert_eq!(v["error"]["class"], "content_policy");
        reruns.push(rerun_id.clone());
    }
    assert_eq!(all_ids(&h).await.len(), before + 2);
    // Again: the originals are skipped (rerun already); their failed reruns are the pile's
    // new members and are rerun once each. No execution ever has two reruns.
    let again = rerun_pile(&h.client, &pile_id, &opts).await.unwrap();
    assert_eq!(again.lines.len(), 4, "{again:?}");
    for l in &again.lines {
        if failed.contains(&l.execution_id) {
            assert!(
                matches!(&l.action, RerunAction::AlreadyRerun { reruns } if reruns.len() == 1),
                "{again:?}"
            );
        } else {
            assert!(reruns.contains(&l.execution_id));
            assert!(matches!(l.action, RerunAction::Rerun { .. }), "{again:?}");
        }
    }
    for id in all_ids(&h).await {
        let v = h.client.get(&id).await.unwrap();
        assert!(v["reruns"].as_array().map_or(0, Vec::len) <= 1, "{v}");
    }
    // The successful execution was never part of it.
    assert!(h.client.get(ok["id"].as_str().unwrap()).await.unwrap()["reruns"].is_null());
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_its_items_and_reports_progress_counts_and_outcomes() {
    let h = Harness::start().await;
    let key = h.sys.dev_key.clone();
    let (polling, ps) = h.model_of_shape("polling").await;
    let (immediate, is) = h.model_of_shape("immediate").await;
    let body = json!({
        "model": polling,
        "items": [
            {"input": Harness::input(&ps, "batch a")},
            {"input": Harness::input(&ps, "batch b sim:fail")},
            {"model": immediate, "input": Harness::input(&is, "batch c")},
        ],
    });
    let (status, b) = post(&h, &key, "/v1/batches", Some(body.clone()), Some("batch-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{b}");
    let batch_id = b["id"].as_str().unwrap().to_string();
    assert!(batch_id.starts_with("bat_"));
    assert_eq!(b["object"], "batch");
    assert_eq!(b["total"], 3);
    let ids: Vec<String> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["execution_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(b["items"][2]["model"], immediate.as_str());

    let done = wait_batch(&h, &batch_id).await;
    assert_eq!(done["terminal"], 3, "{done}");
    assert_eq!(
        done["outcomes"],
        json!({"failed": 1, "succeeded": 2}),
        "{done}"
    );
    let counted: u64 = done["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 3, "{done}");
    for (i, item) in done["items"].as_array().unwrap().iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["execution_id"], ids[i].as_str());
        let v = h.wait(&ids[i]).await;
        assert_eq!(v["batch_id"], batch_id.as_str(), "{v}");
        assert_eq!(v["batch_index"], i);
        assert_eq!(outcome(&v), item["outcome"].as_str().map(str::to_string));
    }
    assert_eq!(done["items"][1]["outcome"], "failed");
    assert!(done["items"][1]["error_class"].is_string(), "{done}");
    // Cost, once every item is finalized, is the sum of the items'.
    let done = wait_batch(&h, &batch_id).await;
    let mut sum = 0;
    for id in &ids {
        sum += h.client.get(id).await.unwrap()["cost"]["provider_usd_micros"]
            .as_i64()
            .unwrap_or(0);
    }
    assert_eq!(done["cost_usd_micros"], sum, "{done}");

    // The list filter.
    let (status, page) = get(&h, &key, &format!("/v1/executions?batch_id={batch_id}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: HashSet<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids.iter().cloned().collect::<HashSet<_>>());
    let (_, page) = get(
        &h,
        &key,
        &format!("/v1/executions?batch_id={batch_id}&model={immediate}"),
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    let (_, page) = get(
        &h,
        &key,
        &format!("/v1/executions?batch_id={batch_id}&limit=2"),
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], true);
    let next = page["next_cursor"].as_str().unwrap();
    let (_, rest) = get(
        &h,
        &key,
        &format!("/v1/executions?batch_id={batch_id}&limit=2&cursor={next}"),
    )
    .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1, "{rest}");
    let (_, none) = get(
        &h,
        &key,
        "/v1/executions?batch_id=bat_00000000000000000000000000",
    )
    .await;
    assert_eq!(none["data"], json!([]));

    // Another tenant sees neither the batch nor its items.
    let other = h.sys.add_tenant_key("acme").await.unwrap();
    let (status, _) = get(&h, &other, &format!("/v1/batches/{batch_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = get(&h, &other, &format!("/v1/executions?batch_id={batch_id}")).await;
    assert_eq!(page["data"], json!([]));
    let (status, _) = get(&h, &key, "/v1/batches/bat_nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_creates_nothing_new_and_answers_the_same_ids() {
    let h = Harness::start().await;
    let key = h.sys.dev_key.clone();
    let (polling, ps) = h.model_of_shape("polling").await;
    let items: Vec<Value> = (0..5)
        .map(|i| json!({"input": Harness::input(&ps, &format!("retry {i}"))}))
        .collect();
    let body = json!({"model": polling, "items": items});
    let (status, first) = post(
        &h,
        &key,
        "/v1/batches",
        Some(body.clone()),
        Some("same-key"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let ids_of = |b: &Value| -> Vec<String> {
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["execution_id"].as_str().unwrap().to_string())
            .collect()
    };
    for _ in 0..3 {
        let (status, again) = post(
            &h,
            &key,
            "/v1/batches",
            Some(body.clone()),
            Some("same-key"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["id"], first["id"]);
        assert_eq!(ids_of(&again), ids_of(&first));
    }
    assert_eq!(all_ids(&h).await.len(), 5, "nothing new");
    // The key with another body: 409, nothing created.
    let other = json!({"model": polling, "items": [{"input": Harness::input(&ps, "other")}]});
    let (status, p) = post(&h, &key, "/v1/batches", Some(other), Some("same-key")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    // A create with the batch's key is another request: 409 too.
    let (status, _) = h
        .client
        .create(
            &polling,
            &Harness::input(&ps, "x"),
            &executor_cli::client::CreateOptions {
                idempotency_key: Some("same-key".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(status, 409);
    assert_eq!(all_ids(&h).await.len(), 5);
    // Without a key, each request is a batch of its own.
    let (status, b2) = post(&h, &key, "/v1/batches", Some(body), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_ne!(b2["id"], first["id"]);
    assert_eq!(all_ids(&h).await.len(), 10);
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_item_or_too_many_items_create_nothing() {
    let h = Harness::start().await;
    let key = h.sys.dev_key.clone();
    let (polling, ps) = h.model_of_shape("polling").await;
    let good = json!({"input": Harness::input(&ps, "fine")});
    let cases = [
        (
            json!({"model": polling, "items": [good, {"input": {}}, good]}),
            422,
            "/items/1/input",
        ),
        (
            json!({"model": polling, "items": [good, {"input": {"prompt": 7}}]}),
            422,
            "/items/1/input",
        ),
        (json!({"items": [good]}), 422, "/items/0/model"),
        (
            json!({"model": polling, "items": [good, {"model": "nobody/nothing", "input": {}}]}),
            422,
            "/items/1/model",
        ),
        (json!({"model": polling, "items": []}), 422, "/items"),
        (
            json!({"model": polling, "items": vec![good.clone(); 101]}),
            422,
            "/items",
        ),
        (
            json!({"model": polling, "items": [good], "extra": 1}),
            400,
            "/extra",
        ),
        (json!({"model": polling}), 400, "/items"),
    ];
    for (body, code, field) in cases {
        let (status, p) = post(
            &h,
            &key,
            "/v1/batches",
            Some(body.clone()),
            Some(&ulid::Ulid::new().to_string()),
        )
        .await;
        assert_eq!(status.as_u16(), code, "{body} -> {p}");
        let f = p["field"].as_str().unwrap_or("");
        assert!(f.starts_with(field), "{field} vs {p}");
        assert!(p["detail"].as_str().unwrap().len() > 10, "{p}");
    }
    assert!(all_ids(&h).await.is_empty(), "nothing was created");
    // Exactly 100 is fine.
    let (status, b) = post(&h, &key, "/v1/batches", Some(json!({"model": polling, "items": vec![json!({"input": Harness::input(&ps, "hundred sim:duration=10")}); 100]})), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["total"], 100);
    assert_eq!(all_ids(&h).await.len(), 100);
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_interrupted_mid_way_completes_on_retry_without_duplicates() {
    let armed = Arc::new(Mutex::new(true));
    let flag = armed.clone();
    let h = Harness::start_with(move |o| {
        // Item 2's insert fails while armed, as a crash of the API between two items would
        // leave the batch.
        o.wrap_guards = Some(Arc::new(move |inner| {
            let flag = flag.clone();
            let mut g = executor_tests::faulty::FaultyGuards::new(inner);
            g.fail_insert = Arc::new(move |guard: &executor_lifecycle::Guard| {
                *flag.lock() && guard.batch.as_ref().is_some_and(|b| b.index == 2)
            });
            Arc::new(g) as Arc<dyn GuardStore>
        }));
    })
    .await;
    let key = h.sys.dev_key.clone();
    let (polling, ps) = h.model_of_shape("polling").await;
    let items: Vec<Value> = (0..12)
        .map(|i| json!({"input": Harness::input(&ps, &format!("crash {i}"))}))
        .collect();
    let body = json!({"model": polling, "items": items});
    let (status, p) = post(&h, &key, "/v1/batches", Some(body.clone()), Some("crashy")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{p}");
    let partial = all_ids(&h).await;
    assert!(partial.len() < 12, "not every item: {}", partial.len());
    let piles_of_index: HashSet<u64> = {
        let mut s = HashSet::new();
        for id in &partial {
            s.insert(
                h.client.get(id).await.unwrap()["batch_index"]
                    .as_u64()
                    .unwrap(),
            );
        }
        s
    };
    assert!(!piles_of_index.contains(&2));

    // The retry (the crash is over) completes it: every item once.
    *armed.lock() = false;
    let (status, b) = post(&h, &key, "/v1/batches", Some(body.clone()), Some("crashy")).await;
    assert_eq!(status, StatusCode::OK, "{b}");
    let ids: Vec<String> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["execution_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 12);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 12);
    for id in &partial {
        assert!(
            ids.contains(id),
            "an item created before the crash is kept: {id}"
        );
    }
    let all = all_ids(&h).await;
    assert_eq!(all.len(), 12, "no duplicates");
    let (_, again) = get(
        &h,
        &key,
        &format!("/v1/batches/{}", b["id"].as_str().unwrap()),
    )
    .await;
    assert!(again["counts"].get("not_created").is_none(), "{again}");
    let done = wait_batch(&h, b["id"].as_str().unwrap()).await;
    assert_eq!(done["outcomes"]["succeeded"], 12, "{done}");
    for (i, id) in ids.iter().enumerate() {
        let v = h.client.get(id).await.unwrap();
        assert_eq!(v["batch_index"], i);
    }
    h.sys.stop().await;
}
