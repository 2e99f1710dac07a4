//! The embedded ports against their contract (executor-port-contract, the same checks the
//! AWS ports pass), and what only they do: receipts that go stale, a receive limit that
//! dead-letters, keys that cannot leave the data directory, state that survives a reopen.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_embedded::EmbeddedBackend;
use executor_lifecycle::*;
use executor_port_contract::{QueueTime, Subject, TestClock, guard};
use std::sync::Arc;

fn setup() -> (tempfile::TempDir, EmbeddedBackend, Arc<TestClock>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at(1_000_000);
    let b = EmbeddedBackend::open(dir.path(), clock.clone()).unwrap();
    (dir, b, clock)
}

/// Fresh embedded ports for the contract.
async fn subject() -> Subject {
    let (dir, b, clock) = setup();
    Subject {
        guards: b.store.clone(),
        blobs: b.blobs.clone(),
        queue: b.store.clone(),
        limiter: b.limiter.clone(),
        clock,
        queue_time: QueueTime::Clock,
        keep: Box::new(dir),
    }
}

executor_port_contract::port_contract_tests!(subject);

#[tokio::test]
async fn in_flight_messages_are_hidden_and_stale_receipts_delete_nothing() {
    let (_d, b, c) = setup();
    let q = QueueName::Poll;
    b.store.send(q, "m1", 500).await.unwrap();
    assert!(
        b.store.receive(q, 10, 1000).await.unwrap().is_empty(),
        "delayed"
    );
    c.advance(500);
    let got = b.store.receive(q, 10, 1000).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].receive_count, 1);
    assert!(
        b.store.receive(q, 10, 1000).await.unwrap().is_empty(),
        "in flight"
    );
    c.advance(1000);
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
        c.advance(10);
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
async fn blob_keys_stay_in_the_data_directory() {
    let (_d, b, _c) = setup();
    assert!(b.blobs.put_once("../escape", vec![]).await.is_err());
}

#[tokio::test]
async fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    {
        let b = EmbeddedBackend::open(dir.path(), clock.clone()).unwrap();
        b.store
            .insert(&guard("ex_keep", "t", 1_000_000), None)
            .await
            .unwrap();
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
