//! AWS request accounting: every S3, DynamoDB and SQS request the handlers make, counted by an
//! SDK interceptor, per execution and per step, for each provider shape, on the AWS backend
//! (moto server + redis-server). The event source mapping's own receive/delete calls are made
//! by the test with an unmetered client, as AWS makes them outside the function.
//!
//! The counts are deterministic; the assertions are the budgets of docs/benchmarks.md, so a
//! change that adds requests fails here. `--no-capture` prints the tables the document quotes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{WebhookGate, World, event, world_metered, world_with};
use executor_aws::RequestMeter;
use executor_aws::metering::{RequestCounts, service_total, total};
use executor_lifecycle::{GuardStore, QueueName, Status};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// AWS requests allowed for a poll that finds the job still running: guard read, commit
/// (the transition record in it, in the guard's history), next poll message (its arrival
/// settles the outbox: no clear write).
const POLL_STEP_BUDGET: u64 = 3;
/// AWS requests allowed for a whole immediate execution: the insert (guard and idempotency
/// key in one transaction, the small request kept in the item), the intent commit (no watchdog
/// message: the reconciler is the watchdog), the output image moved to the blob store at
/// ingestion (one `PutObject`, so that no guard item, outcome event or response carries it),
/// the terminal commit with its finalize in the same write (no webhook to deliver: no finalize
/// message), the outcome event, and the clear of that commit's outbox. The create answers
/// from what it committed, without a read.
const IMMEDIATE_BUDGET: u64 = 6;
/// AWS requests allowed for a polling execution apart from its unchanged polls: insert and
/// submit message (2), submit (guard read, intent, `submitted` commit, poll message: 4), the
/// last poll (guard read, the terminal commit with its finalize, the outcome event, the
/// outbox clear: 4). The result is small and kept in the item; the history too.
const POLLING_REST_BUDGET: u64 = 10;
/// AWS requests allowed for a callback execution on the Replicate bundle (webhook events
/// `start` and `completed`), each callback consumed by its own step, and the two safety polls
/// that arrive after the end (one `GetItem` each); a callback's nudge does not re-send the
/// safety poll its step supersedes, and a small callback body is recorded with its id in the
/// guard item (no blob PUT, no GET by the poll that consumes it). Breakdown in
/// docs/benchmarks.md.
const CALLBACK_BUDGET: u64 = 21;

/// One handled message or API call and the requests it made.
#[derive(Debug, Clone)]
struct Step {
    what: String,
    before: Option<Status>,
    after: Option<Status>,
    version_before: u64,
    version_after: u64,
    counts: RequestCounts,
    /// The guard item's size (bytes, DynamoDB's measure) and its `due_at` before and after.
    item_before: ItemSnap,
    item_after: ItemSnap,
}

/// A guard item's size in DynamoDB's measure (attribute names plus values) and its `due_at`
/// (the `by-due` index's sort key; absent once final).
#[derive(Debug, Clone, Default, PartialEq)]
struct ItemSnap {
    bytes: usize,
    due_at: Option<String>,
}

/// DynamoDB's item size: the UTF-8 length of every attribute name plus its value's size
/// (strings their UTF-8 length, numbers about one byte per two significant digits plus one,
/// booleans and nulls one byte, lists and maps 3 bytes plus their elements, each plus one).
fn attr_size(v: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => s.len(),
        A::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        A::Bool(_) | A::Null(_) => 1,
        A::L(l) => 3 + l.iter().map(|x| attr_size(x) + 1).sum::<usize>(),
        A::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| k.len() + attr_size(x) + 1)
                .sum::<usize>()
        }
        A::Ss(l) => l.iter().map(|x| x.len()).sum(),
        A::B(b) => b.as_ref().len(),
        _ => 0,
    }
}

/// DynamoDB write and read units a step's requests consume, from the measured item sizes:
/// an `UpdateItem` writes ceil(max(before, after) / 1 KB) units; the create's
/// `TransactWriteItems` writes the guard and the idempotency item (under 1 KB) at twice the
/// units (transactions); the `by-tenant` index (keys only) takes 1 unit at the insert and none
/// after; a `GetItem` (strongly consistent, under 4 KB) reads 1 unit; the
/// `by-due` index (keys only, ~100-byte entries) takes 2 units when a write moves `due_at`
/// (delete and put) and 1 when it adds or removes the entry, for each commit of the step.
fn units(s: &Step) -> (u64, u64) {
    let n = |op: &str| {
        s.counts
            .get(&("dynamodb".to_string(), op.to_string()))
            .copied()
            .unwrap_or(0)
    };
    let kb = |b: usize| b.div_ceil(1024).max(1) as u64;
    let size = s.item_before.bytes.max(s.item_after.bytes);
    let mut wru =
        n("UpdateItem") * kb(size) + n("TransactWriteItems") * 2 * (kb(s.item_after.bytes) + 1);
    let moves = n("UpdateItem") + n("TransactWriteItems");
    // The `by-tenant` index holds keys only, which never change: written once, at the insert.
    wru += n("TransactWriteItems");
    // The `by-due` index, when the step moved its entry: counted for every write of the step
    // (an upper bound: a step of two commits may move it once).
    wru += match (&s.item_before.due_at, &s.item_after.due_at) {
        (Some(a), Some(b)) if a != b => 2 * moves,
        (Some(_), None) | (None, Some(_)) => 1 + 2 * moves.saturating_sub(1),
        _ => 0,
    };
    (wru, n("GetItem"))
}

