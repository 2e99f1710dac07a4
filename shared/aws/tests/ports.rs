//! The AWS ports against a real moto server and a real redis-server on loopback (started by
//! scripts/services.sh). Each test creates its own table, bucket and queues.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_aws::config::QueueUrls;
use executor_aws::{AwsBackend, AwsConfig};
use executor_lifecycle::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

struct TestClock(AtomicI64);
impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn endpoint() -> String {
    std::env::var("EXECUTOR_TEST_AWS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5000".into())
}

fn redis_url() -> String {
    std::env::var("EXECUTOR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn reachable(url: &str) -> bool {
    let hostport = url.split("://").nth(1).unwrap_or(url).trim_end_matches('/');
    std::net::TcpStream::connect(hostport).is_ok()
}

/// Creates fresh resources and connects.
async fn backend() -> (AwsBackend, AwsConfig, Arc<TestClock>) {
    assert!(
        reachable(&endpoint()) && reachable(&redis_url()),
        "moto server ({}) and redis ({}) must be running: run scripts/services.sh",
        endpoint(),
        redis_url()
    );
    let tag = ulid::Ulid::new().to_string().to_lowercase();
    let mut cfg = AwsConfig {
        table: format!("executor-{tag}"),
        bucket: format!("executor-{tag}"),
        queues: HashMap::new(),
        outcome_queue_url: String::new(),
        limiter: executor_aws::LimiterChoice::Redis(redis_url()),
        secret_arn: None,
        endpoint_url: Some(endpoint()),
        region: "us-east-1".into(),
        s3_path_style: true,
    };
    let sdk = cfg.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(&cfg.bucket).send().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for q in QueueName::ALL {
        let url = sqs
            .create_queue()
            .queue_name(format!("{tag}-{}", q.as_str()))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        let dlq = sqs
            .create_queue()
            .queue_name(format!("{tag}-{}-dlq", q.as_str()))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        cfg.queues.insert(
            q,
            QueueUrls {
                url,
                dlq_url: Some(dlq),
            },
        );
    }
    cfg.outcome_queue_url = sqs
        .create_queue()
        .queue_name(format!("{tag}-outcomes"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let clock = Arc::new(TestClock(AtomicI64::new(1_700_000_000_000)));
    let ddb = executor_aws::DynamoGuardStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        cfg.table.clone(),
        clock.clone(),
    );
    ddb.create_table_if_missing().await.unwrap();
    let b = AwsBackend::connect(&cfg, clock.clone()).await.unwrap();
    (b, cfg, clock)
}

fn guard(id: &str, tenant: &str, created: i64) -> Guard {
    let req = ExecutionRequest {
        fallbacks: Default::default(),
        id: id.into(),
        tenant: tenant.into(),
        model: "m/x".into(),
        input: serde_json::json!({}),
        webhook_url: None,
        idempotency_key: None,
        created_at_ms: created,
        max_duration_ms: 60_000,
    };
    Guard::accepted(&req, "p", Shape::Polling)
}

#[tokio::test]
async fn conditional_commit_and_overlays() {
    let (b, _, _) = backend().await;
    let g = guard("ex_1", "t", 1000);
    assert_eq!(b.guards.insert(&g, None).await.unwrap(), Inserted::Created);
    b.guards.request_cancel("ex_1").await.unwrap();
    assert!(b.guards.record_callback("ex_1", "cb1").await.unwrap());
    assert!(!b.guards.record_callback("ex_1", "cb1").await.unwrap());
    assert!(b.guards.record_callback("ex_1", "cb2").await.unwrap());
    let mut n1 = g.advance(Event::SubmitStarted, 2000).unwrap();
    n1.outbox.push(Effect::Send {
        queue: QueueName::Submit,
        message: Message {
            execution_id: "ex_1".into(),
            version: Some(1),
        },
        delay_ms: 0,
    });
    let n2 = g.advance(Event::Canceled, 2000).unwrap();
    b.guards.commit(0, &n1).await.unwrap();
    assert!(matches!(
        b.guards.commit(0, &n2).await,
        Err(CommitError::Conflict)
    ));
    let read = b.guards.get("ex_1").await.unwrap().unwrap();
    assert_eq!((read.status(), read.version()), (Status::Submitting, 1));
    assert!(read.cancel_requested);
    assert_eq!(
        read.callbacks_received,
        vec!["cb1".to_string(), "cb2".to_string()]
    );
    assert_eq!(read.outbox.len(), 1);
    b.guards.clear_outbox("ex_1", 1).await.unwrap();
    assert!(
        b.guards
            .get("ex_1")
            .await
            .unwrap()
            .unwrap()
            .outbox
            .is_empty()
    );
}

#[tokio::test]
async fn idempotency_race_and_overdue_index() {
    let (b, _, _) = backend().await;
    let item = |id: &str| IdempotencyItem {
        tenant: "t".into(),
        key: "k".into(),
        execution_id: id.into(),
        request_hash: "h".into(),
    };
    assert_eq!(
        b.guards
            .insert(&guard("ex_a", "t", 1), Some(&item("ex_a")))
            .await
            .unwrap(),
        Inserted::Created
    );
    match b
        .guards
        .insert(&guard("ex_b", "t", 2), Some(&item("ex_b")))
        .await
        .unwrap()
    {
        Inserted::IdempotencyKeyTaken(i) => assert_eq!(i.execution_id, "ex_a"),
        other => panic!("{other:?}"),
    }
    assert!(
        b.guards.get("ex_b").await.unwrap().is_none(),
        "nothing half-written"
    );
    let due = b.guards.overdue(10, 100).await.unwrap();
    assert_eq!(
        due.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["ex_a"]
    );
}

/// The reconciler's index projects keys only (template.yaml, and the tables the tests make):
/// overdue executions are found by id in every shard and read from their own items, so what
/// comes back is the whole guard as it is now (outbox included), oldest first, and one that
/// has moved on is left out. Reading guards off the index items (as before) fails here: they
/// hold no `record`.
#[tokio::test]
async fn overdue_reads_whole_guards_behind_a_keys_only_index() {
    let (b, _, _) = backend().await;
    for i in 0..150 {
        b.guards
            .insert(&guard(&format!("ex_{i:03}"), "t", 1000 + i), None)
            .await
            .unwrap();
    }
    // ex_005 has an outbox waiting for the sweep; ex_000 moved on to a later due time.
    let g5 = b.guards.get("ex_005").await.unwrap().unwrap();
    let mut n5 = g5.advance(Event::SubmitStarted, 1005).unwrap();
    n5.next_due_ms = 1005;
    n5.outbox.push(Effect::Send {
        queue: QueueName::Poll,
        message: Message {
            execution_id: "ex_other".into(),
            version: Some(3),
        },
        delay_ms: 0,
    });
    b.guards.commit(0, &n5).await.unwrap();
    let g0 = b.guards.get("ex_000").await.unwrap().unwrap();
    let mut n0 = g0.advance(Event::SubmitStarted, 1000).unwrap();
    n0.next_due_ms = 50_000;
    b.guards.commit(0, &n0).await.unwrap();

    let due = b.guards.overdue(1_100, 1000).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|g| g.id.as_str()).collect();
    let want: Vec<String> = (1..100).map(|i| format!("ex_{i:03}")).collect();
    assert_eq!(
        ids, want,
        "every overdue execution of every shard, oldest first"
    );
    let five = due.iter().find(|g| g.id == "ex_005").unwrap();
    assert_eq!((five.status(), five.version()), (Status::Submitting, 1));
    assert_eq!(five.outbox.len(), 1, "the whole guard, read from its item");
    assert_eq!(
        b.guards
            .overdue(1_100, 10)
            .await
            .unwrap()
            .iter()
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>(),
        want[..10].iter().map(String::as_str).collect::<Vec<_>>(),
        "a limit takes the oldest"
    );
}

/// The table the tests and `executor dev --backend aws` create has the indexes template.yaml
/// declares (names, keys, projections), so the tests run against what a deploy has.
#[tokio::test]
async fn the_tables_the_tests_create_are_the_templates() {
    let (_, cfg, _) = backend().await;
    let sdk = cfg.sdk_config().await;
    let table = aws_sdk_dynamodb::Client::new(&sdk)
        .describe_table()
        .table_name(&cfg.table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let mut made: Vec<String> = table
        .global_secondary_indexes()
        .iter()
        .map(|i| {
            let keys: Vec<String> = i
                .key_schema()
                .iter()
                .map(|k| format!("{}:{}", k.attribute_name(), k.key_type().as_str()))
                .collect();
            let p = i.projection().unwrap();
            let mut extra: Vec<&str> = p.non_key_attributes().iter().map(String::as_str).collect();
            extra.sort();
            format!(
                "{} {} {} {}",
                i.index_name().unwrap(),
                keys.join(","),
                p.projection_type().unwrap().as_str(),
                extra.join(",")
            )
        })
        .collect();
    made.sort();
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
    )
    .unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let props = &doc["Resources"]["ExecutionsTable"]["Properties"];
    let mut declared: Vec<String> = props["GlobalSecondaryIndexes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|i| {
            let keys: Vec<String> = i["KeySchema"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        k["AttributeName"].as_str().unwrap(),
                        k["KeyType"].as_str().unwrap()
                    )
                })
                .collect();
            let mut extra: Vec<&str> = i["Projection"]["NonKeyAttributes"]
                .as_sequence()
                .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            extra.sort();
            format!(
                "{} {} {} {}",
                i["IndexName"].as_str().unwrap(),
                keys.join(","),
                i["Projection"]["ProjectionType"].as_str().unwrap(),
                extra.join(",")
            )
        })
        .collect();
    declared.sort();
    assert_eq!(made, declared);
    assert!(
        declared
            .iter()
            .any(|d| d.starts_with("by-due ") && !d.contains(" ALL ")),
        "by-due projects only what the reconciler reads: {declared:?}"
    );
}

