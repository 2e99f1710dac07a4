//! `executor bench`: the embedded backend measured with simulators that answer at once.
//!
//! - **overhead**: each shape driven one message at a time (no contention): the time of each
//!   transition (`worker::settle`: guard read, action, provider call to the local simulator,
//!   commit, outbox) and per execution (API accept + its transitions), p50/p99, next to the
//!   bare round trip to the simulator;
//! - **throughput**: async executions per second end to end through the API and the workers,
//!   at several store sizes (the store is filled with real executions between levels);
//! - **memory**: resident memory per in-flight execution, with the simulators in a child
//!   process so their job tables are not counted.
//!
//! Figures go to docs/benchmarks.md with the command that produced them.

use crate::local::{LocalOptions, LocalSystem};
use anyhow::{Context, Result, bail};
use executor_lifecycle::{QueueName, Status, worker};
use executor_simulators::SimConfig;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Executions per shape in the overhead phase.
    pub overhead_samples: usize,
    /// Executions per measured throughput batch.
    pub batch: usize,
    /// Concurrent API clients creating executions.
    pub clients: usize,
    /// Consumers per queue.
    pub workers: usize,
    /// Store sizes at which throughput is measured.
    pub store_sizes: Vec<usize>,
    /// Executions held in flight for the memory figure (0: skip).
    pub inflight: usize,
}

/// A latency summary in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

fn summarize(mut v: Vec<f64>) -> Summary {
    v.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i.min(v.len() - 1)]
    };
    Summary {
        n: v.len(),
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        mean_ms: if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        },
    }
}

/// Overhead figures of one shape.
#[derive(Debug, Clone, Serialize)]
pub struct ShapeOverhead {
    /// Shape name.
    pub shape: String,
    /// Model used.
    pub model: String,
    /// API accept (HTTP round trip; for immediate models it includes the inline submit).
    pub accept: Summary,
    /// Per action (submit, poll, finalize, ...): one queue message handled.
    pub transitions: BTreeMap<String, Summary>,
    /// All transitions of the shape.
    pub per_transition: Summary,
    /// Accept plus every transition of an execution.
    pub per_execution: Summary,
}

/// Throughput at one store size.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Executions in the store when the batch started.
    pub store_size: usize,
    /// Executions in the batch.
    pub executions: usize,
    /// Seconds from the first create to the last terminal outcome.
    pub seconds: f64,
    /// Executions per second.
    pub per_second: f64,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Cores available.
    pub cores: usize,
    /// Bare HTTP round trip to the OpenAI images simulator.
    pub simulator_round_trip: Summary,
    /// Per shape.
    pub overhead: Vec<ShapeOverhead>,
    /// Per store size.
    pub throughput: Vec<Throughput>,
    /// Resident memory per in-flight execution (bytes), with the count and totals.
    pub memory: Option<Value>,
}

struct Shape {
    name: &'static str,
    model: &'static str,
    input: fn(usize) -> Value,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "immediate",
        model: "openai/gpt-image-1",
        input: |i| json!({"prompt": format!("bench {i}")}),
    },
    Shape {
        name: "polling",
        model: "runway/gen4-turbo",
        input: |i| json!({"promptImage": "https://example.com/a.png", "promptText": format!("bench {i} sim:duration=0")}),
    },
    Shape {
        name: "callback",
        model: "black-forest-labs/flux-schnell",
        input: |i| json!({"prompt": format!("bench {i} sim:duration=0")}),
    },
];

fn bench_options(dir: &std::path::Path, workers: usize) -> LocalOptions {
    let mut o = LocalOptions::dev(dir.to_path_buf());
    o.simulators = Some(SimConfig {
        job_duration_ms: 0,
        ..SimConfig::default()
    });
    // Waits (poll cadence, backoff) scaled to almost nothing: what is measured is the machine.
    o.lifecycle.time_scale = 0.001;
    o.reconcile_every_ms = 0;
    o.worker_concurrency = workers;
    for p in executor_simulators::Provider::ALL.map(|p| p.as_str()) {
        o.capacity_overrides.insert(p.to_string(), 0);
    }
    o
}

async fn create(
    http: &reqwest::Client,
    sys_url: &str,
    key: &str,
    model: &str,
    input: Value,
) -> Result<String> {
    let resp = http
        .post(format!("{sys_url}/v1/executions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "input": input}))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if !status.is_success() {
        bail!("create {model}: {status} {body}");
    }
    body["id"]
        .as_str()
        .map(str::to_string)
        .context("create answered without an id")
}

fn action_of(status: Status) -> &'static str {
    match status {
        Status::Queued => "submit",
        Status::Submitting => "resolve_submit",
        Status::Submitted | Status::Running => "poll",
        _ => "finalize",
    }
}