struct Accounting {
    w: World,
    meter: RequestMeter,
}

impl Accounting {
    async fn new() -> Accounting {
        let meter = RequestMeter::new();
        let w = world_metered(Some(meter.clone())).await;
        // The start-up checks are not per execution, nor is the API key lookup (cached per
        // container): warm it.
        w.get("ex_00000000000000000000000000").await;
        meter.take();
        Accounting { w, meter }
    }

    /// A world whose callbacks wait at the door until [`Accounting::admit`] lets them in, with
    /// bundle delays scaled by `time_scale`.
    async fn gated(time_scale: f64, gate: WebhookGate) -> Accounting {
        let meter = RequestMeter::new();
        let w = world_with(Some(meter.clone()), time_scale, Some(gate)).await;
        // The API key lookup is cached per container: warm it, as the first world's earlier
        // executions did, so the count is per execution.
        w.get("ex_00000000000000000000000000").await;
        meter.take();
        Accounting { w, meter }
    }

    /// Lets the `n`-th callback in and records what it cost as its own step: nothing else runs
    /// meanwhile, so the count is exact.
    async fn admit(&self, gate: &WebhookGate, n: usize, id: &str, steps: &mut Vec<Step>) {
        self.stray(id, steps).await;
        let (_, vb) = self.guard(id).await;
        let ib = self.item(id).await;
        gate.admit(n).await;
        let counts = self.meter.take();
        let (after, va) = self.guard(id).await;
        let ia = self.item(id).await;
        steps.push(Step {
            what: "http: webhook".into(),
            before: None,
            after,
            version_before: vb,
            version_after: va,
            counts,
            item_before: ib,
            item_after: ia,
        });
    }

