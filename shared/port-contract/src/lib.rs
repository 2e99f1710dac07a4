//! The storage ports' contract, as checks every backend's ports pass: guards (conditional
//! commits, overlays, idempotency keys, listing, the reconciler's failure record), blobs
//! (write once), queues (delay, visibility, dead letters), the inflight limiter (capacity
//! under racing acquirers, idempotent acquire and release, expiry) and the size limits AWS
//! sets. Each backend's `tests/ports.rs` makes a fresh [`Subject`] and runs every check with
//! [`port_contract_tests!`], beside the checks only it can make (SQLite reopened, the
//! DynamoDB indexes, TLS Redis, ...).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use executor_lifecycle::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A clock the checks move by hand (leases expire, delays pass).
pub struct TestClock(pub AtomicI64);

impl TestClock {
    /// A clock at `now_ms`.
    pub fn at(now_ms: i64) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicI64::new(now_ms)))
    }

    /// Moves the clock `ms` forward.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// How a backend's queues see time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueTime {
    /// By the [`TestClock`] (the embedded queue table).
    Clock,
    /// By the wall clock (SQS): the checks wait.
    Real,
}

/// A backend's ports under test, fresh (nothing stored), on a [`TestClock`].
pub struct Subject {
    /// Guards, idempotency keys.
    pub guards: Arc<dyn GuardStore>,
    /// Blobs.
    pub blobs: Arc<dyn BlobStore>,
    /// Queues.
    pub queue: Arc<dyn Queue>,
    /// The inflight limiter.
    pub limiter: Arc<dyn InflightLimiter>,
    /// The clock the ports were given.
    pub clock: Arc<TestClock>,
    /// How the queues see time.
    pub queue_time: QueueTime,
    /// What the ports need kept alive (e.g. their temporary directory).
    pub keep: Box<dyn std::any::Any + Send>,
}