/// The bare round trip to the simulator, for reference.
async fn simulator_round_trip(sys: &LocalSystem, n: usize) -> Result<Summary> {
    let sims = sys.simulators.as_ref().context("simulators not started")?;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/images/generations", sims.base_url("openai"));
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let r = http
            .post(&url)
            .bearer_auth("sk-bench")
            .json(&json!({"model": "gpt-image-1", "prompt": format!("rtt {i}")}))
            .send()
            .await?;
        let _ = r.bytes().await?;
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(summarize(v))
}

/// Drives each shape one message at a time and times every transition.
async fn overhead(samples: usize) -> Result<(Summary, Vec<ShapeOverhead>)> {
    let dir = tempfile::tempdir()?;
    let mut o = bench_options(dir.path(), 1);
    o.run_workers = false;
    let sys = LocalSystem::start(o).await?;
    let rtt = simulator_round_trip(&sys, samples.max(50)).await?;
    let http = reqwest::Client::new();
    let engine = sys.engine.clone();
    let visibility = engine.config().visibility_timeout_ms;
    let mut out = Vec::new();
    for shape in SHAPES {
        let mut accept = Vec::new();
        let mut per_action: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut all = Vec::new();
        let mut per_exec = Vec::new();
        for i in 0..samples {
            let t = Instant::now();
            let id = create(&http, &sys.url, &sys.dev_key, shape.model, (shape.input)(i)).await?;
            let accept_ms = t.elapsed().as_secs_f64() * 1e3;
            accept.push(accept_ms);
            let mut exec_ms = accept_ms;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let mut handled = false;
                for q in QueueName::ALL {
                    let got = engine.ports().queue.receive(q, 1, visibility).await?;
                    let Some(d) = got.into_iter().next() else {
                        continue;
                    };
                    let msg: Value = serde_json::from_str(&d.body).unwrap_or(Value::Null);
                    let mid = msg["execution_id"].as_str().unwrap_or_default().to_string();
                    let before = engine.ports().guards.get(&mid).await?;
                    let t = Instant::now();
                    worker::settle(&engine, q, &d).await;
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    handled = true;
                    // Stale messages (a watchdog finding the work done) are cheap and not
                    // transitions; count only messages that found work to do.
                    if let Some(g) = before
                        && !g.status().is_final()
                        && mid == id
                    {
                        per_action
                            .entry(action_of(g.status()).to_string())
                            .or_default()
                            .push(ms);
                        all.push(ms);
                        exec_ms += ms;
                    }
                }
                let g = engine.ports().guards.get(&id).await?;
                if g.as_ref().is_some_and(|g| g.status().is_final()) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "{} {id} did not finish: {:?}",
                        shape.name,
                        g.map(|g| g.status())
                    );
                }
                if !handled {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            per_exec.push(exec_ms);
        }
        out.push(ShapeOverhead {
            shape: shape.name.to_string(),
            model: shape.model.to_string(),
            accept: summarize(accept),
            transitions: per_action
                .into_iter()
                .map(|(k, v)| (k, summarize(v)))
                .collect(),
            per_transition: summarize(all),
            per_execution: summarize(per_exec),
        });
    }
    sys.stop().await;
    Ok((rtt, out))
}

