//! The fuzz targets' entry points (fuzz/fuzz_targets, run by cargo-fuzz on nightly) replayed on
//! stable: seeds from the repository (bundles, their templates, webhook samples with the
//! published Standard Webhooks vector, API bodies and queries) and seeded mutations of them
//! (bit flips, insertions, deletions, splices, duplicated ranges, hostile tokens) go through
//! the same functions. A panic fails the test and prints the seed and input to replay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

const TOKENS: &[&[u8]] = &[
    b"{{",
    b"}}",
    b"{%",
    b"%}",
    b"|",
    b"(",
    b")",
    b"[",
    b"]",
    b"\"",
    b"'",
    b"\\",
    b"\0",
    b"\xff\xfe",
    b"\n\n",
    b": ",
    b"- ",
    b"&a",
    b"*a",
    b"!!",
    b"9999999999999999999999",
    b"-1",
    b"1e999",
    b"null",
    b"[[[[[[[[[[[[[[[[",
    b"{\"a\":{\"a\":{\"a\":",
    b"%",
    b"%%",
    b"v1,",
    b"whsec_",
    b"http://[::1]/",
    b"http://169.254.169.254/",
    b"\xe2\x80\xae",
];

fn mutate(seed: &[u8], other: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..rng.random_range(1..8) {
        let at = if d.is_empty() {
            0
        } else {
            rng.random_range(0..=d.len())
        };
        match rng.random_range(0..6) {
            0 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                d.splice(at..at, t.iter().copied());
            }
            2 if !d.is_empty() => {
                let end = (at + rng.random_range(1..64)).min(d.len());
                d.drain(at.min(end)..end);
            }
            3 if !other.is_empty() => {
                let s = rng.random_range(0..other.len());
                let e = (s + rng.random_range(1..256)).min(other.len());
                d.splice(at..at, other[s..e].iter().copied());
            }
            4 if !d.is_empty() => {
                let s = rng.random_range(0..d.len());
                let e = (s + rng.random_range(1..128)).min(d.len());
                let chunk = d[s..e].to_vec();
                d.splice(at..at, chunk);
            }
            _ => d.truncate(at),
        }
    }
    d
}

fn run(name: &str, seeds: &[Vec<u8>], iterations: usize, target: fn(&[u8])) {
    let seed: u64 = std::env::var("FUZZ_SMOKE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261126);
    let mut rng = StdRng::seed_from_u64(seed ^ name.len() as u64);
    for s in seeds {
        target(s);
    }
    for i in 0..iterations {
        let a = &seeds[rng.random_range(0..seeds.len())];
        let b = &seeds[rng.random_range(0..seeds.len())];
        let input = mutate(a, b, &mut rng);
        let r = std::panic::catch_unwind(|| target(&input));
        assert!(
            r.is_ok(),
            "{name}: panic on iteration {i} (FUZZ_SMOKE_SEED={seed}); input: {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn bundles() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(repo().join("bundles")).unwrap() {
        let path = e.unwrap().path();
        if path.is_file() {
            out.push(std::fs::read(path).unwrap());
        }
    }
    out
}

#[test]
fn bundle_loader() {
    run(
        "bundle_loader",
        &bundles(),
        3_000,
        executor_bundles::fuzzing::bundle_text,
    );
}

#[test]
fn template_engine() {
    let ctx = br#"{"input": {"prompt": "a cat", "n": 2, "seed": null}, "job": {"id": "j1"}, "response": {"body": {"status": "succeeded", "output": ["u"]}}}"#;
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for b in bundles() {
        for line in String::from_utf8_lossy(&b).lines() {
            if line.contains("{{") || line.contains("when:") || line.contains("expr") {
                let t = line.split_once(':').map(|x| x.1).unwrap_or(line).trim();
                let mut s = t.trim_matches('"').as_bytes().to_vec();
                s.push(b'\n');
                s.extend_from_slice(ctx);
                seeds.push(s);
            }
        }
    }
    assert!(
        seeds.len() > 10,
        "templates found in the bundles: {}",
        seeds.len()
    );
    run(
        "template",
        &seeds,
        20_000,
        executor_bundles::fuzzing::template,
    );
}

#[test]
fn webhook_verifiers() {
    let vector = b"webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek\nwebhook-timestamp: 1614265330\nwebhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\n\n{\"test\": 2432232314}".to_vec();
    let fal = b"x-fal-webhook-request-id: 123\nx-fal-webhook-user-id: u\nx-fal-webhook-timestamp: 1614265330\nx-fal-webhook-signature: 00ff\n\n{\"status\":\"OK\"}".to_vec();
    let sample: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("events/webhook-replicate.json")).unwrap(),
    )
    .unwrap();
    let mut s = Vec::new();
    for (k, v) in sample["headers"].as_object().unwrap() {
        s.extend_from_slice(format!("{k}: {}\n", v.as_str().unwrap()).as_bytes());
    }
    s.extend_from_slice(b"\n");
    s.extend_from_slice(sample["body"].as_str().unwrap().as_bytes());
    run(
        "webhook_verify",
        &[vector, fal, s],
        20_000,
        executor_bundles::fuzzing::webhook_verify,
    );
}

#[test]
fn api_request_parsing() {
    let bodies: Vec<Vec<u8>> = [
        r#"{"model": "openai/gpt-image-1", "input": {"prompt": "a cat"}}"#,
        r#"{"model": "runway/gen4-turbo", "input": {"promptImage": "https://e.com/a.png", "promptText": "x"}, "webhook_url": "https://hooks.example.com/x", "max_duration_seconds": 60}"#,
        r#"{"model": 1, "input": [], "webhook_url": "http://[::ffff:127.0.0.1]/"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run(
        "create_body",
        &bodies,
        20_000,
        executor_api::executions::fuzz_create_body,
    );
    let queries: Vec<Vec<u8>> = [
        "limit=10&status=failed&model=openai%2Fgpt-image-1",
        "created_after=2026-11-26T10:00:00+01:00&cursor=abc&error_class=timeout",
        "provider=fal&created_before=2026-11-26T10:00:00Z&limit=0",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run(
        "list_query",
        &queries,
        20_000,
        executor_api::list::fuzz_query,
    );
}