#[tokio::test]
async fn list_newest_first_with_cursor_and_tenant() {
    let (b, _, _) = backend().await;
    for i in 0..5 {
        b.guards
            .insert(&guard(&format!("ex_{i}"), "t", 1000 + i), None)
            .await
            .unwrap();
    }
    b.guards
        .insert(&guard("ex_other", "u", 5000), None)
        .await
        .unwrap();
    let q = ListQuery {
        tenant: Some("t".into()),
        limit: 2,
        ..Default::default()
    };
    let p1 = b.guards.list(&q).await.unwrap();
    assert_eq!(
        p1.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["ex_4", "ex_3"]
    );
    let last = p1.last().unwrap();
    let p2 = b
        .guards
        .list(&ListQuery {
            before: Some((last.created_at_ms, last.id.clone())),
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        p2.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["ex_2", "ex_1"]
    );
}

#[tokio::test]
async fn blobs_are_write_once() {
    let (b, _, _) = backend().await;
    assert_eq!(
        b.blobs
            .put_once("executions/ex_1/request", b"one".to_vec())
            .await
            .unwrap(),
        PutOutcome::Written
    );
    assert_eq!(
        b.blobs
            .put_once("executions/ex_1/request", b"two".to_vec())
            .await
            .unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(
        b.blobs
            .get("executions/ex_1/request")
            .await
            .unwrap()
            .unwrap(),
        b"one"
    );
    assert!(b.blobs.get("executions/ex_1/none").await.unwrap().is_none());
    b.blobs
        .put_once("executions/ex_1/transitions/0000000001", b"x".to_vec())
        .await
        .unwrap();
    b.blobs
        .put_once("executions/ex_1/transitions/0000000000", b"x".to_vec())
        .await
        .unwrap();
    assert_eq!(
        b.blobs
            .list("executions/ex_1/transitions/")
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn sqs_delay_visibility_and_dead_letter() {
    let (b, cfg, _) = backend().await;
    let q = QueueName::Poll;
    b.queue.send(q, "later", 1500).await.unwrap();
    assert!(
        b.queue
            .receive(q, 10, 1000)
            .await
            .unwrap()
            .iter()
            .all(|d| d.body != "later"),
        "delayed"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let got = b.queue.receive(q, 10, 1000).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].receive_count, 1);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let again = b.queue.receive(q, 10, 1000).await.unwrap();
    assert_eq!(again.len(), 1, "redelivered after the visibility timeout");
    assert_eq!(again[0].receive_count, 2);
    b.queue
        .dead_letter(q, &again[0].receipt, &again[0].body, "test")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(
        b.queue.receive(q, 10, 1000).await.unwrap().is_empty(),
        "gone after dead-lettering"
    );
    // The dead-letter queue holds the message as it was (a redrive sends it back unchanged),
    // with the reason beside it. Before: a new body {dead_lettered_from, reason} replaced it.
    let sdk = cfg.sdk_config().await;
    let dlq = cfg.queues[&q].dlq_url.clone().unwrap();
    let got = aws_sdk_sqs::Client::new(&sdk)
        .receive_message()
        .queue_url(&dlq)
        .message_attribute_names("All")
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let m = &got.messages()[0];
    assert_eq!(m.body(), Some("later"));
    let attrs = m.message_attributes().unwrap();
    assert_eq!(attrs["reason"].string_value(), Some("test"));
    assert_eq!(attrs["dead_lettered_from"].string_value(), Some("poll"));
}

/// What every inflight limiter must do: under `callers` concurrent acquirers of distinct
/// leases, never more than `capacity` granted (exactly `capacity` when one item holds them
/// all); re-acquiring a held lease is idempotent; two releases of one lease free one slot;
/// leases expire.
async fn limiter_contract(
    l: Arc<dyn InflightLimiter>,
    clock: &TestClock,
    capacity: u32,
    callers: usize,
    exact: bool,
) {
    let scope = format!("p-{}", ulid::Ulid::new());
    let mut handles = Vec::new();
    for i in 0..callers {
        let l = l.clone();
        let scope = scope.clone();
        handles.push(tokio::spawn(async move {
            l.acquire(&scope, &format!("lease{i}"), capacity, 10_000)
                .await
                .unwrap()
        }));
    }
    let mut granted = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        if h.await.unwrap() {
            granted.push(i);
        }
    }
    let n = granted.len() as u32;
    assert!(
        n <= capacity,
        "{n} leases granted on a capacity of {capacity}"
    );
    if exact {
        assert_eq!(n, capacity);
    } else {
        assert!(n > 0);
    }
    assert_eq!(l.inflight(&scope).await.unwrap(), n);
    let held = format!("lease{}", granted[0]);
    assert!(
        l.acquire(&scope, &held, capacity, 10_000).await.unwrap(),
        "re-acquire is idempotent"
    );
    assert_eq!(
        l.inflight(&scope).await.unwrap(),
        n,
        "re-acquire counted once"
    );
    // Two finalizers release the same lease: one slot frees, not two.
    let (l1, l2) = (l.clone(), l.clone());
    let (s1, s2, h1, h2) = (scope.clone(), scope.clone(), held.clone(), held.clone());
    let _ = tokio::join!(async move { l1.release(&s1, &h1).await }, async move {
        l2.release(&s2, &h2).await
    });
    assert_eq!(l.inflight(&scope).await.unwrap(), n - 1);
    // The freed slot goes to the next taker (the same lease id: it maps to the freed item).
    assert!(l.acquire(&scope, &held, capacity, 10_000).await.unwrap());
    if exact {
        assert!(!l.acquire(&scope, "over", capacity, 10_000).await.unwrap());
    }
    l.release(&scope, "never-taken").await.unwrap();
    clock.0.fetch_add(20_000, Ordering::SeqCst);
    assert_eq!(l.inflight(&scope).await.unwrap(), 0, "leases expire");
    assert!(
        l.acquire(&scope, "after-expiry", capacity, 10_000)
            .await
            .unwrap(),
        "expired leases free their slots"
    );
}

#[tokio::test]
async fn redis_leases_capacity_expiry_and_idempotent_release() {
    let (b, _, clock) = backend().await;
    limiter_contract(b.limiter.clone(), &clock, 5, 50, true).await;
}

/// ElastiCache Serverless accepts only TLS: the limiter connects with `rediss://` to a
/// redis-server that listens with TLS only (scripts/services.sh makes its certificates with
/// openssl), trusting the test CA.
#[tokio::test]
async fn redis_over_tls() {
    let url = std::env::var("EXECUTOR_TEST_REDIS_TLS_URL")
        .unwrap_or_else(|_| "rediss://127.0.0.1:6380".into());
    let ca_path = std::env::var("EXECUTOR_TEST_REDIS_CA").unwrap_or_else(|_| {
        format!(
            "{}/executor-services/redis-tls/ca.crt",
            std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into())
        )
    });
    let ca = std::fs::read(&ca_path)
        .unwrap_or_else(|e| panic!("{ca_path}: {e}: run scripts/services.sh (TLS redis)"));
    let clock = Arc::new(TestClock(AtomicI64::new(1_700_000_000_000)));
    let l = executor_aws::RedisLimiter::connect_with_ca(&url, Some(ca), clock.clone())
        .await
        .unwrap();
    limiter_contract(Arc::new(l), &clock, 3, 20, true).await;
    // Without the CA the server's certificate is refused: TLS is really verified.
    let e = executor_aws::RedisLimiter::connect_with_ca(&url, None, clock.clone())
        .await
        .err()
        .expect("an unknown CA is refused")
        .to_string();
    assert!(e.contains("not reachable"), "{e}");
    // And the plain port of a TLS-only server is not there.
    let plain = url.replace("rediss://", "redis://");
    assert!(
        executor_aws::RedisLimiter::connect_with_ca(&plain, None, clock)
            .await
            .is_err()
    );
}

fn test_ca() -> Vec<u8> {
    let ca_path = std::env::var("EXECUTOR_TEST_REDIS_CA").unwrap_or_else(|_| {
        format!(
            "{}/executor-services/redis-tls/ca.crt",
            std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into())
        )
    });
    std::fs::read(&ca_path)
        .unwrap_or_else(|e| panic!("{ca_path}: {e}: run scripts/services.sh (TLS redis)"))
}