    /// Handles the next message, waiting for one to become visible.
    async fn step_next(&self, id: &str, steps: &mut Vec<Step>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.step_once(id, steps).await {
            assert!(Instant::now() < deadline, "no message for {id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Requests made outside a dispatched step (the provider's callback to the webhook route,
    /// served by the same function's router) are recorded as their own step.
    async fn stray(&self, id: &str, steps: &mut Vec<Step>) {
        let counts = self.meter.take();
        if counts.is_empty() {
            return;
        }
        let (after, v) = self.guard(id).await;
        let ia = self.item(id).await;
        steps.push(Step {
            what: "http: webhook".into(),
            before: None,
            after,
            version_before: v,
            version_after: v,
            counts,
            item_before: ia.clone(),
            item_after: ia,
        });
    }

    async fn item(&self, id: &str) -> ItemSnap {
        let got = self
            .w
            .raw_ddb
            .get_item()
            .table_name(&self.w.cfg.table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("ex#{id}")),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        match got.item() {
            Some(item) => ItemSnap {
                bytes: item.iter().map(|(k, v)| k.len() + attr_size(v)).sum(),
                due_at: item.get("due_at").and_then(|v| v.as_n().ok()).cloned(),
            },
            None => ItemSnap::default(),
        }
    }

    async fn guard(&self, id: &str) -> (Option<Status>, u64) {
        match self.w.ddb.get(id).await.unwrap() {
            Some(g) => (Some(g.status()), g.version()),
            None => (None, 0),
        }
    }

    async fn create(&self, model: &str, input: Value, steps: &mut Vec<Step>) -> String {
        let mut ev = event("api-create.json");
        ev["body"] = json!(json!({"model": model, "input": input}).to_string());
        ev["headers"]["idempotency-key"] = json!(ulid::Ulid::new().to_string());
        self.meter.take();
        let (status, body) = self.w.api(ev).await;
        let counts = self.meter.take();
        assert!(status == 201 || status == 202, "{status} {body}");
        let id = body["id"].as_str().unwrap().to_string();
        let (after, v) = self.guard(&id).await;
        let ia = self.item(&id).await;
        steps.push(Step {
            what: "api: create".into(),
            before: None,
            after,
            version_before: 0,
            version_after: v,
            counts,
            item_before: ItemSnap::default(),
            item_after: ia,
        });
        id
    }

    /// Receives one message (unmetered, as the event source mapping does), hands it to the
    /// function as a one-record SQS event (metered) and deletes it unless reported failed.
    async fn step_once(&self, id: &str, steps: &mut Vec<Step>) -> bool {
        for q in QueueName::ALL {
            let url = &self.w.cfg.queues[&q].url;
            let got = self
                .w
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(1)
                .visibility_timeout(30)
                .send()
                .await
                .unwrap();
            let Some(m) = got.messages().first() else {
                continue;
            };
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(
                body["execution_id"], id,
                "a message of another execution: the previous one was not drained"
            );
            let mut batch = event("sqs-poll.json");
            let mut record = batch["Records"][0].clone();
            record["messageId"] = json!(m.message_id().unwrap());
            record["receiptHandle"] = json!(m.receipt_handle().unwrap());
            record["body"] = json!(m.body().unwrap());
            record["eventSourceARN"] =
                json!(format!("arn:aws:sqs:us-east-1:123456789012:{}", q.as_str()));
            batch["Records"] = json!([record]);
            let (before, vb) = self.guard(id).await;
            let ib = self.item(id).await;
            self.stray(id, steps).await;
            let resp = self.w.app.dispatch(batch).await.unwrap();
            let counts = self.meter.take();
            let (after, va) = self.guard(id).await;
            let ia = self.item(id).await;
            let failed = !resp["batchItemFailures"].as_array().unwrap().is_empty();
            if !failed {
                self.w
                    .sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            steps.push(Step {
                what: format!("sqs: {}", q.as_str()),
                before,
                after,
                version_before: vb,
                version_after: va,
                counts,
                item_before: ib,
                item_after: ia,
            });
            return true;
        }
        false
    }

    /// Drives one execution to its end, then keeps handling messages until the queues have
    /// been quiet for `quiet` (the watchdog and safety polls arrive late and cost requests too).
    async fn drive(&self, id: &str, steps: &mut Vec<Step>, quiet: Duration) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut quiet_since: Option<Instant> = None;
        while Instant::now() < deadline {
            if self.step_once(id, steps).await {
                quiet_since = None;
                continue;
            }
            let done = self.guard(id).await.0.is_some_and(|s| s.is_final());
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if done && since.elapsed() >= quiet {
                self.stray(id, steps).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{id} did not finish: {:?}", self.guard(id).await);
    }
}

fn fmt_counts(c: &RequestCounts) -> String {
    c.iter()
        .map(|((s, o), n)| format!("{s}:{o}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_steps(title: &str, steps: &[Step]) {
    println!("\n{title}");
    for s in steps {
        let (wru, _) = units(s);
        println!(
            "  {:<14} {:>10} → {:<10} v{}→v{}  {:>2} requests {:>2} WRU {:>5} B  {}",
            s.what,
            s.before.map(|s| s.as_str()).unwrap_or("-"),
            s.after.map(|s| s.as_str()).unwrap_or("-"),
            s.version_before,
            s.version_after,
            total(&s.counts),
            wru,
            s.item_after.bytes,
            fmt_counts(&s.counts)
        );
    }
    let all: RequestCounts = steps.iter().fold(BTreeMap::new(), |mut acc, s| {
        for (k, n) in &s.counts {
            *acc.entry(k.clone()).or_default() += n;
        }
        acc
    });
    println!(
        "  total: {} requests (s3 {}, dynamodb {}, sqs {})",
        total(&all),
        service_total(&all, "s3"),
        service_total(&all, "dynamodb"),
        service_total(&all, "sqs")
    );
    let (wru, rru) = steps
        .iter()
        .map(units)
        .fold((0, 0), |(w, r), (a, b)| (w + a, r + b));
    let sizes: Vec<usize> = steps.iter().map(|s| s.item_after.bytes).collect();
    println!("  dynamodb units: {wru} WRU, {rru} RRU; guard item after each step: {sizes:?} bytes");
}

fn sum(steps: &[Step]) -> u64 {
    steps.iter().map(|s| total(&s.counts)).sum()
}

/// A poll that found the job still running: the status stays `submitted`/`running`.
fn is_unchanged_poll(s: &Step) -> bool {
    matches!(s.before, Some(Status::Submitted | Status::Running))
        && matches!(s.after, Some(Status::Submitted | Status::Running))
        && s.what == "sqs: poll"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_requests_per_execution_stay_within_budget() {
    let a = Accounting::new().await;
    // Long enough for the latest delayed message (the submit watchdog: the bundle's submit
    // timeout, scaled, plus the margin) to arrive and be counted with its execution.
    let quiet = Duration::from_millis(a.w.lifecycle.watchdog_margin_ms + 4_000);

    // Immediate: the API runs the submit inline and finalizes in the same commit; no message
    // is left to arrive later.
    let mut immediate = Vec::new();
    let id = a
        .create(
            "openai/gpt-image-1",
            json!({"prompt": "count requests"}),
            &mut immediate,
        )
        .await;
    a.drive(&id, &mut immediate, quiet).await;
    print_steps("immediate (openai/gpt-image-1)", &immediate);

    // Polling: the simulated task runs long enough for several polls that change nothing.
    let mut polling = Vec::new();
    let id = a
        .create(
            "runway/gen4-turbo",
            json!({"promptImage": "https://example.com/a.png", "promptText": "count sim:duration=2500"}),
            &mut polling,
        )
        .await;
    a.drive(&id, &mut polling, quiet).await;
    print_steps("polling (runway/gen4-turbo)", &polling);

    // Callback: the provider calls back (`start` at creation, `completed` at the end); a
    // safety poll is scheduled in case it never does. The callbacks are let in at fixed points
    // (after the submit commit, and after the first callback's step), and the bundle delays are
    // scaled so that the safety polls (60 s × 0.1) and the watchdog (30 s × 0.1 + 1 s) come
    // after the end: every run takes the same path.
    let gate = WebhookGate::new();
    let c = Accounting::gated(0.1, gate.clone()).await;
    let quiet = Duration::from_millis(c.w.lifecycle.watchdog_margin_ms + 6_500);
    let mut callback = Vec::new();
    let id = c
        .create(
            "black-forest-labs/flux-schnell",
            json!({"prompt": "count callback"}),
            &mut callback,
        )
        .await;
    c.step_next(&id, &mut callback).await; // submit
    assert_eq!(
        c.guard(&id).await.0,
        Some(Status::Submitted),
        "{callback:#?}"
    );
    c.admit(&gate, 1, &id, &mut callback).await; // `start`
    c.step_next(&id, &mut callback).await; // the poll that consumes it
    assert!(
        matches!(
            c.guard(&id).await.0,
            Some(Status::Submitted | Status::Running)
        ),
        "{callback:#?}"
    );
    c.admit(&gate, 2, &id, &mut callback).await; // `completed`
    c.drive(&id, &mut callback, quiet).await;
    assert_eq!(
        gate.arrived(),
        2,
        "only `start` and `completed` are requested"
    );
    print_steps("callback (black-forest-labs/flux-schnell)", &callback);

    let unchanged: Vec<&Step> = polling.iter().filter(|s| is_unchanged_poll(s)).collect();
    assert!(
        unchanged.len() >= 2,
        "the polling run needs polls that change nothing: {polling:#?}"
    );
    let per_unchanged: Vec<u64> = unchanged.iter().map(|s| total(&s.counts)).collect();
    let poll_fixed = sum(&polling) - per_unchanged.iter().sum::<u64>();
    println!(
        "\npolling: {} unchanged polls at {:?} requests each; the rest of the execution {} requests",
        unchanged.len(),
        per_unchanged,
        poll_fixed
    );
    println!(
        "polling with 5 unchanged polls: {} requests",
        poll_fixed + 5 * per_unchanged.iter().max().copied().unwrap_or(0)
    );
    println!("immediate: {} requests", sum(&immediate));
    println!("callback: {} requests", sum(&callback));

    // Budgets: the figures measured and explained in docs/benchmarks.md (issue 22's targets:
    // 3 per unchanged poll, 10 immediate, 25 polling with 5 unchanged polls, 25 callback; the
    // callback budget asserted is below the target). A
    // change that adds requests fails here.
    for s in &unchanged {
        assert!(
            total(&s.counts) <= POLL_STEP_BUDGET,
            "a poll that changes nothing made more than {POLL_STEP_BUDGET} AWS requests: {}",
            fmt_counts(&s.counts)
        );
    }
    assert!(
        sum(&immediate) <= IMMEDIATE_BUDGET,
        "an immediate execution made more than {IMMEDIATE_BUDGET} AWS requests: {}",
        sum(&immediate)
    );
    assert!(
        poll_fixed <= POLLING_REST_BUDGET,
        "a polling execution made {poll_fixed} AWS requests besides its unchanged polls"
    );
    let five = poll_fixed + 5 * per_unchanged.iter().max().copied().unwrap_or(0);
    assert!(
        five <= POLLING_REST_BUDGET + 5 * POLL_STEP_BUDGET && five <= 25,
        "a polling execution with 5 unchanged polls would make {five} AWS requests"
    );
    assert!(
        sum(&callback) <= CALLBACK_BUDGET,
        "a callback execution made {} AWS requests",
        sum(&callback)
    );
}
