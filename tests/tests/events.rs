//! Live progress: `GET /v1/executions/{id}/events` with `Accept: text/event-stream` streams the
//! timeline as Server-Sent Events until the execution is final, and `Last-Event-ID` resumes
//! after the last event seen (embedded backend, real HTTP, the simulators).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_tests::Harness;
use serde_json::Value;
use std::time::Duration;

/// (event, id, data) of every event of one SSE response, read until the server closes it.
async fn read_events(url: &str, key: &str, last: Option<&str>) -> Vec<(String, String, String)> {
    let mut req = reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .header("Accept", "text/event-stream");
    if let Some(l) = last {
        req = req.header("Last-Event-ID", l);
    }
    let mut resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the stream ends once the execution is final");
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            (!event.is_empty()).then_some((event, id, data))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_streams_until_final_and_resumes_after_the_last_event_id() {
    let h = Harness::start().await;
    let (model, schema) = h.model_of_shape("polling").await;
    let input = Harness::input(&schema, "a lighthouse sim:duration=600");
    let (status, created) = h
        .client
        .create(&model, &input, &Default::default())
        .await
        .unwrap();
    assert!(status < 300, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let url = format!("{}/v1/executions/{id}/events", h.sys.url);

    // Opened right after the create: events arrive live, then `end`, then the stream closes.
    let events = read_events(&url, &h.sys.dev_key, None).await;
    let (last_event, _, end) = events.last().unwrap();
    assert_eq!(last_event, "end", "{events:?}");
    let end: Value = serde_json::from_str(end).unwrap();
    assert_eq!(end["id"], id.as_str());
    let transitions: Vec<_> = events.iter().filter(|e| e.0 == "transition").collect();
    assert!(
        transitions.len() >= 4,
        "submit, poll(s), outcome, finalize: {events:?}"
    );
    for (i, (_, eid, data)) in transitions.iter().enumerate() {
        assert_eq!(eid, &(i + 1).to_string(), "ids are the positions, in order");
        let v: Value = serde_json::from_str(data).unwrap();
        assert!(v["at"].is_string() && v["version"].is_number(), "{v}");
    }
    // The stream says what the JSON timeline says.
    let (_, timeline) = {
        let r = reqwest::Client::new()
            .get(&url)
            .bearer_auth(&h.sys.dev_key)
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(
        timeline["data"].as_array().unwrap().len(),
        transitions.len()
    );

    // Resumed after event 2: events 3.. and the end, nothing before.
    let resumed = read_events(&url, &h.sys.dev_key, Some("2")).await;
    let ids: Vec<&str> = resumed
        .iter()
        .filter(|e| e.0 == "transition")
        .map(|e| e.1.as_str())
        .collect();
    let expected: Vec<String> = (3..=transitions.len()).map(|i| i.to_string()).collect();
    assert_eq!(ids, expected.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(resumed.last().unwrap().0, "end");

    // Another tenant's execution is not streamed: 404 problem JSON, not an empty stream.
    let other = reqwest::Client::new()
        .get(format!("{}/v1/executions/ex_nope/events", h.sys.url))
        .bearer_auth(&h.sys.dev_key)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}