/// ElastiCache Serverless is cluster mode enabled (and TLS only): scripts/services.sh runs a
/// TLS-only Redis Cluster of three masters on 127.0.0.1:7000-7002. A plain client connected to
/// one node gets `MOVED` for every scope whose slot another node owns (what the limiter did
/// before: it used one connection whatever the server); the limiter sees `cluster_enabled:1`
/// and uses the cluster client, which passes the limiter contract and serves scopes on every
/// node; a scope's keys share one slot (hash tag), as the Lua scripts require.
#[tokio::test]
async fn redis_cluster_over_tls() {
    use executor_aws::{RedisLimiter, RedisMode};
    let url = std::env::var("EXECUTOR_TEST_REDIS_CLUSTER_URL")
        .unwrap_or_else(|_| "rediss://127.0.0.1:7000".into());
    let clock = Arc::new(TestClock(AtomicI64::new(1_700_000_000_000)));
    let scopes: Vec<String> = (0..12)
        .map(|i| format!("p{i}-{}", ulid::Ulid::new()))
        .collect();

    let plain =
        RedisLimiter::connect_with(&url, Some(test_ca()), RedisMode::Standalone, clock.clone())
            .await
            .unwrap();
    assert!(!plain.is_cluster());
    let mut moved = 0;
    for scope in &scopes {
        match plain.acquire(scope, "l", 5, 10_000).await {
            Ok(_) => {}
            Err(e) => {
                assert!(e.to_string().to_lowercase().contains("moved"), "{e}");
                moved += 1;
            }
        }
    }
    assert!(moved > 0, "some of 12 scopes live on the other two nodes");

    let l = RedisLimiter::connect_with_ca(&url, Some(test_ca()), clock.clone())
        .await
        .unwrap();
    assert!(
        l.is_cluster(),
        "cluster_enabled:1 selects the cluster client"
    );
    for scope in &scopes {
        assert!(l.acquire(scope, "l", 5, 10_000).await.unwrap(), "{scope}");
        assert_eq!(l.inflight(scope).await.unwrap(), 1, "{scope}");
        l.release(scope, "l").await.unwrap();
    }
    let l = Arc::new(l);
    limiter_contract(l.clone(), &clock, 3, 20, true).await;

    let client = redis::Client::build_with_tls(
        url.as_str(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(test_ca()),
        },
    )
    .unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for scope in &scopes {
        let mut slots = std::collections::BTreeSet::new();
        for k in executor_aws::limiter::keys(scope)
            .iter()
            .chain([&format!("{{{scope}}}")])
        {
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(k)
                .query_async(&mut conn)
                .await
                .unwrap();
            slots.insert(slot);
        }
        assert_eq!(slots.len(), 1, "{scope}: one slot for all its keys");
    }

    // A plain server stays on the plain client.
    let standalone = RedisLimiter::connect_with_ca(&redis_url(), None, clock)
        .await
        .unwrap();
    assert!(!standalone.is_cluster());
}

