//! The AWS ports against a real moto server and a real redis-server on loopback (started by
//! scripts/services.sh): the port contract (executor-port-contract, the same checks the
//! embedded ports pass), and what only they do: the tables' indexes as template.yaml
//! declares them, the reconciler's keys-only index, the dead-letter queue, the Redis (TLS,
//! cluster) and DynamoDB limiters, the deployment's secret. Each test creates its own
//! table, bucket and queues.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use executor_aws::config::QueueUrls;
use executor_aws::{AwsBackend, AwsConfig};
use executor_lifecycle::*;
use executor_port_contract::{QueueTime, Subject, TestClock, guard, limiter_contract};
use std::collections::HashMap;
use std::sync::Arc;

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
    let clock = TestClock::at(1_700_000_000_000);
    let ddb = executor_aws::DynamoGuardStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        cfg.table.clone(),
        clock.clone(),
    );
    ddb.create_table_if_missing().await.unwrap();
    let b = AwsBackend::connect(&cfg, clock.clone()).await.unwrap();
    (b, cfg, clock)
}

/// Fresh AWS ports for the contract (the Redis limiter).
async fn subject() -> Subject {
    let (b, cfg, clock) = backend().await;
    Subject {
        guards: b.guards.clone(),
        blobs: b.blobs.clone(),
        queue: b.queue.clone(),
        limiter: b.limiter.clone(),
        clock,
        queue_time: QueueTime::Real,
        keep: Box::new(cfg),
    }
}

executor_port_contract::port_contract_tests!(subject);

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

/// The dead-letter queue holds the message as it was (a redrive sends it back unchanged),
/// with the reason beside it. Before: a new body {dead_lettered_from, reason} replaced it.
#[tokio::test]
async fn the_dead_letter_queue_keeps_the_message_and_the_reason() {
    let (b, cfg, _) = backend().await;
    let q = QueueName::Poll;
    b.queue.send(q, "later", 0).await.unwrap();
    let got = b.queue.receive(q, 10, 1000).await.unwrap();
    assert_eq!(got.len(), 1);
    b.queue
        .dead_letter(q, &got[0].receipt, &got[0].body, "test")
        .await
        .unwrap();
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
    let clock = TestClock::at(1_700_000_000_000);
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
    let clock = TestClock::at(1_700_000_000_000);
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
