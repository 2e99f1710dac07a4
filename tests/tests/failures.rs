//! Failure piles: a mixed batch of executions groups into the expected piles, most frequent
//! first, per tenant, through the API and the CLI's rendering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_tests::Harness;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_groups_into_the_expected_piles() {
    let h = Harness::start().await;
    let (immediate, is) = h.model_of_shape("immediate").await;
    let (polling, ps) = h.model_of_shape("polling").await;
    let mut runs = Vec::new();
    for (model, schema, prompt, n) in [
        (&immediate, &is, "sim:content_policy", 3),
        (&immediate, &is, "sim:invalid", 2),
        (&polling, &ps, "sim:fail", 2),
        (&polling, &ps, "fine", 2),
        (&immediate, &is, "fine", 1),
    ] {
        for i in 0..n {
            let v = h
                .run(model, &Harness::input(schema, &format!("{prompt} #{i}")))
                .await;
            runs.push(v);
        }
    }
    let failed: Vec<&Value> = runs.iter().filter(|v| v["error"].is_object()).collect();
    assert_eq!(failed.len(), 7, "{runs:?}");

    let piles = h.client.failures("1h", None, None).await.unwrap();
    assert_eq!(piles["failed"], 7, "{piles}");
    assert_eq!(piles["truncated"], false);
    let data = piles["data"].as_array().unwrap();
    let summary: Vec<(String, String, u64)> = data
        .iter()
        .map(|p| {
            (
                p["error_class"].as_str().unwrap().to_string(),
                p["model"].as_str().unwrap().to_string(),
                p["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(data.len(), 3, "{summary:?}\n{piles}");
    assert_eq!(
        summary[0],
        ("content_policy".to_string(), immediate.clone(), 3),
        "most frequent first: {summary:?}"
    );
    assert!(summary.contains(&("validation_error".to_string(), immediate.clone(), 2)));
    let fal = summary.iter().find(|s| s.1 == polling).unwrap();
    assert_eq!(fal.2, 2, "{summary:?}");
    // Each pile names an example that is one of its executions and explains itself.
    for p in data {
        let id = p["example_execution_id"].as_str().unwrap();
        let ex = failed.iter().find(|v| v["id"] == id).unwrap();
        assert_eq!(ex["error"]["class"], p["error_class"]);
        assert!(p["first_seen"].as_str().unwrap() <= p["last_seen"].as_str().unwrap());
        assert!(
            !h.client.events(id).await.unwrap()["data"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
    // Filters.
    let only_polling = h.client.failures("1h", Some(&polling), None).await.unwrap();
    assert_eq!(only_polling["data"].as_array().unwrap().len(), 1);
    assert_eq!(only_polling["failed"], 2);
    // Rendering for the terminal.
    let text = executor_cli::render::failures(&piles, false);
    assert!(text.starts_with("7 failed or degraded since"), "{text}");
    assert!(
        text.contains("content_policy") && text.contains(&immediate),
        "{text}"
    );
    // Another tenant has no failures.
    let other = h.sys.add_tenant_key("acme").await.unwrap();
    let other = executor_cli::client::Client::new(&h.sys.url, &other).unwrap();
    let none = other.failures("24h", None, None).await.unwrap();
    assert_eq!(none["failed"], 0);
    assert!(none["data"].as_array().unwrap().is_empty());
    // A bad window is a 400 naming it.
    let err = h.client.failures("forever", None, None).await.unwrap_err();
    assert!(
        err.to_string().contains("since must be a duration"),
        "{err}"
    );
    h.sys.stop().await;
}