/// Creates `n` polling executions with `clients` concurrent clients and waits until all are
/// terminal; returns the seconds it took. Completion is checked per created id (primary-key
/// reads, oldest first, resuming where the last check stopped), so the check costs the same at
/// every store size; a whole-table count would grow with the store and skew the figure.
async fn run_batch(sys: &LocalSystem, n: usize, clients: usize, tag: &str) -> Result<f64> {
    let http = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (http, next, url, key, tag) = (
            http.clone(),
            next.clone(),
            sys.url.clone(),
            sys.dev_key.clone(),
            tag.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(ids);
                }
                let input = json!({"promptImage": "https://example.com/a.png", "promptText": format!("{tag} {i} sim:duration=0")});
                ids.push(create(&http, &url, &key, "runway/gen4-turbo", input).await?);
            }
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for task in tasks {
        ids.extend(task.await??);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut done = 0;
    while done < ids.len() {
        let g = sys.engine.ports().guards.get(&ids[done]).await?;
        if g.as_ref().is_some_and(|g| g.status().is_final()) {
            done += 1;
            continue;
        }
        if Instant::now() > deadline {
            bail!("batch {tag} did not finish in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(t.elapsed().as_secs_f64())
}

async fn throughput(opts: &BenchOptions) -> Result<Vec<Throughput>> {
    let dir = tempfile::tempdir()?;
    let sys = LocalSystem::start(bench_options(dir.path(), opts.workers)).await?;
    // Warm up (connections, page cache) before measuring.
    let warmup = opts.batch.min(200);
    run_batch(&sys, warmup, opts.clients, "warmup").await?;
    let mut have = warmup;
    let mut out = Vec::new();
    let mut sizes = opts.store_sizes.clone();
    sizes.sort_unstable();
    for size in sizes {
        while have < size {
            let fill = (size - have).min(5_000);
            run_batch(&sys, fill, opts.clients, "fill").await?;
            have += fill;
        }
        let secs = run_batch(&sys, opts.batch, opts.clients, "measure").await?;
        out.push(Throughput {
            store_size: have,
            executions: opts.batch,
            seconds: secs,
            per_second: opts.batch as f64 / secs,
        });
        eprintln!(
            "throughput at {have} stored: {:.0} executions/s",
            opts.batch as f64 / secs
        );
        have += opts.batch;
    }
    sys.stop().await;
    Ok(out)
}

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Simulators in a child process (`executor simulators`), so their memory is not counted.
async fn child_simulators() -> Result<(tokio::process::Child, HashMap<String, String>)> {
    use tokio::io::AsyncBufReadExt;
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .args(["simulators", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting `executor simulators`")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut urls = HashMap::new();
    while let Some(line) =
        tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await??
    {
        if let Some((k, v)) = line.split_once('=')
            && let Some(p) = k
                .strip_prefix("EXECUTOR_")
                .and_then(|k| k.strip_suffix("_BASE_URL"))
        {
            urls.insert(p.to_lowercase(), v.to_string());
        }
        if line.starts_with("FAL_WEBHOOK_PUBLIC_KEYS") {
            break;
        }
    }
    Ok((child, urls))
}

async fn memory(n: usize, workers: usize) -> Result<Value> {
    let (_child, urls) = child_simulators().await?;
    let dir = tempfile::tempdir()?;
    let mut o = bench_options(dir.path(), workers);
    o.simulators = None;
    o.allow_missing_credentials = true;
    o.base_url_overrides = urls;
    // Real cadence: the executions sit at the provider, polled every few seconds.
    o.lifecycle.time_scale = 1.0;
    let sys = LocalSystem::start(o).await?;
    // One execution through first, so pools and caches exist before the baseline.
    let http = reqwest::Client::new();
    create(
        &http,
        &sys.url,
        &sys.dev_key,
        "runway/gen4-turbo",
        json!({"promptImage": "https://example.com/a.png", "promptText": "warm sim:duration=0"}),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base = rss_bytes().context("no /proc/self/status")?;
    for i in 0..n {
        let input = json!({"promptImage": "https://example.com/a.png", "promptText": format!("held {i} sim:duration=3600000")});
        create(&http, &sys.url, &sys.dev_key, "runway/gen4-turbo", input).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let counts = sys.store.count_by_status().await?;
        let at_provider: u64 = counts
            .iter()
            .filter(|(s, _)| s == "submitted" || s == "running")
            .map(|(_, c)| *c)
            .sum();
        if at_provider as usize >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {at_provider} of {n} executions reached the provider");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let held = rss_bytes().context("no /proc/self/status")?;
    let per = held.saturating_sub(base) as f64 / n as f64;
    sys.stop().await;
    Ok(
        json!({"executions": n, "rss_before_bytes": base, "rss_in_flight_bytes": held, "bytes_per_execution": per.round()}),
    )
}

/// Runs everything asked for.
pub async fn run(opts: &BenchOptions) -> Result<BenchReport> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // Memory first: later phases leave the allocator holding freed memory, which would hide
    // the growth being measured.
    let memory = if opts.inflight > 0 {
        eprintln!("memory: {} executions held in flight", opts.inflight);
        Some(memory(opts.inflight, opts.workers).await?)
    } else {
        None
    };
    eprintln!(
        "overhead: {} executions per shape, one message at a time",
        opts.overhead_samples
    );
    let (rtt, overhead) = overhead(opts.overhead_samples).await?;
    eprintln!(
        "throughput: batches of {} at store sizes {:?}",
        opts.batch, opts.store_sizes
    );
    let throughput = throughput(opts).await?;
    Ok(BenchReport {
        cores,
        simulator_round_trip: rtt,
        overhead,
        throughput,
        memory,
    })
}

/// The report as Markdown tables (what docs/benchmarks.md quotes).
pub fn markdown(r: &BenchReport) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "cores: {}; bare simulator round trip p50 {:.3} ms, p99 {:.3} ms\n\n",
        r.cores, r.simulator_round_trip.p50_ms, r.simulator_round_trip.p99_ms
    ));
    s.push_str("| shape | step | n | p50 ms | p99 ms |\n|---|---|---|---|---|\n");
    for o in &r.overhead {
        s.push_str(&format!(
            "| {} | accept (API) | {} | {:.3} | {:.3} |\n",
            o.shape, o.accept.n, o.accept.p50_ms, o.accept.p99_ms
        ));
        for (a, v) in &o.transitions {
            s.push_str(&format!(
                "| {} | {a} | {} | {:.3} | {:.3} |\n",
                o.shape, v.n, v.p50_ms, v.p99_ms
            ));
        }
        s.push_str(&format!(
            "| {} | **any transition** | {} | {:.3} | {:.3} |\n",
            o.shape, o.per_transition.n, o.per_transition.p50_ms, o.per_transition.p99_ms
        ));
        s.push_str(&format!(
            "| {} | **per execution** | {} | {:.3} | {:.3} |\n",
            o.shape, o.per_execution.n, o.per_execution.p50_ms, o.per_execution.p99_ms
        ));
    }
    s.push_str("\n| executions in store | batch | seconds | executions/s |\n|---|---|---|---|\n");
    for t in &r.throughput {
        s.push_str(&format!(
            "| {} | {} | {:.2} | {:.0} |\n",
            t.store_size, t.executions, t.seconds, t.per_second
        ));
    }
    if let Some(m) = &r.memory {
        s.push_str(&format!(
            "\nmemory: {} executions in flight, RSS {} → {} bytes, {} bytes per execution\n",
            m["executions"],
            m["rss_before_bytes"],
            m["rss_in_flight_bytes"],
            m["bytes_per_execution"]
        ));
    }
    s
}

/// Result of a load run against one HTTP endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Target URL.
    pub url: String,
    /// Requests made.
    pub requests: usize,
    /// Non-2xx answers or transport errors.
    pub errors: usize,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Wall seconds.
    pub seconds: f64,
    /// Requests per second.
    pub per_second: f64,
    /// Latency of successful requests.
    pub latency: Summary,
    /// First error seen, if any.
    pub first_error: Option<String>,
}

/// A closed-loop load generator: `concurrency` clients each sending POST `body` to `url`
/// until `requests` have been made (after `warmup` unmeasured requests).
pub async fn load(
    url: &str,
    headers: &[(String, String)],
    body: &Value,
    concurrency: usize,
    requests: usize,
    warmup: usize,
) -> Result<LoadReport> {
    let mut hm = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        hm.insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .with_context(|| format!("header name {k}"))?,
            reqwest::header::HeaderValue::from_str(v).with_context(|| format!("header {k}"))?,
        );
    }
    let http = reqwest::Client::builder()
        .default_headers(hm)
        .pool_max_idle_per_host(concurrency.max(1))
        .build()?;
    let one = |http: reqwest::Client, url: String, body: Value| async move {
        let t = Instant::now();
        let r = http.post(&url).json(&body).send().await;
        let res = match r {
            Ok(r) if r.status().is_success() => {
                r.bytes().await.map(|_| ()).map_err(|e| e.to_string())
            }
            Ok(r) => {
                let st = r.status();
                Err(format!(
                    "{st} {}",
                    r.text()
                        .await
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect::<String>()
                ))
            }
            Err(e) => Err(e.to_string()),
        };
        (t.elapsed().as_secs_f64() * 1e3, res)
    };
    for _ in 0..warmup {
        let _ = one(http.clone(), url.to_string(), body.clone()).await;
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (http, next, url, body) = (http.clone(), next.clone(), url.to_string(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                match one(http.clone(), url.clone(), body.clone()).await {
                    (ms, Ok(())) => lat.push(ms),
                    (_, Err(e)) => errors.push(e),
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    for task in tasks {
        let (l, e) = task.await?;
        lat.extend(l);
        errors.extend(e);
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(LoadReport {
        url: url.to_string(),
        requests,
        errors: errors.len(),
        concurrency,
        seconds: secs,
        per_second: requests as f64 / secs,
        latency: summarize(lat),
        first_error: errors.into_iter().next(),
    })
}