async fn dynamo_limiter(cfg: &AwsConfig, clock: Arc<TestClock>) -> executor_aws::DynamoLimiter {
    let sdk = cfg.sdk_config().await;
    executor_aws::DynamoLimiter::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        cfg.table.clone(),
        clock,
    )
}

/// The default limiter on AWS: leases as conditional writes on shard items of the table.
/// One item for a small capacity (exactly the capacity granted under 40 racing acquirers).
#[tokio::test]
async fn dynamodb_leases_capacity_expiry_and_release_by_id() {
    let (_, cfg, clock) = backend().await;
    let l = dynamo_limiter(&cfg, clock.clone()).await;
    limiter_contract(Arc::new(l), &clock, 5, 40, true).await;
}

/// A large capacity spreads over several items (no hot key per provider); the shares add up
/// to the capacity, so 150 racing acquirers on a capacity of 96 never get more than 96.
#[tokio::test]
async fn dynamodb_leases_spread_over_shards_never_exceed_capacity() {
    let (_, cfg, clock) = backend().await;
    let l = dynamo_limiter(&cfg, clock.clone()).await;
    assert_eq!(executor_aws::dynamo_limiter::shards_for(96), 3);
    let scope_plan = |scope: &str| (scope.to_string(), 96u32);
    let l = Arc::new(l);
    // The plan is per scope: the contract's scopes are fresh, so plan them by prefix as the
    // app does from the catalog (one scope here).
    let scope = format!("p-{}", ulid::Ulid::new());
    l.plan([scope_plan(&scope)]);
    let mut handles = Vec::new();
    for i in 0..150 {
        let l = l.clone();
        let scope = scope.clone();
        handles.push(tokio::spawn(async move {
            l.acquire(&scope, &format!("lease{i}"), 96, 10_000)
                .await
                .unwrap()
        }));
    }
    let mut granted = 0u32;
    for h in handles {
        granted += u32::from(h.await.unwrap());
    }
    assert!(granted <= 96, "{granted} leases on a capacity of 96");
    assert!(granted >= 80, "the shards fill up: {granted}");
    assert_eq!(l.inflight(&scope).await.unwrap(), granted);
    for i in 0..150 {
        l.release(&scope, &format!("lease{i}")).await.unwrap();
    }
    assert_eq!(l.inflight(&scope).await.unwrap(), 0, "released by id");
}

