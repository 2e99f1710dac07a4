//! The kill test: `executor dev` under a steady load is killed with SIGKILL several times and
//! restarted on the same data directory; every execution accepted with a 2xx before a kill
//! reaches exactly one terminal outcome.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_cli::client::{Client, CreateOptions};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a process and returns it with the stdout lines it printed until `until` matched.
fn start(mut cmd: Command, until: &str) -> (Child, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            panic!("process ended before printing {until:?}: {lines:?}");
        }
        let done = line.contains(until);
        lines.push(line.trim().to_string());
        if done {
            break;
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, lines)
}

fn dev(
    bin: &str,
    data: &std::path::Path,
    port: u16,
    sim_env: &[(String, String)],
) -> (Child, String) {
    let mut cmd = Command::new(bin);
    cmd.args([
        "dev",
        "--no-simulators",
        "--time-scale",
        "0.05",
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data)
    .env(
        "EXECUTOR_BUNDLES_DIR",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../bundles"),
    );
    for (k, v) in sim_env {
        cmd.env(k, v);
    }
    for k in [
        "OPENAI_API_KEY",
        "RUNWAYML_API_SECRET",
        "REPLICATE_API_TOKEN",
        "FAL_KEY",
        "STABILITY_API_KEY",
        "ELEVENLABS_API_KEY",
        "LUMAAI_API_KEY",
        "MINIMAX_API_KEY",
    ] {
        cmd.env(k, "sim-key");
    }
    let (child, lines) = start(cmd, "dev API key");
    let key = lines
        .last()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    (child, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_executions_survive_sigkill() {
    let bin = env!("CARGO_BIN_EXE_executor");
    let sim_port = free_port();
    let mut sim_cmd = Command::new(bin);
    sim_cmd.args(["simulators", "--bind", &format!("127.0.0.1:{sim_port}")]);
    let (mut sims, sim_lines) = start(sim_cmd, "FAL_WEBHOOK_PUBLIC_KEYS");
    let sim_env: Vec<(String, String)> = sim_lines
        .iter()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();

    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let models = [
        "runway/gen4-turbo",
        "black-forest-labs/flux-schnell",
        "fal-ai/flux-dev",
        "openai/gpt-image-1",
    ];
    let mut accepted: Vec<String> = Vec::new();
    let mut key = String::new();
    for round in 0..4 {
        let (mut child, k) = dev(bin, data.path(), port, &sim_env);
        key = k;
        let client = Client::new(&url, &key).unwrap();
        if round == 3 {
            // Last life: no kill; let everything drain.
            let until = Instant::now() + Duration::from_secs(60);
            for id in &accepted {
                loop {
                    let v = client.get(id).await.unwrap();
                    if v["status"] == "finalized" || v["status"] == "finalized_degraded" {
                        break;
                    }
                    assert!(Instant::now() < until, "{id} stuck: {v}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            for id in &accepted {
                let events = client.events(id).await.unwrap();
                let terminal = events["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| {
                        ["succeeded", "failed", "canceled", "timed_out"]
                            .contains(&e["to"].as_str().unwrap_or(""))
                    })
                    .filter(|e| e["from"] != e["to"])
                    .count();
                assert_eq!(
                    terminal, 1,
                    "{id}: exactly one terminal transition: {events}"
                );
                let v = client.get(id).await.unwrap();
                assert_eq!(v["outcome"], "succeeded", "{id}: {v}");
            }
            child.kill().unwrap();
            let _ = child.wait();
            break;
        }
        // Steady load for ~1.5 s, then SIGKILL mid-flight.
        let started = Instant::now();
        let mut i = 0;
        while started.elapsed() < Duration::from_millis(1500) {
            let model = models[i % models.len()];
            let input = match model {
                "runway/gen4-turbo" => {
                    json!({"promptImage": "https://example.com/a.png", "promptText": format!("kill {round} {i} sim:duration=800")})
                }
                _ => json!({"prompt": format!("kill {round} {i} sim:duration=800")}),
            };
            if let Ok((status, body)) = client
                .create(model, &input, &CreateOptions::default())
                .await
                && status < 300
            {
                accepted.push(body["id"].as_str().unwrap().to_string());
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
    }
    assert!(accepted.len() > 20, "load was applied: {}", accepted.len());
    let _ = key;
    sims.kill().unwrap();
    let _ = sims.wait();
}
