//! The HTTP API as a contract, against a live local system (embedded backend, real HTTP):
//! list pagination stays stable while executions are inserted, tenants only list their own,
//! and every error path answers RFC 9457 problem details.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::CreateOptions;
use executor_tests::Harness;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashSet;

async fn get_json(url: &str, key: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Pages through `GET /v1/executions?{query}` with `limit`, calling `between` after each
/// page; returns the ids in order.
async fn page_all(h: &Harness, key: &str, query: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut url = format!("{}/v1/executions?limit={limit}", h.sys.url);
        if !query.is_empty() {
            url.push('&');
            url.push_str(query);
        }
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get_json(&url, key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["object"], "list");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit);
        for item in data {
            assert!(item.get("outputs").is_none(), "list items carry no outputs");
            ids.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(page["has_more"], true);
                cursor = Some(c.to_string());
            }
            None => {
                assert_eq!(page["has_more"], false);
                return ids;
            }
        }
    }
    panic!("pagination did not end");
}

async fn create(h: &Harness, model: &str, input: &Value) -> String {
    let (status, body) = h
        .client
        .create(model, input, &CreateOptions::default())
        .await
        .unwrap();
    assert!(status < 300, "{status} {body}");
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_is_stable_across_inserts_newest_first_no_duplicates_no_gaps() {
    let h = Harness::start().await;
    let (model, schema) = h.model_of_shape("polling").await;
    let input = Harness::input(&schema, "page me");
    let mut created = Vec::new();
    for _ in 0..23 {
        created.push(create(&h, &model, &input).await);
    }
    // Page with limit 5 while inserting 2 more executions between every page.
    let key = h.sys.dev_key.clone();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut inserted = Vec::new();
    loop {
        let mut url = format!("{}/v1/executions?limit=5", h.sys.url);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get_json(&url, &key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let times: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["created_at"].as_str().unwrap().to_string())
            .collect();
        let mut sorted = times.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(times, sorted, "newest first within a page");
        for item in page["data"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        for _ in 0..2 {
            inserted.push(create(&h, &model, &input).await);
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates across pages");
    let expected: HashSet<&String> = created.iter().collect();
    assert_eq!(
        unique, expected,
        "exactly the executions that existed at page one, no gaps"
    );
    // Newest first: the executions were created in order, so the listing is their reverse.
    let mut reversed = created.clone();
    reversed.reverse();
    assert_eq!(seen, reversed);
    // A fresh listing starts with what was inserted meanwhile.
    let all = page_all(&h, &key, "", 100).await;
    assert_eq!(all.len(), created.len() + inserted.len());
    assert_eq!(all[0], *inserted.last().unwrap());
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_by_status_model_error_class_and_created_range() {
    let h = Harness::start().await;
    let (polling, ps) = h.model_of_shape("polling").await;
    let (immediate, is) = h.model_of_shape("immediate").await;
    let ok = h.run(&polling, &Harness::input(&ps, "fine")).await;
    let failed = h
        .run(&immediate, &Harness::input(&is, "sim:content_policy"))
        .await;
    assert_eq!(failed["error"]["class"], "content_policy", "{failed}");
    let key = h.sys.dev_key.clone();

    let by_model = page_all(&h, &key, &format!("model={polling}"), 10).await;
    assert_eq!(by_model, vec![ok["id"].as_str().unwrap().to_string()]);
    let by_provider = page_all(
        &h,
        &key,
        &format!("provider={}", failed["provider"].as_str().unwrap()),
        10,
    )
    .await;
    assert!(by_provider.contains(&failed["id"].as_str().unwrap().to_string()));
    let by_class = page_all(&h, &key, "error_class=content_policy", 10).await;
    assert_eq!(by_class, vec![failed["id"].as_str().unwrap().to_string()]);
    assert!(
        page_all(&h, &key, "error_class=timeout", 10)
            .await
            .is_empty()
    );
    let status = failed["status"].as_str().unwrap();
    let by_status = page_all(&h, &key, &format!("status=queued,{status}"), 10).await;
    assert!(by_status.contains(&failed["id"].as_str().unwrap().to_string()));
    assert!(page_all(&h, &key, "status=starting", 10).await.is_empty());

    // Created range: everything is after 2020 and before 2100, nothing before 2020.
    let both = page_all(
        &h,
        &key,
        "created_after=2020-01-01T00:00:00Z&created_before=2100-01-01T00:00:00Z",
        10,
    )
    .await;
    assert_eq!(both.len(), 2);
    assert!(
        page_all(&h, &key, "created_before=2020-01-01T00:00:00Z", 10)
            .await
            .is_empty()
    );
    // The failed one was created after the successful one finished.
    let after = page_all(
        &h,
        &key,
        &format!("created_after={}", failed["created_at"].as_str().unwrap()),
        10,
    )
    .await;
    assert_eq!(after, vec![failed["id"].as_str().unwrap().to_string()]);
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_lists_and_reads_only_its_own_executions() {
    let h = Harness::start().await;
    let other_key = h.sys.add_tenant_key("acme").await.unwrap();
    let (model, schema) = h.model_of_shape("polling").await;
    let input = Harness::input(&schema, "mine");
    let mine: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(create(&h, &model, &input).await);
        }
        v
    };
    let other_client = executor_cli::client::Client::new(&h.sys.url, &other_key).unwrap();
    let (status, theirs) = other_client
        .create(&model, &input, &CreateOptions::default())
        .await
        .unwrap();
    assert!(status < 300);
    let theirs = theirs["id"].as_str().unwrap().to_string();

    let dev_list = page_all(&h, &h.sys.dev_key, "", 2).await;
    let mut expected = mine.clone();
    expected.reverse();
    assert_eq!(dev_list, expected);
    assert_eq!(page_all(&h, &other_key, "", 2).await, vec![theirs.clone()]);
    // Filters never widen the scope.
    assert_eq!(
        page_all(&h, &other_key, &format!("model={model}"), 10).await,
        vec![theirs.clone()]
    );
    // Another tenant's execution is a 404, not a 403.
    let (status, body) = get_json(
        &format!("{}/v1/executions/{}", h.sys.url, mine[0]),
        &other_key,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["type"], "https://executor.dev/problems/not-found");
    h.sys.stop().await;
}

/// Sends a request and asserts a problem+json answer of `status`; returns the response
/// headers and body.
async fn problem(
    method: Method,
    url: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    status: u16,
) -> (reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().request(method.clone(), url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.unwrap();
    let got = resp.status().as_u16();
    let h = resp.headers().clone();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "{method} {url}: {text}");
    assert_eq!(
        h.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{method} {url}: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    for k in ["type", "title", "detail"] {
        assert!(v[k].is_string(), "{k} missing in {v}");
    }
    assert_eq!(v["status"], status, "{v}");
    (h, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_path_is_problem_json() {
    let h = Harness::start_with(|o| o.api.max_body_bytes = 4096).await;
    let url = h.sys.url.clone();
    let key = h.sys.dev_key.clone();
    let k = Some(key.as_str());
    let json_ct = [("content-type", "application/json")];
    let (model, schema) = h.model_of_shape("polling").await;
    let execs = format!("{url}/v1/executions");

    // Authentication.
    problem(Method::GET, &execs, None, &[], None, 401).await;
    problem(Method::GET, &execs, Some("wrong"), &[], None, 401).await;
    // The scheme is matched case-insensitively (RFC 9110): `bearer KEY` is accepted.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let resp = reqwest::Client::new()
            .get(&execs)
            .header("authorization", format!("{scheme} {key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{scheme}");
    }
    problem(
        Method::GET,
        &execs,
        None,
        &[("authorization", &format!("Basic {key}"))],
        None,
        401,
    )
    .await;
    // Bytes outside visible ASCII: the problem says so instead of "missing".
    let resp = reqwest::Client::new()
        .get(&execs)
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"Bearer k_\xfftest").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["detail"].as_str().unwrap().contains("visible ASCII"),
        "{v}"
    );
    // Malformed JSON, naming nothing but saying what is wrong.
    let (_, v) = problem(
        Method::POST,
        &execs,
        k,
        &json_ct,
        Some(b"{\"model\":".to_vec()),
        400,
    )
    .await;
    assert_eq!(v["error_class"], "validation_error");
    // Wrong type of a field: the field is named.
    let (_, v) = problem(
        Method::POST,
        &execs,
        k,
        &json_ct,
        Some(serde_json::to_vec(&json!({"model": 7})).unwrap()),
        400,
    )
    .await;
    assert_eq!(v["field"], "/model", "{v}");
    // Missing and unknown fields.
    let (_, v) = problem(Method::POST, &execs, k, &json_ct, Some(b"{}".to_vec()), 400).await;
    assert_eq!(v["field"], "/model", "{v}");
    let (_, v) = problem(
        Method::POST,
        &execs,
        k,
        &json_ct,
        Some(serde_json::to_vec(&json!({"model": model, "input": {}, "colour": 1})).unwrap()),
        400,
    )
    .await;
    assert_eq!(v["field"], "/colour", "{v}");
    // Trailing bytes after the JSON value (issue 20): refused, and nothing is created.
    let mut trailing =
        serde_json::to_vec(&json!({"model": model, "input": Harness::input(&schema, "x")}))
            .unwrap();
    trailing.extend_from_slice(b" {\"model\": 1}");
    let (_, v) = problem(Method::POST, &execs, k, &json_ct, Some(trailing), 400).await;
    assert!(v["detail"].as_str().unwrap().contains("trailing"), "{v}");
    // Unknown model and invalid input, by the model's schema.
    let (_, v) = problem(
        Method::POST,
        &execs,
        k,
        &json_ct,
        Some(serde_json::to_vec(&json!({"model": "nobody/nothing", "input": {}})).unwrap()),
        400,
    )
    .await;
    assert_eq!(v["field"], "/model", "{v}");
    let (_, v) = problem(
        Method::POST,
        &execs,
        k,
        &json_ct,
        Some(serde_json::to_vec(&json!({"model": model, "input": {"prompt": 12}})).unwrap()),
        400,
    )
    .await;
    assert!(v["field"].as_str().unwrap().starts_with("/input"), "{v}");
    // Wrong content type.
    problem(
        Method::POST,
        &execs,
        k,
        &[("content-type", "text/plain")],
        Some(b"model=x".to_vec()),
        415,
    )
    .await;
    // Body too large.
    let big = serde_json::to_vec(&json!({"model": model, "input": {"prompt": "x".repeat(10_000)}}))
        .unwrap();
    problem(Method::POST, &execs, k, &json_ct, Some(big), 413).await;
    // Unknown route, unknown execution, unknown model.
    problem(Method::GET, &format!("{url}/v2/nothing"), k, &[], None, 404).await;
    problem(
        Method::GET,
        &format!("{execs}/exe_01JZZZZZZZZZZZZZZZZZZZZZZZ"),
        k,
        &[],
        None,
        404,
    )
    .await;
    problem(
        Method::GET,
        &format!("{url}/v1/models/nobody/nothing"),
        k,
        &[],
        None,
        404,
    )
    .await;
    // Wrong method, with Allow.
    let (hdrs, _) = problem(Method::DELETE, &execs, k, &[], None, 405).await;
    let allow = hdrs.get("allow").unwrap().to_str().unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let (hdrs, _) = problem(Method::PUT, &format!("{url}/v1/models"), k, &[], None, 405).await;
    assert!(hdrs.get("allow").is_some());
    // Bad query parameters, each named as /query/NAME.
    for (q, field) in [
        ("limit=0", "/query/limit"),
        ("status=bogus", "/query/status"),
        ("cursor=zzz", "/query/cursor"),
        ("created_after=never", "/query/created_after"),
        ("color=red", "/query/color"),
    ] {
        let (_, v) = problem(Method::GET, &format!("{execs}?{q}"), k, &[], None, 400).await;
        assert_eq!(v["field"], field, "{q}: {v}");
    }
    // Idempotency key reused with another body.
    let input = Harness::input(&schema, "idem");
    let body = serde_json::to_vec(&json!({"model": model, "input": input})).unwrap();
    let resp = reqwest::Client::new()
        .post(&execs)
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("idempotency-key", "k-1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let other =
        serde_json::to_vec(&json!({"model": model, "input": Harness::input(&schema, "else")}))
            .unwrap();
    let (_, v) = problem(
        Method::POST,
        &execs,
        k,
        &[
            ("content-type", "application/json"),
            ("idempotency-key", "k-1"),
        ],
        Some(other),
        409,
    )
    .await;
    assert_eq!(v["field"], "/headers/idempotency-key");
    // A forged provider callback (to the callback-shaped model's provider).
    let (cb_model, cb_schema) = h.model_of_shape("callback").await;
    let id = resp_id(&h, &cb_model, &cb_schema).await;
    problem(
        Method::POST,
        &format!("{url}/v1/webhooks/replicate/{id}"),
        None,
        &json_ct,
        Some(b"{\"id\":\"x\",\"status\":\"succeeded\"}".to_vec()),
        401,
    )
    .await;
    h.sys.stop().await;
}

async fn resp_id(h: &Harness, model: &str, schema: &Value) -> String {
    create(h, model, &Harness::input(schema, "cb")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_answers_429_with_retry_after() {
    let h = Harness::start_with(|o| {
        o.api.rate_limit_per_second = 1;
        o.api.rate_limit_burst = 3;
    })
    .await;
    let url = format!("{}/v1/models", h.sys.url);
    let key = h.sys.dev_key.clone();
    for _ in 0..3 {
        let (status, _) = get_json(&url, &key).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (hdrs, v) = problem(Method::GET, &url, Some(&key), &[], None, 429).await;
    let retry: u64 = hdrs
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(v["type"], "https://executor.dev/problems/rate-limited");
    // Another tenant has its own bucket.
    let other = h.sys.add_tenant_key("acme").await.unwrap();
    assert_eq!(get_json(&url, &other).await.0, StatusCode::OK);
    // After Retry-After, the tenant is served again.
    tokio::time::sleep(std::time::Duration::from_secs(retry)).await;
    assert_eq!(get_json(&url, &key).await.0, StatusCode::OK);
    h.sys.stop().await;
}

/// The normalized view points at the provider's raw final response, readable once the
/// execution has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_provider_response_is_one_link_away() {
    let h = Harness::start().await;
    let id = create(&h, "runway/gen4-turbo", &json!({"promptImage": "https://example.com/f.png", "promptText": "waves sim:duration=1500"})).await;
    let (status, early) = get_json(
        &format!("{}/v1/executions/{id}/raw", h.sys.url),
        &h.sys.dev_key,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{early}");
    let view = h
        .client
        .wait_final(&id, std::time::Duration::from_secs(30), |_| {})
        .await
        .unwrap();
    let link = view["urls"]["raw"].as_str().unwrap();
    assert_eq!(link, format!("/v1/executions/{id}/raw"));
    let (status, raw) = get_json(&format!("{}{link}", h.sys.url), &h.sys.dev_key).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert_eq!(raw["object"], "raw_response");
    assert_eq!(
        raw["raw"]["status"], "SUCCEEDED",
        "Runway's own task object: {raw}"
    );
    assert_eq!(raw["raw"]["output"][0], view["outputs"][0]["url"]);
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_server_serves_the_committed_openapi_document() {
    let h = Harness::start().await;
    let resp = reqwest::get(format!("{}/openapi.json", h.sys.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let served: Value = resp.json().await.unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(served, committed);
    assert_eq!(served["openapi"], "3.1.0");
    h.sys.stop().await;
}
