//! The embedded ports against their contract (see executor_lifecycle::ports).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_embedded::EmbeddedBackend;
use executor_lifecycle::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

struct TestClock(AtomicI64);
impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn setup() -> (tempfile::TempDir, EmbeddedBackend, Arc<TestClock>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicI64::new(1_000_000)));
    let b = EmbeddedBackend::open(dir.path(), clock.clone()).unwrap();
    (dir, b, clock)
}

fn guard(id: &str) -> Guard {
    let req = ExecutionRequest {
        fallbacks: Default::default(),
        id: id.into(),
        tenant: "t".into(),
        model: "m/x".into(),
        input: serde_json::json!({}),
        webhook_url: None,
        idempotency_key: None,
        created_at_ms: 1_000_000,
        max_duration_ms: 60_000,
    };
    Guard::accepted(&req, "p", Shape::Polling)
}

#[tokio::test]
async fn commit_is_conditional_and_keeps_cancel_and_callbacks() {
    let (_d, b, _c) = setup();
    let g = guard("ex_1");
    assert_eq!(b.store.insert(&g, None).await.unwrap(), Inserted::Created);
    b.store.request_cancel("ex_1").await.unwrap();
    assert!(b.store.record_callback("ex_1", "cb1").await.unwrap());
    assert!(!b.store.record_callback("ex_1", "cb1").await.unwrap());
    let n1 = g.advance(Event::SubmitStarted, 1_000_001).unwrap();
    let n2 = g.advance(Event::Canceled, 1_000_001).unwrap();
    b.store.commit(0, &n1).await.unwrap();
    assert!(matches!(
        b.store.commit(0, &n2).await,
        Err(CommitError::Conflict)
    ));
    let read = b.store.get("ex_1").await.unwrap().unwrap();
    assert_eq!(read.status(), Status::Submitting);
    assert_eq!(read.version(), 1);
    assert!(read.cancel_requested);
    assert_eq!(read.callbacks_received, vec!["cb1".to_string()]);
}

#[tokio::test]
async fn idempotency_key_is_taken_once() {
    let (_d, b, _c) = setup();
    let item = |id: &str| IdempotencyItem {
        tenant: "t".into(),
        key: "k".into(),
        execution_id: id.into(),
        request_hash: "h".into(),
    };
    assert_eq!(
        b.store
            .insert(&guard("ex_a"), Some(&item("ex_a")))
            .await
            .unwrap(),
        Inserted::Created
    );
    match b
        .store
        .insert(&guard("ex_b"), Some(&item("ex_b")))
        .await
        .unwrap()
    {
        Inserted::IdempotencyKeyTaken(i) => assert_eq!(i.execution_id, "ex_a"),
        other => panic!("{other:?}"),
    }
    assert!(
        b.store.get("ex_b").await.unwrap().is_none(),
        "nothing half-written"
    );
}

#[tokio::test]
async fn blobs_are_write_once() {
    let (_d, b, _c) = setup();
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
    b.blobs
        .put_once("executions/ex_1/transitions/0000000001", b"x".to_vec())
        .await
        .unwrap();
    b.blobs
        .put_once("executions/ex_1/transitions/0000000000", b"x".to_vec())
        .await
        .unwrap();
    let keys = b.blobs.list("executions/ex_1/transitions/").await.unwrap();
    assert_eq!(
        keys,
        vec![
            "executions/ex_1/transitions/0000000000",
            "executions/ex_1/transitions/0000000001"
        ]
    );
    assert!(b.blobs.put_once("../escape", vec![]).await.is_err());
}

