//! At-least-once everywhere: every message delivered twice, and a crash between any two steps
//! of the commit protocol, must still end in exactly one terminal outcome and exactly one
//! outcome event, with no duplicate provider job unless declared `submit_ambiguous`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::CreateOptions;
use executor_lifecycle::crash::CrashPoint;
use executor_tests::{CrashOnce, DuplicatingQueue, Harness};
use std::sync::Arc;
use std::time::Duration;

async fn provider_of(h: &Harness, model: &str) -> String {
    let models = h.client.models().await.unwrap();
    models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == model)
        .unwrap()["provider"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Creates with an idempotency key, retrying while the API answers 5xx (a crash during
/// acceptance); returns the execution id.
async fn create_retrying(h: &Harness, model: &str, input: &serde_json::Value, key: &str) -> String {
    let opts = CreateOptions {
        idempotency_key: Some(key.to_string()),
        ..Default::default()
    };
    for _ in 0..5 {
        let (status, body) = h.client.create(model, input, &opts).await.unwrap();
        if status < 300 {
            return body["id"].as_str().unwrap().to_string();
        }
        assert!(status >= 500, "unexpected {status}: {body:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("create kept failing")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_delivery_of_every_message_kind() {
    let h = Harness::start_with(|o| {
        o.wrap_queue = Some(Arc::new(|q| {
            Arc::new(DuplicatingQueue(q)) as Arc<dyn executor_lifecycle::Queue>
        }));
    })
    .await;
    for shape in ["immediate", "polling", "callback"] {
        let (model, schema) = h.model_of_shape(shape).await;
        let prompt = format!("twice {shape}");
        let v = h.run(&model, &Harness::input(&schema, &prompt)).await;
        assert_eq!(v["outcome"], "succeeded", "{v:#}");
        let id = v["id"].as_str().unwrap();
        assert_eq!(h.outcome_events(id).await, 1, "one outcome event");
        assert_eq!(
            h.creates(&provider_of(&h, &model).await, &prompt),
            1,
            "one provider job"
        );
        let records = h.transitions(id).await;
        let versions: Vec<u64> = records.iter().map(|r| r.version).collect();
        assert_eq!(versions, (0..records.len() as u64).collect::<Vec<_>>());
    }
    // Let the duplicates of the last messages drain, then nothing has moved.
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_protocol_point_is_rolled_forward() {
    for point in CrashPoint::ALL {
        let crash = CrashOnce::at(&[point]);
        let c = crash.clone();
        let h = Harness::start_with(move |o| {
            o.crash = Some(c);
            for p in executor_simulators::Provider::ALL.map(|p| p.as_str()) {
                o.capacity_overrides.insert(p.into(), 50);
            }
        })
        .await;
        for shape in ["immediate", "polling", "callback"] {
            let (model, schema) = h.model_of_shape(shape).await;
            let prompt = format!("crash {point:?} {shape}");
            let input = Harness::input(&schema, &prompt);
            let id = create_retrying(&h, &model, &input, &format!("{point:?}-{shape}")).await;
            eprintln!("crash point {point:?} shape {shape} execution {id}");
            let v = h.wait(&id).await;
            let outcome = v["outcome"].as_str().unwrap();
            let class = v["error"]["class"].as_str();
            let creates = h.creates(&provider_of(&h, &model).await, &prompt);
            match (outcome, class) {
                ("succeeded", None) => {
                    assert_eq!(creates, 1, "{point:?} {shape}: one provider job")
                }
                ("failed", Some("submit_ambiguous")) => assert!(creates <= 1, "{point:?} {shape}"),
                _ => panic!("{point:?} {shape}: unexpected outcome {v:#}"),
            }
            assert_eq!(
                h.outcome_events(&id).await,
                1,
                "{point:?} {shape}: one outcome event"
            );
            let records = h.transitions(&id).await;
            assert_eq!(
                records.last().unwrap().to.as_str(),
                "finalized",
                "{point:?} {shape}"
            );
        }
        assert!(crash.fired() > 0, "{point:?} never fired");
        for p in executor_simulators::Provider::ALL.map(|p| p.as_str()) {
            let held = executor_lifecycle::InflightLimiter::inflight(h.sys.limiter.as_ref(), p)
                .await
                .unwrap();
            assert_eq!(held, 0, "{point:?}: {p} leases back to zero");
        }
        h.sys.stop().await;
    }
}