impl Subject {
    /// Lets `ms` pass for the ports: the test clock moves, and on real-time queues the check
    /// waits as long.
    pub async fn pass(&self, ms: u64) {
        self.clock.advance(ms as i64);
        if self.queue_time == QueueTime::Real {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

/// Runs every check of the contract as a test of its own, in a module `port_contract`:
/// `subject` names an `async fn() -> Subject` of the calling test file making fresh ports.
#[macro_export]
macro_rules! port_contract_tests {
    ($subject:ident) => {
        $crate::port_contract_tests!(@each $subject;
            conditional_commit_and_overlays,
            idempotency_key_is_taken_once,
            list_is_newest_first_with_a_cursor_per_tenant,
            blobs_are_write_once,
            queue_delay_visibility_and_dead_letter,
            limiter_capacity_expiry_and_idempotent_release,
            oversize_writes_are_refused_as_aws_refuses_them,
            reconcile_failures_are_kept_beside_the_guard_and_list_parked,
            budgets_are_reserved_at_insert_and_settled_once,
            uploaded_blobs_are_sized_read_in_part_and_deleted
        );
    };
    (@each $subject:ident; $($check:ident),+ $(,)?) => {
        mod port_contract {
            $(
                #[tokio::test]
                async fn $check() {
                    let subject = super::$subject().await;
                    $crate::$check(&subject).await;
                }
            )+
        }
    };
}

/// A fresh polling execution of `tenant`, created at `created_ms`.
pub fn guard(id: &str, tenant: &str, created_ms: i64) -> Guard {
    let req = ExecutionRequest {
        retries: None,
        fallbacks: Default::default(),
        id: id.into(),
        tenant: tenant.into(),
        model: "m/x".into(),
        input: serde_json::json!({}),
        webhook_url: None,
        idempotency_key: None,
        created_at_ms: created_ms,
        max_duration_ms: 60_000,
    };
    Guard::accepted(&req, "p", Shape::Polling)
}

/// A commit is conditional on the version; the cancel flag, callbacks and the outbox are
/// kept beside the record, and clearing the outbox empties it.
pub async fn conditional_commit_and_overlays(s: &Subject) {
    let b = &s.guards;
    let g = guard("ex_1", "t", 1000);
    assert_eq!(b.insert(&g, None).await.unwrap(), Inserted::Created);
    b.request_cancel("ex_1").await.unwrap();
    assert!(b.record_callback("ex_1", "cb1").await.unwrap());
    assert!(!b.record_callback("ex_1", "cb1").await.unwrap());
    assert!(b.record_callback("ex_1", "cb2").await.unwrap());
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
    b.commit(0, &n1).await.unwrap();
    assert!(matches!(b.commit(0, &n2).await, Err(CommitError::Conflict)));
    let read = b.get("ex_1").await.unwrap().unwrap();
    assert_eq!((read.status(), read.version()), (Status::Submitting, 1));
    assert!(read.cancel_requested);
    assert_eq!(
        read.callbacks_received,
        vec!["cb1".to_string(), "cb2".to_string()]
    );
    assert_eq!(read.outbox.len(), 1);
    b.clear_outbox("ex_1", 1).await.unwrap();
    assert!(b.get("ex_1").await.unwrap().unwrap().outbox.is_empty());
    // A callback body kept beside the guard (where the store keeps them) is recorded with its
    // id in one write, once, and no commit overwrites it.
    match b
        .record_callback_with_body("ex_1", "cb3", b"body")
        .await
        .unwrap()
    {
        Some(new) => {
            assert!(new);
            assert_eq!(
                b.record_callback_with_body("ex_1", "cb3", b"again")
                    .await
                    .unwrap(),
                Some(false)
            );
            let read = b.get("ex_1").await.unwrap().unwrap();
            let n2 = read.advance(Event::JobCreated, 3000).unwrap();
            b.commit(1, &n2).await.unwrap();
            let read = b.get("ex_1").await.unwrap().unwrap();
            assert_eq!(
                read.callbacks_received.last().map(String::as_str),
                Some("cb3")
            );
            assert_eq!(
                read.callback_bodies.get("cb3").map(Vec::as_slice),
                Some(&b"body"[..])
            );
        }
        None => assert!(b.record_callback("ex_1", "cb3").await.unwrap()),
    }
}

/// An idempotency key is taken once; the losing insert writes nothing, and only the
/// winner is overdue.
pub async fn idempotency_key_is_taken_once(s: &Subject) {
    let b = &s.guards;
    let item = |id: &str| IdempotencyItem {
        tenant: "t".into(),
        key: "k".into(),
        execution_id: id.into(),
        request_hash: "h".into(),
    };
    assert_eq!(
        b.insert(&guard("ex_a", "t", 1), Some(&item("ex_a")))
            .await
            .unwrap(),
        Inserted::Created
    );
    match b
        .insert(&guard("ex_b", "t", 2), Some(&item("ex_b")))
        .await
        .unwrap()
    {
        Inserted::IdempotencyKeyTaken(i) => assert_eq!(i.execution_id, "ex_a"),
        other => panic!("{other:?}"),
    }
    assert!(
        b.get("ex_b").await.unwrap().is_none(),
        "nothing half-written"
    );
    let due = b.overdue(10, 100).await.unwrap();
    assert_eq!(
        due.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["ex_a"]
    );
}

/// Listing is newest first, one tenant's, in pages joined by a cursor.
pub async fn list_is_newest_first_with_a_cursor_per_tenant(s: &Subject) {
    let b = &s.guards;
    for i in 0..5 {
        b.insert(&guard(&format!("ex_{i}"), "t", 1000 + i), None)
            .await
            .unwrap();
    }
    b.insert(&guard("ex_other", "u", 5000), None).await.unwrap();
    let q = ListQuery {
        tenant: Some("t".into()),
        limit: 2,
        ..Default::default()
    };
    let p1 = b.list(&q).await.unwrap();
    assert_eq!(
        p1.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["ex_4", "ex_3"]
    );
    let last = p1.last().unwrap();
    let p2 = b
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

/// A blob is written once (a second write keeps the first), a missing one is None, and a
/// listing is sorted.
pub async fn blobs_are_write_once(s: &Subject) {
    let b = &s.blobs;
    assert_eq!(
        b.put_once("executions/ex_1/request", b"one".to_vec())
            .await
            .unwrap(),
        PutOutcome::Written
    );
    assert_eq!(
        b.put_once("executions/ex_1/request", b"two".to_vec())
            .await
            .unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(
        b.get("executions/ex_1/request").await.unwrap().unwrap(),
        b"one"
    );
    assert!(b.get("executions/ex_1/none").await.unwrap().is_none());
    b.put_once("executions/ex_1/transitions/0000000001", b"x".to_vec())
        .await
        .unwrap();
    b.put_once("executions/ex_1/transitions/0000000000", b"x".to_vec())
        .await
        .unwrap();
    assert_eq!(
        b.list("executions/ex_1/transitions/").await.unwrap(),
        vec![
            "executions/ex_1/transitions/0000000000",
            "executions/ex_1/transitions/0000000001"
        ]
    );
}

/// A delayed message is not received before its delay; a received one comes back after its
/// visibility timeout with its receive count up; a dead-lettered one is gone. (SQS counts
/// whole seconds, rounded up: the delay is 2 s there, and a receive waits up to 1 s.)
pub async fn queue_delay_visibility_and_dead_letter(s: &Subject) {
    let q = QueueName::Poll;
    s.queue.send(q, "later", 1500).await.unwrap();
    assert!(
        s.queue
            .receive(q, 10, 1000)
            .await
            .unwrap()
            .iter()
            .all(|d| d.body != "later"),
        "delayed"
    );
    s.pass(1600).await;
    let got = s.queue.receive(q, 10, 1000).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "later");
    assert_eq!(got[0].receive_count, 1);
    s.pass(1200).await;
    let again = s.queue.receive(q, 10, 1000).await.unwrap();
    assert_eq!(again.len(), 1, "redelivered after the visibility timeout");
    assert_eq!(again[0].receive_count, 2);
    s.queue
        .dead_letter(q, &again[0].receipt, &again[0].body, "test")
        .await
        .unwrap();
    s.pass(1200).await;
    assert!(
        s.queue.receive(q, 10, 1000).await.unwrap().is_empty(),
        "gone after dead-lettering"
    );
}

/// The subject's limiter passes [`limiter_contract`] with a capacity of 5 under 50 racing
/// acquirers.
pub async fn limiter_capacity_expiry_and_idempotent_release(s: &Subject) {
    limiter_contract(s.limiter.clone(), &s.clock, 5, 50, true).await;
}

/// What every inflight limiter must do: under `callers` concurrent acquirers of distinct
/// leases, never more than `capacity` granted (exactly `capacity` when one item holds them
/// all); re-acquiring a held lease is idempotent; two releases of one lease free one slot;
/// leases expire.
pub async fn limiter_contract(
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
    clock.advance(20_000);
    assert_eq!(l.inflight(&scope).await.unwrap(), 0, "leases expire");
    assert!(
        l.acquire(&scope, "after-expiry", capacity, 10_000)
            .await
            .unwrap(),
        "expired leases free their slots"
    );
}

/// The ports refuse what AWS would, before writing anything: a guard item over DynamoDB's
/// 400 KB (a 1.5 MB inline image in an outbox was one), a queue message over SQS's 256 KiB;
/// a message under it is taken.
pub async fn oversize_writes_are_refused_as_aws_refuses_them(s: &Subject) {
    let g = guard("ex_big", "t", 1000);
    s.guards.insert(&g, None).await.unwrap();
    let mut next = g.advance(Event::SubmitStarted, 2000).unwrap();
    next.hot.provider_status = Some("x".repeat(500 * 1024));
    match s.guards.commit(0, &next).await {
        Err(CommitError::Store(StoreError::TooLarge(why))) => {
            assert!(why.contains("ex_big") && why.contains("409600"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.guards.get("ex_big").await.unwrap().unwrap().version(), 0);
    assert!(matches!(
        s.queue
            .send(QueueName::Poll, &"y".repeat(300 * 1024), 0)
            .await,
        Err(StoreError::TooLarge(_))
    ));
    s.queue
        .send(QueueName::Poll, &"z".repeat(200 * 1024), 0)
        .await
        .unwrap();
}

/// The reconciler's failure record lives beside the guard: overlaid on reads, never
/// overwritten by a commit, listed as parked only while it is about the current version, and
/// removed on request; a record for an unknown execution makes none.
pub async fn reconcile_failures_are_kept_beside_the_guard_and_list_parked(s: &Subject) {
    let b = &s.guards;
    let g = guard("ex_p", "tp", 1000);
    b.insert(&g, None).await.unwrap();
    b.insert(&guard("ex_q", "tp", 1001), None).await.unwrap();
    let rec = ReconcileFailures {
        version: 0,
        failures: 5,
        first_failure_ms: 1100,
        last_failure_ms: 1200,
        reason: "backend unavailable: the sink refused evt_ex_p".into(),
    };
    b.set_reconcile_failures("ex_p", Some(&rec)).await.unwrap();
    let young = ReconcileFailures {
        failures: 4,
        ..rec.clone()
    };
    b.set_reconcile_failures("ex_q", Some(&young))
        .await
        .unwrap();
    b.set_reconcile_failures("ex_unknown", Some(&rec))
        .await
        .unwrap();
    assert!(b.get("ex_unknown").await.unwrap().is_none());
    let read = b.get("ex_p").await.unwrap().unwrap();
    assert_eq!(read.reconcile_failures.as_ref(), Some(&rec));
    assert!(read.parked().is_some());
    let q = ListQuery {
        tenant: Some("tp".into()),
        parked: true,
        limit: 10,
        ..Default::default()
    };
    let ids = |v: Vec<Guard>| v.into_iter().map(|g| g.id).collect::<Vec<_>>();
    assert_eq!(ids(b.list(&q).await.unwrap()), vec!["ex_p".to_string()]);
    // A commit keeps the record; the execution has moved on, so it no longer parks it.
    b.commit(0, &g.advance(Event::SubmitStarted, 1300).unwrap())
        .await
        .unwrap();
    let read = b.get("ex_p").await.unwrap().unwrap();
    assert_eq!(read.reconcile_failures.as_ref(), Some(&rec));
    assert!(read.parked().is_none());
    assert!(b.list(&q).await.unwrap().is_empty());
    b.set_reconcile_failures("ex_p", None).await.unwrap();
    assert!(
        b.get("ex_p")
            .await
            .unwrap()
            .unwrap()
            .reconcile_failures
            .is_none()
    );
}

/// A guard holding `reserved` micro-dollars on tenant `t`'s $1 month budget.
fn holding(id: &str, reserved: i64) -> Guard {
    let mut g = guard(id, "t", 1000);
    let rule = BudgetRule {
        tenant: "t".into(),
        period: BudgetPeriod::Month,
        limit_usd: 1.0,
        model: None,
    };
    g.budget = Some(BudgetHold {
        lines: vec![rule.line_at(1000)],
        reserved_usd_micros: reserved,
        settled: None,
    });
    g
}

/// A budget is reserved in the insert's transaction and refuses what does not fit, writing
/// nothing; the commit that settles moves the reservation to spent once (a later commit, or
/// a commit that lost its race, moves nothing).
pub async fn budgets_are_reserved_at_insert_and_settled_once(s: &Subject) {
    let b = &s.guards;
    let g1 = holding("ex_b1", 600_000);
    let key = g1.budget.as_ref().unwrap().lines[0].key.clone();
    assert!(b.budget(&key).await.unwrap().is_none());
    assert_eq!(b.insert(&g1, None).await.unwrap(), Inserted::Created);
    let st = b.budget(&key).await.unwrap().unwrap();
    assert_eq!((st.reserved_usd_micros, st.spent_usd_micros), (600_000, 0));
    assert_eq!(st.line.limit_usd_micros, 1_000_000);
    // $0.40 left: $0.60 more does not fit, and nothing of it is written.
    match b.insert(&holding("ex_b2", 600_000), None).await.unwrap() {
        Inserted::BudgetExceeded(r) => {
            assert_eq!(r.estimate_usd_micros, 600_000);
            assert_eq!(r.state.remaining_usd_micros(), 400_000);
        }
        other => panic!("{other:?}"),
    }
    assert!(b.get("ex_b2").await.unwrap().is_none());
    assert_eq!(
        b.budget(&key).await.unwrap().unwrap().reserved_usd_micros,
        600_000
    );
    // A taken idempotency key is answered before the budget is looked at.
    let item = IdempotencyItem {
        tenant: "t".into(),
        key: "k".into(),
        execution_id: "ex_b3".into(),
        request_hash: "h".into(),
    };
    assert_eq!(
        b.insert(&holding("ex_b3", 1), Some(&item)).await.unwrap(),
        Inserted::Created
    );
    let taken = IdempotencyItem {
        execution_id: "ex_b4".into(),
        ..item
    };
    assert!(matches!(
        b.insert(&holding("ex_b4", 900_000), Some(&taken))
            .await
            .unwrap(),
        Inserted::IdempotencyKeyTaken(_)
    ));
    // Settled at version 1 with $0.25.
    let mut n1 = g1.advance(Event::SubmitStarted, 2000).unwrap();
    n1.budget.as_mut().unwrap().settled = Some(budget::Settlement {
        version: 1,
        actual_usd_micros: 250_000,
    });
    // A settling commit that loses its race (version 1 is not stored) moves nothing.
    let v1 = g1.advance(Event::CapacityWait, 2000).unwrap();
    let mut stale = v1.advance(Event::CapacityWait, 2000).unwrap();
    stale.budget.as_mut().unwrap().settled = Some(budget::Settlement {
        version: 2,
        actual_usd_micros: 999_999,
    });
    assert!(matches!(
        b.commit(1, &stale).await,
        Err(CommitError::Conflict)
    ));
    assert_eq!(b.budget(&key).await.unwrap().unwrap().spent_usd_micros, 0);
    b.commit(0, &n1).await.unwrap();
    let st = b.budget(&key).await.unwrap().unwrap();
    assert_eq!(
        (
            st.reserved_usd_micros,
            st.spent_usd_micros,
            st.settled_executions
        ),
        (1, 250_000, 1)
    );
    // The next commit carries the settlement of version 1: nothing moves again.
    let n2 = n1.advance(Event::JobCreated, 3000).unwrap();
    b.commit(1, &n2).await.unwrap();
    let st = b.budget(&key).await.unwrap().unwrap();
    assert_eq!(
        (
            st.reserved_usd_micros,
            st.spent_usd_micros,
            st.settled_executions
        ),
        (1, 250_000, 1)
    );
    // $0.749999 left: exactly that fits, a micro-dollar more does not.
    assert!(matches!(
        b.insert(&holding("ex_b5", 750_000), None).await.unwrap(),
        Inserted::BudgetExceeded(_)
    ));
    assert_eq!(
        b.insert(&holding("ex_b6", 749_999), None).await.unwrap(),
        Inserted::Created
    );
    assert!(
        !b.budget(&key).await.unwrap().unwrap().fits(0),
        "exhausted: even a free one is refused"
    );
}

/// Uploaded files' blobs: their size, their first bytes (a ranged read), and deletion (the
/// only blobs ever deleted; deleting what is gone is a no-op).
pub async fn uploaded_blobs_are_sized_read_in_part_and_deleted(s: &Subject) {
    let b = &s.blobs;
    let key = "files/file_contract/content";
    assert_eq!(b.size(key).await.unwrap(), None);
    b.put_once(key, b"0123456789".to_vec()).await.unwrap();
    assert_eq!(b.size(key).await.unwrap(), Some(10));
    assert_eq!(
        b.get_prefix(key, 4).await.unwrap().unwrap(),
        b"0123".to_vec()
    );
    assert_eq!(
        b.get_prefix(key, 64).await.unwrap().unwrap(),
        b"0123456789".to_vec()
    );
    b.delete(key).await.unwrap();
    assert_eq!(b.size(key).await.unwrap(), None);
    assert!(b.get(key).await.unwrap().is_none());
    assert!(b.get_prefix(key, 4).await.unwrap().is_none());
    b.delete(key).await.unwrap();
}