#[tokio::test]
async fn queue_delay_visibility_and_stale_receipts() {
    let (_d, b, c) = setup();
    let q = QueueName::Poll;
    b.store.send(q, "m1", 500).await.unwrap();
    assert!(
        b.store.receive(q, 10, 1000).await.unwrap().is_empty(),
        "delayed"
    );
    c.0.fetch_add(500, Ordering::SeqCst);
    let got = b.store.receive(q, 10, 1000).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].receive_count, 1);
    assert!(
        b.store.receive(q, 10, 1000).await.unwrap().is_empty(),
        "in flight"
    );
    c.0.fetch_add(1000, Ordering::SeqCst);
    let again = b.store.receive(q, 10, 1000).await.unwrap();
    assert_eq!(again[0].receive_count, 2);
    b.store.ack(q, &got[0].receipt).await.unwrap();
    assert_eq!(
        b.store.queue_depth(q).await.unwrap(),
        1,
        "stale receipt deletes nothing"
    );
    b.store.retry_later(q, &again[0].receipt, 0).await.unwrap();
    let third = b.store.receive(q, 10, 1000).await.unwrap();
    b.store.ack(q, &third[0].receipt).await.unwrap();
    assert_eq!(b.store.queue_depth(q).await.unwrap(), 0);
}

#[tokio::test]
async fn dead_letters_after_max_receives_and_on_request() {
    let (_d, b, c) = setup();
    let q = QueueName::Submit;
    b.store.send(q, "poison", 0).await.unwrap();
    for _ in 0..10 {
        assert_eq!(b.store.receive(q, 1, 10).await.unwrap().len(), 1);
        c.0.fetch_add(10, Ordering::SeqCst);
    }
    assert!(b.store.receive(q, 1, 10).await.unwrap().is_empty());
    assert_eq!(b.store.dead_letter_count().await.unwrap(), 1);
    b.store.send(q, "bad", 0).await.unwrap();
    let d = b.store.receive(q, 1, 10).await.unwrap();
    b.store
        .dead_letter(q, &d[0].receipt, &d[0].body, "malformed")
        .await
        .unwrap();
    assert_eq!(b.store.dead_letter_count().await.unwrap(), 2);
}

#[tokio::test]
async fn limiter_capacity_expiry_and_idempotent_release() {
    let (_d, b, c) = setup();
    let l = b.limiter.clone();
    let mut handles = Vec::new();
    for i in 0..50 {
        let l = l.clone();
        handles.push(tokio::spawn(async move {
            l.acquire("p", &format!("lease{i}"), 5, 1000).await.unwrap()
        }));
    }
    let mut granted = 0;
    for h in handles {
        granted += usize::from(h.await.unwrap());
    }
    assert_eq!(granted, 5);
    assert!(
        l.acquire("p", "lease0", 5, 1000).await.unwrap() || l.inflight("p").await.unwrap() == 5
    );
    l.release("p", "lease0").await.unwrap();
    l.release("p", "lease0").await.unwrap();
    assert!(l.inflight("p").await.unwrap() >= 4);
    c.0.fetch_add(2000, Ordering::SeqCst);
    assert_eq!(l.inflight("p").await.unwrap(), 0, "expired");
}

