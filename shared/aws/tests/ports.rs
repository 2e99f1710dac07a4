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
        redis_url: redis_url(),
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
    let (b, _, _) = backend().await;
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
        .dead_letter(q, &again[0].receipt, "test")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(
        b.queue.receive(q, 10, 1000).await.unwrap().is_empty(),
        "gone after dead-lettering"
    );
}

#[tokio::test]
async fn redis_leases_capacity_expiry_and_idempotent_release() {
    let (b, _, clock) = backend().await;
    let scope = format!("p-{}", ulid::Ulid::new());
    let mut handles = Vec::new();
    for i in 0..50 {
        let l = b.limiter.clone();
        let scope = scope.clone();
        handles.push(tokio::spawn(async move {
            l.acquire(&scope, &format!("lease{i}"), 5, 10_000)
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
    assert_eq!(granted.len(), 5);
    let held = format!("lease{}", granted[0]);
    assert!(
        b.limiter.acquire(&scope, &held, 5, 10_000).await.unwrap(),
        "re-acquire is idempotent"
    );
    // Two finalizers release the same lease: one slot frees, not two.
    let (l1, l2) = (b.limiter.clone(), b.limiter.clone());
    let (s1, s2, h1, h2) = (scope.clone(), scope.clone(), held.clone(), held.clone());
    let _ = tokio::join!(async move { l1.release(&s1, &h1).await }, async move {
        l2.release(&s2, &h2).await
    });
    assert_eq!(b.limiter.inflight(&scope).await.unwrap(), 4);
    assert!(b.limiter.acquire(&scope, "new", 5, 10_000).await.unwrap());
    assert!(!b.limiter.acquire(&scope, "over", 5, 10_000).await.unwrap());
    clock.0.fetch_add(20_000, Ordering::SeqCst);
    assert_eq!(
        b.limiter.inflight(&scope).await.unwrap(),
        0,
        "leases expire"
    );
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
    cfg.redis_url = "redis://127.0.0.1:1".into();
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
