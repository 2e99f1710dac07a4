//! `executor dev` serves Prometheus metrics at `GET /metrics`, fed by every committed
//! transition: per action, per provider call (status, latency), per failure class.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_tests::Harness;

fn value_of(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_transitions_calls_and_failures() {
    let h = Harness::start().await;
    let (immediate, is) = h.model_of_shape("immediate").await;
    let (polling, ps) = h.model_of_shape("polling").await;
    h.run(&immediate, &Harness::input(&is, "ok")).await;
    h.run(&polling, &Harness::input(&ps, "ok")).await;
    h.run(&immediate, &Harness::input(&is, "sim:content_policy"))
        .await;
    let resp = reqwest::get(format!("{}/metrics", h.sys.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = resp.text().await.unwrap();
    // Three acceptances, each finalized.
    assert_eq!(
        value_of(&text, "executor_transitions_total{action=\"accept\""),
        3.0,
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            "executor_transitions_total{action=\"finalize\",event=\"delivered\""
        ),
        3.0,
        "{text}"
    );
    let imm_provider = immediate.split('/').next().unwrap();
    assert!(
        text.contains(&format!(
            "executor_provider_calls_total{{provider=\"{imm_provider}\""
        )),
        "{text}"
    );
    assert!(
        text.contains("executor_provider_call_seconds_bucket"),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            "executor_failures_total{provider=\"openai\",error_class=\"content_policy\"}"
        ),
        1.0,
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
    h.sys.stop().await;
}
