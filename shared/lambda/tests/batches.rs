//! Reruns and batches on the AWS backend (moto server: DynamoDB, S3, SQS), through the API
//! handler as API Gateway invokes it, with the event source mappings running the items:
//! the rerun links are stored in DynamoDB both ways, tenant-scoped, idempotent; a batch runs
//! its items, a retried batch creates nothing new, a batch whose item a crash left uncreated
//! completes on retry without duplicates, an invalid item creates nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{KEY, World, event, executor_api_hash, world};
use executor_lifecycle::GuardStore;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

/// The outcome of a terminal execution, whichever spelling the view uses.
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

/// An API Gateway event for any request.
fn request(
    method: &str,
    path: &str,
    query: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Value {
    let mut ev = event("api-create.json");
    ev["routeKey"] = json!(format!("{method} {path}"));
    ev["rawPath"] = json!(path);
    ev["rawQueryString"] = json!(query);
    ev["requestContext"]["http"]["method"] = json!(method);
    ev["requestContext"]["http"]["path"] = json!(path);
    ev["headers"]
        .as_object_mut()
        .unwrap()
        .remove("idempotency-key");
    match body {
        Some(b) => ev["body"] = json!(b.to_string()),
        None => {
            ev.as_object_mut().unwrap().remove("body");
        }
    }
    for (k, v) in headers {
        ev["headers"][*k] = json!(v);
    }
    ev
}

async fn call(
    w: &World,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    w.api(request(method, path, query, body, headers)).await
}

async fn all_ids(w: &World) -> Vec<String> {
    let (status, page) = call(w, "GET", "/v1/executions?limit=100", None, &[]).await;
    assert_eq!(status, 200, "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

async fn wait_terminal(w: &World, id: &str) -> Value {
    for _ in 0..300 {
        let v = w.get(id).await;
        if v["terminal"] == true {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} not terminal: {}", w.get(id).await)
}

const POLLING: &str = "fal-ai/flux-dev";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reruns_are_linked_both_ways_in_dynamodb_and_tenant_scoped() {
    let w = world().await;
    w.start_mappings();
    let id = w.create(POLLING, json!({"prompt": "aws rerun"})).await;
    let original = wait_terminal(&w, &id).await;
    assert_eq!(
        outcome(&original).as_deref(),
        Some("succeeded"),
        "{original}"
    );

    let path = format!("/v1/executions/{id}/rerun");
    let (status, rerun) = call(&w, "POST", &path, None, &[("idempotency-key", "aws-r-1")]).await;
    assert!(status == 202 || status == 201, "{status} {rerun}");
    let rerun_id = rerun["id"].as_str().unwrap().to_string();
    assert_eq!(rerun["rerun_of"], id.as_str());
    // Both links are in DynamoDB: the rerun's in its record, the original's in rerun_ids.
    let g = w.ddb.get(&id).await.unwrap().unwrap();
    assert_eq!(g.reruns, vec![rerun_id.clone()]);
    let r = w.ddb.get(&rerun_id).await.unwrap().unwrap();
    assert_eq!(r.rerun_of.as_deref(), Some(id.as_str()));
    assert_eq!(w.get(&id).await["reruns"], json!([rerun_id]));
    let done = wait_terminal(&w, &rerun_id).await;
    assert_eq!(outcome(&done).as_deref(), Some("succeeded"), "{done}");
    // A commit of the original (none happens after terminal, but a later one of the rerun
    // does) never drops the link: read it again after the rerun finished.
    assert_eq!(
        w.ddb.get(&id).await.unwrap().unwrap().reruns,
        vec![rerun_id.clone()]
    );

    // Idempotent: the same key replays, adds no link.
    let (status, replay) = call(&w, "POST", &path, None, &[("idempotency-key", "aws-r-1")]).await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["id"], rerun_id.as_str());
    // Another model the input does not fit: 422 naming the field, nothing created.
    let before = all_ids(&w).await.len();
    let body = json!({"model": "elevenlabs/eleven-multilingual-v2"});
    let (status, p) = call(
        &w,
        "POST",
        &path,
        Some(&body),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 422, "{p}");
    assert!(p["field"].as_str().unwrap().starts_with("/input"), "{p}");
    assert_eq!(all_ids(&w).await.len(), before);
    // Another tenant: 404, nothing linked.
    w.ddb
        .add_api_key("acme", &executor_api_hash("exk_acme_aws_key"))
        .await
        .unwrap();
    let (status, p) = call(
        &w,
        "POST",
        &path,
        None,
        &[("authorization", "Bearer exk_acme_aws_key")],
    )
    .await;
    assert_eq!(status, 404, "{p}");
    assert_eq!(w.ddb.get(&id).await.unwrap().unwrap().reruns.len(), 1);
    assert_ne!(KEY, "exk_acme_aws_key");
    let _ = w.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_on_aws_run_retry_without_duplicates_and_complete_after_a_crash() {
    let w = world().await;
    w.start_mappings();
    // An invalid item: 422 naming it, nothing created.
    let bad =
        json!({"model": POLLING, "items": [{"input": {"prompt": "ok"}}, {"input": {"prompt": 3}}]});
    let (status, p) = call(
        &w,
        "POST",
        "/v1/batches",
        Some(&bad),
        &[("idempotency-key", "aws-bad")],
    )
    .await;
    assert_eq!(status, 422, "{p}");
    assert!(
        p["field"].as_str().unwrap().starts_with("/items/1/input"),
        "{p}"
    );
    let too_many = json!({"model": POLLING, "items": vec![json!({"input": {"prompt": "x"}}); 101]});
    let (status, p) = call(&w, "POST", "/v1/batches", Some(&too_many), &[]).await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(p["field"], "/items");
    assert!(all_ids(&w).await.is_empty());

    let items: Vec<Value> = (0..6)
        .map(|i| json!({"input": {"prompt": format!("aws batch {i}")}}))
        .collect();
    let body = json!({"model": POLLING, "items": items});
    let (status, b) = call(
        &w,
        "POST",
        "/v1/batches",
        Some(&body),
        &[("idempotency-key", "aws-batch")],
    )
    .await;
    assert_eq!(status, 202, "{b}");
    let batch_id = b["id"].as_str().unwrap().to_string();
    let ids: Vec<String> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["execution_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 6);
    // Retried: nothing new, the same ids.
    let (status, again) = call(
        &w,
        "POST",
        "/v1/batches",
        Some(&body),
        &[("idempotency-key", "aws-batch")],
    )
    .await;
    assert_eq!(status, 200, "{again}");
    let again_ids: Vec<String> = again["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["execution_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(again_ids, ids);
    assert_eq!(all_ids(&w).await.len(), 6);

    // Progress until done.
    let mut done = Value::Null;
    for _ in 0..300 {
        let (status, v) = call(&w, "GET", &format!("/v1/batches/{batch_id}"), None, &[]).await;
        assert_eq!(status, 200, "{v}");
        if v["done"] == true {
            done = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["outcomes"], json!({"succeeded": 6}), "{done}");
    let (_, page) = call(
        &w,
        "GET",
        &format!("/v1/executions?batch_id={batch_id}"),
        None,
        &[],
    )
    .await;
    let listed: HashSet<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids.iter().cloned().collect::<HashSet<_>>());
    // Another tenant sees nothing of it.
    w.ddb
        .add_api_key("acme", &executor_api_hash("exk_acme_batch_key"))
        .await
        .unwrap();
    let (status, _) = call(
        &w,
        "GET",
        &format!("/v1/batches/{batch_id}"),
        None,
        &[("authorization", "Bearer exk_acme_batch_key")],
    )
    .await;
    assert_eq!(status, 404);

    // A crash between items, as DynamoDB would hold it: item 4's execution and its key's item
    // were never written. The batch shows it not created; the retry creates it, only it.
    let ddb = aws_sdk_dynamodb::Client::new(&w.cfg.sdk_config().await);
    for pk in [
        format!("ex#{}", ids[4]),
        format!("idem#events#{batch_id}/items/4"),
    ] {
        ddb.delete_item()
            .table_name(&w.cfg.table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk))
            .send()
            .await
            .unwrap();
    }
    let (_, partial) = call(&w, "GET", &format!("/v1/batches/{batch_id}"), None, &[]).await;
    assert_eq!(partial["counts"]["not_created"], 1, "{partial}");
    assert_eq!(partial["done"], false);
    let (status, healed) = call(
        &w,
        "POST",
        "/v1/batches",
        Some(&body),
        &[("idempotency-key", "aws-batch")],
    )
    .await;
    assert_eq!(status, 200, "{healed}");
    let healed_ids: Vec<String> = healed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["execution_id"].as_str().unwrap().to_string())
        .collect();
    for i in [0, 1, 2, 3, 5] {
        assert_eq!(healed_ids[i], ids[i]);
    }
    assert_ne!(healed_ids[4], ids[4]);
    assert_eq!(
        all_ids(&w).await.len(),
        6,
        "one new execution replaces the missing one"
    );
    let v = wait_terminal(&w, &healed_ids[4]).await;
    assert_eq!(v["batch_id"], batch_id.as_str());
    assert_eq!(v["batch_index"], 4);
    let _ = w.shutdown.send(true);
}