#[tokio::test]
async fn connect_names_what_is_missing() {
    let (_, mut cfg, clock) = backend().await;
    cfg.table = "no-such-table".into();
    let e = AwsBackend::connect(&cfg, clock.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("DynamoDB table 'no-such-table' not found"),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
    let (_, mut cfg, _) = backend().await;
    cfg.limiter = executor_aws::LimiterChoice::Redis("redis://127.0.0.1:1".into());
    let e = AwsBackend::connect(&cfg, clock)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("Redis at redis://127.0.0.1:1 not reachable"),
        "{e}"
    );
}

/// The deployment's secret is read at start and re-read once stale: a rotation is picked up
/// without a redeploy, an unchanged secret reports no change, and a secret that cannot be
/// read fails the start with one line naming it.
#[tokio::test]
async fn secrets_are_read_at_run_time_and_refreshed() {
    let (_, cfg, _) = backend().await;
    let sdk = cfg.sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = format!("executor-{}", ulid::Ulid::new());
    let arn = sm
        .create_secret()
        .name(&name)
        .secret_string(r#"{"OPENAI_API_KEY": "sk-one", "EXECUTOR_WEBHOOK_SECRET": "whsec_b25l"}"#)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let cache = executor_aws::secrets::SecretsCache::open(sm.clone(), &arn)
        .await
        .unwrap();
    assert_eq!(cache.values().values["OPENAI_API_KEY"], "sk-one");
    let fresh = std::time::Duration::from_secs(300);
    assert!(
        cache.refresh_if_older(fresh).await.is_none(),
        "not stale yet"
    );
    sm.put_secret_value()
        .secret_id(&arn)
        .secret_string(r#"{"OPENAI_API_KEY": "sk-two", "EXECUTOR_WEBHOOK_SECRET": "whsec_b25l"}"#)
        .send()
        .await
        .unwrap();
    let rotated = cache
        .refresh_if_older(std::time::Duration::ZERO)
        .await
        .expect("the rotation is seen");
    assert_eq!(rotated.values["OPENAI_API_KEY"], "sk-two");
    assert!(
        cache
            .refresh_if_older(std::time::Duration::ZERO)
            .await
            .is_none(),
        "unchanged"
    );
    let e = executor_aws::secrets::SecretsCache::open(
        sm,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing",
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("secret arn:aws:secretsmanager") && e.contains("cannot be read"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}

/// The AWS ports refuse oversize writes before AWS does, with the same limits as the
/// embedded ports: a guard item over 400 KB, a message over 256 KiB.
#[tokio::test]
async fn oversize_writes_are_refused() {
    let (b, _, _) = backend().await;
    let g = guard("ex_big", "t", 1000);
    b.guards.insert(&g, None).await.unwrap();
    let mut next = g.advance(Event::SubmitStarted, 2000).unwrap();
    next.hot.provider_status = Some("x".repeat(500 * 1024));
    assert!(matches!(
        b.guards.commit(0, &next).await,
        Err(CommitError::Store(StoreError::TooLarge(_)))
    ));
    assert!(matches!(
        b.queue
            .send(QueueName::Poll, &"y".repeat(300 * 1024), 0)
            .await,
        Err(StoreError::TooLarge(_))
    ));
}

/// The reconciler's failure record is an attribute of the execution's item: overlaid on
/// reads, never overwritten by a commit, listed as parked only while it is about the current
/// version, and removed on request.
#[tokio::test]
async fn reconcile_failures_are_kept_beside_the_guard_and_list_parked() {
    let (b, _, _) = backend().await;
    let g = guard("ex_p", "tp", 1000);
    b.guards.insert(&g, None).await.unwrap();
    b.guards
        .insert(&guard("ex_q", "tp", 1001), None)
        .await
        .unwrap();
    let rec = ReconcileFailures {
        version: 0,
        failures: 5,
        first_failure_ms: 1100,
        last_failure_ms: 1200,
        reason: "backend unavailable: the sink refused evt_ex_p".into(),
    };
    b.guards
        .set_reconcile_failures("ex_p", Some(&rec))
        .await
        .unwrap();
    let young = ReconcileFailures {
        failures: 4,
        ..rec.clone()
    };
    b.guards
        .set_reconcile_failures("ex_q", Some(&young))
        .await
        .unwrap();
    b.guards
        .set_reconcile_failures("ex_unknown", Some(&rec))
        .await
        .unwrap();
    assert!(b.guards.get("ex_unknown").await.unwrap().is_none());
    let read = b.guards.get("ex_p").await.unwrap().unwrap();
    assert_eq!(read.reconcile_failures.as_ref(), Some(&rec));
    assert!(read.parked().is_some());
    let q = ListQuery {
        tenant: Some("tp".into()),
        parked: true,
        limit: 10,
        ..Default::default()
    };
    let ids = |v: Vec<Guard>| v.into_iter().map(|g| g.id).collect::<Vec<_>>();
    assert_eq!(
        ids(b.guards.list(&q).await.unwrap()),
        vec!["ex_p".to_string()]
    );
    // A commit keeps the record; the execution has moved on, so it no longer parks it.
    b.guards
        .commit(0, &g.advance(Event::SubmitStarted, 1300).unwrap())
        .await
        .unwrap();
    let read = b.guards.get("ex_p").await.unwrap().unwrap();
    assert_eq!(read.reconcile_failures.as_ref(), Some(&rec));
    assert!(read.parked().is_none());
    assert!(b.guards.list(&q).await.unwrap().is_empty());
    b.guards.set_reconcile_failures("ex_p", None).await.unwrap();
    assert!(
        b.guards
            .get("ex_p")
            .await
            .unwrap()
            .unwrap()
            .reconcile_failures
            .is_none()
    );
}
