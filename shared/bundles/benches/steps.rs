//! Benchmarks of the bundle step engine (not timed tests): medians of repeated rounds.
//!
//! `cargo bench -p executor-bundles --bench steps`
//!
//! 1. A typical submit bundle (the committed Replicate bundle: templated headers and JSON body,
//!    one POST) run by its driver against a local stub provider on loopback: submits per
//!    second, 16 at a time, and single-submit latency.
//! 2. The same templates rendered without the network (the engine's own cost).
//! 3. `transform-image` on a 2048x2048 PNG: fit into 1024x1024 and encode as JPEG q90, as PNG,
//!    and re-encode at full size as JPEG.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_bundles::format::{Fit, ImageFormat, Resize};
use executor_bundles::media::{ImageLimits, transform};
use executor_bundles::{BundleCatalog, CatalogOptions};
use executor_lifecycle::{CallContext, Catalog, ExecutionRequest, SubmitOutcome};
use serde_json::json;
use std::io::Cursor;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ctx(model: &str, input: serde_json::Value, n: u64) -> CallContext {
    CallContext {
        final_look: false,
        request: ExecutionRequest {
            retries: None,
            fallbacks: Default::default(),
            id: format!("ex_bench_{n}"),
            tenant: "bench".into(),
            model: model.into(),
            input,
            webhook_url: None,
            idempotency_key: None,
            max_duration_ms: 600_000,
            created_at_ms: 0,
        },
        attempt: 1,
        job_id: None,
        callback_url: "https://executor.example/v1/webhooks/replicate/ex".into(),
        deadline_ms: i64::MAX,
    }
}

async fn stub_provider() -> String {
    let body = json!({"id": "gm3qorzdhgbfurvjtvhg6dckhu", "model": "black-forest-labs/flux-schnell",
        "version": "hidden", "input": {"prompt": "x"}, "logs": "", "output": null, "error": null,
        "status": "starting", "created_at": "2026-11-26T10:00:00.000Z",
        "urls": {"get": "https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu"}});
    let app = axum::Router::new().fallback(move || {
        let b = body.clone();
        async move { (axum::http::StatusCode::CREATED, axum::Json(b)) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    println!(
        "machine: {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // 1. Driver submits against a loopback stub.
    rt.block_on(async {
        let url = stub_provider().await;
        let mut o = CatalogOptions::from_env();
        o.allow_missing_credentials = true;
        o.resilience.max_retries = 0;
        o.base_url_overrides.insert("replicate".into(), url);
        let cat = BundleCatalog::load(&repo.join("bundles"), o).unwrap();
        let d = cat.get("black-forest-labs/flux-schnell").unwrap();
        let input = d
            .validate(&json!({"prompt": "a lighthouse at dawn, volumetric light", "seed": 42}))
            .unwrap();
        for _ in 0..200 {
            let r = d
                .submit(&ctx("black-forest-labs/flux-schnell", input.clone(), 0))
                .await;
            assert!(matches!(r.outcome, SubmitOutcome::Created { .. }));
        }
        let mut lat = Vec::new();
        for i in 0..500 {
            let t = Instant::now();
            d.submit(&ctx("black-forest-labs/flux-schnell", input.clone(), i))
                .await;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "submit latency (1 at a time, 500 runs): median {:.3} ms",
            median(lat)
        );
        let mut rounds = Vec::new();
        for _ in 0..7 {
            let n = 2_000u64;
            let t = Instant::now();
            let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
            let mut tasks = Vec::new();
            for i in 0..n {
                let d = d.clone();
                let input = input.clone();
                let permit = sem.clone().acquire_owned().await.unwrap();
                tasks.push(tokio::spawn(async move {
                    let r = d
                        .submit(&ctx("black-forest-labs/flux-schnell", input, i))
                        .await;
                    drop(permit);
                    matches!(r.outcome, SubmitOutcome::Created { .. })
                }));
            }
            let mut ok = 0;
            for t in tasks {
                ok += t.await.unwrap() as u64;
            }
            assert_eq!(ok, n);
            rounds.push(n as f64 / t.elapsed().as_secs_f64());
        }
        println!(
            "submits/s (16 concurrent, 7 rounds of 2,000): median {:.0}, min {:.0}, max {:.0}",
            median(rounds.clone()),
            rounds.iter().cloned().fold(f64::MAX, f64::min),
            rounds.iter().cloned().fold(0.0, f64::max)
        );
    });

    // 2. The same templates without the network.
    let text = std::fs::read_to_string(repo.join("bundles/replicate-flux-schnell.yaml")).unwrap();
    let bundle =
        executor_bundles::catalog::check_text(std::path::Path::new("r.yaml"), &text).unwrap();
    let executor_bundles::format::Step::HttpRequest(h) = &bundle.steps.submit[0] else {
        panic!("first step is the create call")
    };
    let context = json!({"input": {"prompt": "a lighthouse at dawn", "aspect_ratio": "1:1", "num_outputs": 1, "output_format": "png", "seed": 42},
        "secrets": {"REPLICATE_API_TOKEN": "r8_x"}, "base_url": "https://api.replicate.com",
        "execution": {"id": "ex", "attempt": 1}, "job": {"id": null}, "callback_url": "https://e/cb", "steps": {}, "vars": {}});
    let mut rounds = Vec::new();
    for _ in 0..7 {
        let n = 20_000;
        let t = Instant::now();
        for _ in 0..n {
            let url = executor_bundles::template::render_str(&h.url, &context).unwrap();
            let auth =
                executor_bundles::template::render_str(&h.headers["Authorization"], &context)
                    .unwrap();
            let body = executor_bundles::template::render_value(h.json.as_ref().unwrap(), &context)
                .unwrap();
            std::hint::black_box((url, auth, body));
        }
        rounds.push(n as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "submit step rendered without network (URL, header, JSON body), 1 thread: median {:.0}/s",
        median(rounds)
    );

    // 3. transform-image on 2048x2048.
    let img = image::RgbImage::from_fn(2048, 2048, |x, y| {
        image::Rgb([(x / 8) as u8, (y / 8) as u8, ((x ^ y) & 0xff) as u8])
    });
    let mut png = Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let png = png.into_inner();
    println!("input: 2048x2048 PNG, {} bytes", png.len());
    let limits = ImageLimits {
        max_bytes: 64 << 20,
        max_pixels: 50_000_000,
    };
    let fit = Resize {
        width: 1024,
        height: 1024,
        fit: Fit::Contain,
    };
    for (label, resize, format) in [
        ("fit 1024x1024 -> JPEG q90", Some(&fit), ImageFormat::Jpeg),
        ("fit 1024x1024 -> PNG", Some(&fit), ImageFormat::Png),
        ("full size -> JPEG q90", None, ImageFormat::Jpeg),
    ] {
        let mut ms = Vec::new();
        let mut out_bytes = 0;
        for _ in 0..9 {
            let t = Instant::now();
            let v = transform(&png, resize, format, 90, limits).unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            out_bytes = v["bytes"].as_u64().unwrap();
        }
        println!(
            "transform-image {label}: median {:.1} ms (9 runs), output {out_bytes} bytes",
            median(ms)
        );
    }
}