#[tokio::test]
async fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    {
        let b = EmbeddedBackend::open(dir.path(), clock.clone()).unwrap();
        b.store.insert(&guard("ex_keep"), None).await.unwrap();
        b.store
            .send(
                QueueName::Submit,
                "{\"execution_id\":\"ex_keep\",\"version\":0}",
                0,
            )
            .await
            .unwrap();
        b.blobs
            .put_once("executions/ex_keep/request", b"r".to_vec())
            .await
            .unwrap();
    }
    let b = EmbeddedBackend::open(dir.path(), clock).unwrap();
    assert!(b.store.get("ex_keep").await.unwrap().is_some());
    assert_eq!(
        b.store
            .receive(QueueName::Submit, 10, 1000)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        b.blobs
            .get("executions/ex_keep/request")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn list_is_newest_first_with_a_cursor() {
    let (_d, b, _c) = setup();
    for i in 0..5 {
        let mut req_g = guard(&format!("ex_{i}"));
        req_g.created_at_ms = 1000 + i;
        b.store.insert(&req_g, None).await.unwrap();
    }
    let q = ListQuery {
        tenant: Some("t".into()),
        limit: 2,
        ..Default::default()
    };
    let p1 = b.store.list(&q).await.unwrap();
    assert_eq!(
        p1.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["ex_4", "ex_3"]
    );
    let last = p1.last().unwrap();
    let q2 = ListQuery {
        before: Some((last.created_at_ms, last.id.clone())),
        ..q
    };
    let p2 = b.store.list(&q2).await.unwrap();
    assert_eq!(
        p2.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["ex_2", "ex_1"]
    );
}

/// The embedded ports refuse what AWS would: a guard item over DynamoDB's 400 KB (a 1.5 MB
/// inline image in an outbox was one), a queue message over SQS's 256 KiB.
#[tokio::test]
async fn oversize_writes_are_refused_as_aws_refuses_them() {
    let (_d, b, _c) = setup();
    let g = guard("ex_big");
    b.store.insert(&g, None).await.unwrap();
    let mut next = g.advance(Event::SubmitStarted, 1_000_001).unwrap();
    next.hot.provider_status = Some("x".repeat(500 * 1024));
    match b.store.commit(0, &next).await {
        Err(CommitError::Store(StoreError::TooLarge(why))) => {
            assert!(why.contains("ex_big") && why.contains("409600"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.store.get("ex_big").await.unwrap().unwrap().version(), 0);
    let body = "y".repeat(300 * 1024);
    assert!(matches!(
        b.store.send(QueueName::Poll, &body, 0).await,
        Err(StoreError::TooLarge(_))
    ));
    b.store
        .send(QueueName::Poll, &"z".repeat(200 * 1024), 0)
        .await
        .unwrap();
}

/// The reconciler's failure record lives beside the guard: overlaid on reads, never
/// overwritten by a commit, listed as parked only while it is about the current version, and
/// removed on request.
#[tokio::test]
async fn reconcile_failures_are_kept_beside_the_guard_and_list_parked() {
    let (_d, b, _c) = setup();
    let g = guard("ex_p");
    b.store.insert(&g, None).await.unwrap();
    b.store.insert(&guard("ex_q"), None).await.unwrap();
    let rec = ReconcileFailures {
        version: 0,
        failures: 5,
        first_failure_ms: 1_000_100,
        last_failure_ms: 1_000_200,
        reason: "backend unavailable: the sink refused evt_ex_p".into(),
    };
    b.store
        .set_reconcile_failures("ex_p", Some(&rec))
        .await
        .unwrap();
    let young = ReconcileFailures {
        failures: 4,
        ..rec.clone()
    };
    b.store
        .set_reconcile_failures("ex_q", Some(&young))
        .await
        .unwrap();
    b.store
        .set_reconcile_failures("ex_unknown", Some(&rec))
        .await
        .unwrap();
    assert!(b.store.get("ex_unknown").await.unwrap().is_none());
    let read = b.store.get("ex_p").await.unwrap().unwrap();
    assert_eq!(read.reconcile_failures.as_ref(), Some(&rec));
    assert!(read.parked().is_some());
    let parked = |b: &EmbeddedBackend| {
        let store = b.store.clone();
        async move {
            let q = ListQuery {
                tenant: Some("t".into()),
                parked: true,
                limit: 10,
                ..Default::default()
            };
            store
                .list(&q)
                .await
                .unwrap()
                .into_iter()
                .map(|g| g.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(parked(&b).await, vec!["ex_p".to_string()]);
    // A commit keeps the record; the execution has moved on, so it no longer parks it.
    b.store
        .commit(0, &g.advance(Event::SubmitStarted, 1_000_300).unwrap())
        .await
        .unwrap();
    let read = b.store.get("ex_p").await.unwrap().unwrap();
    assert_eq!(read.reconcile_failures.as_ref(), Some(&rec));
    assert!(read.parked().is_none());
    assert!(parked(&b).await.is_empty());
    b.store.set_reconcile_failures("ex_p", None).await.unwrap();
    assert!(
        b.store
            .get("ex_p")
            .await
            .unwrap()
            .unwrap()
            .reconcile_failures
            .is_none()
    );
}
