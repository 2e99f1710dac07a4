//! MiniMax simulator: task lifecycle, file retrieval and download, and errors that arrive as
//! HTTP 200 with a non-zero `base_resp.status_code`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{client, poll_until, sim};
use executor_simulators::minimax::LOGIN_FAIL;
use serde_json::{Value, json};

const KEY: &str = "Bearer mm-test";

async fn create(base: &str, body: Value) -> Value {
    let resp = client()
        .post(format!("{base}/v1/video_generation"))
        .header("authorization", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "MiniMax answers 200, errors included");
    resp.json().await.unwrap()
}

async fn get(url: String) -> Value {
    let resp = client()
        .get(url)
        .header("authorization", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn code(v: &Value) -> i64 {
    v["base_resp"]["status_code"].as_i64().unwrap()
}

fn terminal(t: &Value) -> bool {
    matches!(t["status"].as_str(), Some("Success" | "Fail"))
}

async fn run(base: &str, task_id: &str) -> Vec<Value> {
    let url = format!("{base}/v1/query/video_generation?task_id={task_id}");
    poll_until(|| client().get(&url).header("authorization", KEY), terminal).await
}

#[tokio::test]
async fn task_succeeds_and_its_file_downloads() {
    let sim = sim().await;
    let base = sim.base_url("minimax");
    let created = create(
        &base,
        json!({"model": "MiniMax-Hailuo-02", "prompt": "a paper boat sim:duration=400",
            "duration": 6, "resolution": "1080P", "prompt_optimizer": true}),
    )
    .await;
    assert_eq!(
        created["base_resp"],
        json!({"status_code": 0, "status_msg": "success"})
    );
    let task_id = created["task_id"].as_str().unwrap().to_owned();
    assert!(task_id.len() == 15 && task_id.chars().all(|c| c.is_ascii_digit()));

    let seen = run(&base, &task_id).await;
    assert_eq!(seen[0]["status"], "Preparing");
    for status in ["Queueing", "Processing"] {
        assert!(seen.iter().any(|t| t["status"] == status), "saw {status}");
    }
    assert!(seen.iter().all(|t| code(t) == 0));
    assert!(seen[0].get("file_id").is_none());
    let done = seen.last().unwrap();
    assert_eq!(done["status"], "Success");
    assert_eq!(done["task_id"], task_id.as_str());
    assert_eq!(
        (done["video_width"].as_u64(), done["video_height"].as_u64()),
        (Some(1920), Some(1080))
    );
    let file_id = done["file_id"].as_str().unwrap();

    let file = get(format!("{base}/v1/files/retrieve?file_id={file_id}")).await;
    assert_eq!(code(&file), 0);
    // A string in the task, an integer in the file object.
    assert_eq!(
        file["file"]["file_id"].as_u64().unwrap().to_string(),
        file_id
    );
    assert_eq!(file["file"]["purpose"], "video_generation");
    assert!(file["file"]["created_at"].is_u64());
    let url = file["file"]["download_url"].as_str().unwrap();
    let video = reqwest::get(url).await.unwrap();
    assert_eq!(video.headers()["content-type"], "video/mp4");
    let bytes = video.bytes().await.unwrap();
    assert_eq!(file["file"]["bytes"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(&bytes[4..8], b"ftyp");
    assert!(
        bytes.len() > 4_000_000,
        "6 s of real-size video: {} bytes",
        bytes.len()
    );

    let stats = sim.stats().provider("minimax");
    assert_eq!((stats.creates, stats.result_fetches), (1, 1));
    assert!(stats.polls >= 3);
    assert_eq!(
        sim.stats()
            .creates_for_prompt("minimax", "a paper boat sim:duration=400"),
        1
    );
}

#[tokio::test]
async fn failed_and_empty_tasks() {
    let sim = sim().await;
    let base = sim.base_url("minimax");
    let failed = create(
        &base,
        json!({"model": "video-01", "prompt": "bad sim:fail"}),
    )
    .await;
    let last = run(&base, failed["task_id"].as_str().unwrap())
        .await
        .pop()
        .unwrap();
    assert_eq!((last["status"].as_str(), code(&last)), (Some("Fail"), 0));
    assert!(last.get("file_id").is_none());

    let empty = create(
        &base,
        json!({"model": "video-01", "prompt": "nothing sim:empty_output"}),
    )
    .await;
    let last = run(&base, empty["task_id"].as_str().unwrap())
        .await
        .pop()
        .unwrap();
    assert_eq!(last["status"], "Success");
    assert!(last.get("file_id").is_none(), "Success without a file");

    // Image to video needs no prompt.
    let i2v = create(
        &base,
        json!({"model": "I2V-01", "first_frame_image": "https://example.com/a.png"}),
    )
    .await;
    assert_eq!(code(&i2v), 0);
}

#[tokio::test]
async fn errors_are_http_200_with_status_codes() {
    let sim = sim().await;
    let base = sim.base_url("minimax");
    let unauth = client()
        .post(format!("{base}/v1/video_generation"))
        .json(&json!({"model": "video-01", "prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 200);
    assert_eq!(
        unauth.json::<Value>().await.unwrap(),
        json!({"base_resp": {"status_code": 1004, "status_msg": LOGIN_FAIL}})
    );
    let bad_key = client()
        .get(format!("{base}/v1/query/video_generation?task_id=1"))
        .header("authorization", "Bearer invalid-key")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 200);
    assert_eq!(code(&bad_key.json().await.unwrap()), 1004);

    let cases = [
        (json!({"prompt": "no model"}), 2013),
        (json!({"model": "video-01"}), 2013),
        (
            json!({"model": "video-01", "prompt": "x sim:invalid"}),
            2013,
        ),
        (
            json!({"model": "video-01", "prompt": "x sim:insufficient_quota"}),
            1008,
        ),
        (
            json!({"model": "video-01", "prompt": "x sim:content_policy"}),
            1026,
        ),
    ];
    for (body, expected) in cases {
        let answer = create(&base, body.clone()).await;
        assert_eq!(code(&answer), expected, "{body}");
        assert!(answer.get("task_id").is_none());
        assert!(answer["base_resp"]["status_msg"].is_string());
    }
    let busy = json!({"model": "video-01", "prompt": "busy sim:rate_limit=1"});
    assert_eq!(code(&create(&base, busy.clone()).await), 1002);
    assert_eq!(code(&create(&base, busy).await), 0);
    let flaky = json!({"model": "video-01", "prompt": "flaky sim:server_error=1"});
    assert_eq!(code(&create(&base, flaky.clone()).await), 1024);
    assert_eq!(code(&create(&base, flaky).await), 0);

    let unknown = get(format!("{base}/v1/query/video_generation?task_id=123")).await;
    assert_eq!(code(&unknown), 2013);
    let no_file = get(format!("{base}/v1/files/retrieve?file_id=123")).await;
    assert_eq!(code(&no_file), 2013);

    let stats = sim.stats().provider("minimax");
    assert_eq!((stats.creates, stats.create_rejections), (2, 8));
}

#[tokio::test]
async fn poll_errors_are_code_1000_and_files_wait_for_success() {
    let sim = sim().await;
    let base = sim.base_url("minimax");
    let created = create(
        &base,
        json!({"model": "video-01", "prompt": "flaky reads sim:poll_error=2 sim:duration=300"}),
    )
    .await;
    let task_id = created["task_id"].as_str().unwrap().to_owned();
    let url = format!("{base}/v1/query/video_generation?task_id={task_id}");
    for _ in 0..2 {
        let answer = get(url.clone()).await;
        assert_eq!(code(&answer), 1000);
        assert!(answer.get("status").is_none());
    }
    let answer = get(url).await;
    assert_eq!(code(&answer), 0);
    assert!(!terminal(&answer));
    // The file of a task still running does not exist yet.
    let fid = task_id.parse::<u64>().unwrap() + 100_000_000_000_000;
    let early = get(format!("{base}/v1/files/retrieve?file_id={fid}")).await;
    assert_eq!(code(&early), 2013);
    let done = run(&base, &task_id).await.pop().unwrap();
    assert_eq!(done["file_id"], fid.to_string());
    assert_eq!(sim.stats().provider("minimax").inflight, 0);
}
