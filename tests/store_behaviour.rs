//! One behaviour suite, run over both stores: the embedded one (memory and redb files)
//! and Redis (a redis-server of each test's own, or the one `HOOKGATE_TEST_REDIS` names,
//! each test under its own key prefix),
//! and once more over a three-node Redis Cluster the suite starts itself. Dedupe, the
//! outbound queue and rate limiting must answer the same way on all of them.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hookgate::config::{
    KeySource, OnStoreError, Rate, RateLimitConfig, RedisConfig, Secret, StoreConfig,
};
use hookgate::ids::new_delivery_id;
use hookgate::inbound::rate_limit::RouteLimiter;
use hookgate::store::queue::{
    Attempt, DeliveryFilter, Enqueued, EventRef, Idempotency, Next, Queue, Record, State,
};
use hookgate::store::subscriptions::{DeliveryNote, SigningSecret, Subscription};
use hookgate::store::{self, Allowance, Claim, DedupeStore, Limits, Store};
use pingora::http::RequestHeader;

/// One store's implementations of the traits under test.
struct Stores {
    store: Store,
    dedupe: Arc<dyn DedupeStore>,
    queue: Arc<dyn Queue>,
    /// What the store lives in, kept until the test ends.
    _place: Option<Box<dyn std::any::Any>>,
}

fn stores(store: Store, place: Option<Box<dyn std::any::Any>>) -> Stores {
    Stores {
        dedupe: store.dedupe(1).unwrap(),
        queue: store.queue().unwrap(),
        store,
        _place: place,
    }
}

fn embedded_at(dir: &std::path::Path) -> Store {
    store::open(
        &StoreConfig::Embedded {
            path: dir.to_path_buf(),
            max_ids: 10_000,
        },
        None,
    )
    .unwrap()
}

fn embedded() -> Stores {
    let dir = tempfile::tempdir().unwrap();
    stores(embedded_at(dir.path()), Some(Box::new(dir)))
}

/// A fresh key prefix on the Redis at `url`, so tests never see each other's keys.
fn redis_store(url: &str, tls_ca: Option<&std::path::Path>) -> Store {
    connect(url, tls_ca, false)
}

fn connect(url: &str, tls_ca: Option<&std::path::Path>, cluster: bool) -> Store {
    let prefix = format!("hookgate-test:{}:", new_delivery_id());
    connect_with_prefix(url, tls_ca, cluster, &prefix)
}

fn connect_with_prefix(
    url: &str,
    tls_ca: Option<&std::path::Path>,
    cluster: bool,
    prefix: &str,
) -> Store {
    store::open(
        &StoreConfig::Redis(RedisConfig {
            url: Secret::new(url),
            tls_ca: tls_ca.map(std::path::Path::to_path_buf),
            cluster,
            key_prefix: prefix.to_string(),
            pool_size: 2,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
        }),
        None,
    )
    .unwrap()
}

fn redis() -> Stores {
    let redis = support::TestRedis::start();
    stores(redis_store(&redis.url, None), Some(Box::new(redis)))
}

/// Runs a behaviour against each store, as two tests.
macro_rules! over_both_stores {
    ($($behaviour:ident),* $(,)?) => {
        mod embedded_store {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $behaviour() {
                super::$behaviour(super::embedded()).await;
            })*
        }
        mod redis_store {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $behaviour() {
                super::$behaviour(super::redis()).await;
            })*
        }
        /// One test for the whole suite: the cluster takes a moment to form.
        #[tokio::test(flavor = "multi_thread")]
        async fn a_redis_cluster_passes_the_whole_suite() {
            let cluster = RedisCluster::start();
            $($behaviour(cluster.stores()).await;)*
        }
    };
}

over_both_stores!(
    dedupe_claims_completes_and_releases,
    dedupe_claims_a_requests_keys_all_or_none,
    dedupe_lets_exactly_one_of_many_concurrent_claims_through,
    dedupe_claims_lapse_after_their_lease,
    queue_claims_under_a_lease_and_ignores_a_lapsed_claim,
    queue_keeps_dead_letters_for_retry_replay_and_purge,
    queue_purges_and_replays_exactly_what_a_filter_names,
    queue_counts_its_depth_as_messages_move,
    queue_dedupes_idempotency_keys_and_keeps_endpoint_states,
    queue_hands_each_message_to_one_of_many_concurrent_claimers,
    queue_stores_one_of_many_concurrent_messages_with_one_key,
    rate_limit_admits_the_burst_then_answers_429_with_retry_after,
    pacing_holds_each_receivers_concurrency_and_rate,
    queue_stores_an_events_deliveries_together_once_per_key,
    subscriptions_are_kept_whole_and_every_write_moves_the_version,
);

const LEASE: Duration = Duration::from_secs(30);
/// The longest wait for a short lease, window or rate to lapse (each is under a second).
const LAPSE: Duration = Duration::from_secs(5);
const TTL: Duration = Duration::from_secs(3600);

async fn dedupe_claims_completes_and_releases(stores: Stores) {
    let store = stores.dedupe;
    assert_eq!(store.claim("r:a", LEASE).await, Ok(Claim::Claimed));
    assert_eq!(store.claim("r:a", LEASE).await, Ok(Claim::InFlight));
    store.release("r:a").await.unwrap();
    assert_eq!(store.claim("r:a", LEASE).await, Ok(Claim::Claimed));
    store.complete("r:a", 202, TTL).await.unwrap();
    assert_eq!(
        store.claim("r:a", LEASE).await,
        Ok(Claim::Done { status: 202 })
    );
    store.release("r:a").await.unwrap();
    assert_eq!(
        store.claim("r:a", LEASE).await,
        Ok(Claim::Done { status: 202 }),
        "release never drops a done id"
    );
    assert_eq!(
        store.claim("r:b", LEASE).await,
        Ok(Claim::Claimed),
        "ids are separate"
    );
}

/// A request's id and its signed content: claimed together, recorded together.
async fn dedupe_claims_a_requests_keys_all_or_none(stores: Stores) {
    let store = stores.dedupe;
    let keys = |id: &str, content: &str| [format!("r:{id}"), format!("r:content:{content}")];
    assert_eq!(
        store.claim_all(&keys("all-1", "x"), LEASE).await,
        Ok(Claim::Claimed)
    );
    assert_eq!(store.claim("r:content:x", LEASE).await, Ok(Claim::InFlight));
    store
        .complete_all(&keys("all-1", "x"), 201, TTL)
        .await
        .unwrap();
    for key in keys("all-1", "x") {
        assert_eq!(
            store.claim(&key, LEASE).await,
            Ok(Claim::Done { status: 201 })
        );
    }
    // A replayed body under a fresh id: a duplicate, and the fresh id stays free.
    assert_eq!(
        store.claim_all(&keys("all-2", "x"), LEASE).await,
        Ok(Claim::Done { status: 201 })
    );
    assert_eq!(store.claim("r:all-2", LEASE).await, Ok(Claim::Claimed));
    // Its id in flight: the new content is not left claimed.
    assert_eq!(
        store.claim_all(&keys("all-2", "y"), LEASE).await,
        Ok(Claim::InFlight)
    );
    assert_eq!(store.claim("r:content:y", LEASE).await, Ok(Claim::Claimed));
}

async fn dedupe_lets_exactly_one_of_many_concurrent_claims_through(stores: Stores) {
    let claims = (0..200).map(|_| {
        let store = stores.dedupe.clone();
        tokio::spawn(async move { store.claim("r:same", LEASE).await })
    });
    let results = futures_util::future::join_all(claims).await;
    let claimed = results
        .iter()
        .filter(|r| matches!(r, Ok(Ok(Claim::Claimed))))
        .count();
    let in_flight = results
        .iter()
        .filter(|r| matches!(r, Ok(Ok(Claim::InFlight))))
        .count();
    assert_eq!((claimed, in_flight), (1, 199));
}

async fn dedupe_claims_lapse_after_their_lease(stores: Stores) {
    let store = stores.dedupe;
    let short = Duration::from_millis(100);
    assert_eq!(store.claim("r:crashed", short).await, Ok(Claim::Claimed));
    assert_eq!(store.claim("r:crashed", LEASE).await, Ok(Claim::InFlight));
    support::eventually(
        "a claim whose holder never finished lapses",
        LAPSE,
        async || store.claim("r:crashed", LEASE).await == Ok(Claim::Claimed),
    )
    .await;
    store
        .complete("r:gone", 200, Duration::from_millis(100))
        .await
        .unwrap();
    support::eventually("the window passed", LAPSE, async || {
        store.claim("r:gone", LEASE).await == Ok(Claim::Claimed)
    })
    .await;
}

fn record(id: &str, due_ms: u64) -> Record {
    Record {
        timestamp: 1_700_000_000,
        ..Record::json(id.into(), "acme", due_ms)
    }
}

fn attempt(status: u16) -> Attempt {
    Attempt {
        at_ms: 7,
        status: Some(status),
        error: None,
        latency_ms: 3,
        response: "busy".into(),
        request_headers: vec![("Stripe-Signature".into(), "[masked]".into())],
    }
}

async fn queue_claims_under_a_lease_and_ignores_a_lapsed_claim(stores: Stores) {
    let queue = stores.queue;
    let body = |s: &'static str| Bytes::from_static(s.as_bytes());
    queue
        .enqueue(record("a", 100), body("body-a"), None)
        .await
        .unwrap();
    queue
        .enqueue(record("b", 500), body("body-b"), None)
        .await
        .unwrap();
    assert_eq!(queue.next_due().await.unwrap(), Some(100));
    let claimed = queue.claim_due(200, 1000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        queue.next_due().await.unwrap(),
        Some(500),
        "b, before a's lease ends at 1200"
    );
    assert_eq!(
        (claimed[0].0.id.as_str(), &claimed[0].1[..]),
        ("a", &b"body-a"[..])
    );
    assert_eq!(claimed[0].0.due_ms, 1200, "the claim's lease end");
    assert_eq!(claimed[0].0.timestamp, 1_700_000_000);
    let first_claim = claimed[0].0.clone();
    assert!(
        queue.claim_due(300, 1000, 10).await.unwrap().is_empty(),
        "a is leased until 1200"
    );
    let reclaimed = queue.claim_due(1200, 1000, 10).await.unwrap();
    assert_eq!(
        reclaimed.len(),
        2,
        "the lease lapsed: a is due again, and so is b"
    );
    assert!(
        !queue
            .finish_attempt(&first_claim, attempt(500), Next::RetryAt(5000))
            .await
            .unwrap(),
        "the lapsed claim may not record its attempt"
    );
    let claim_of = |id: &str| &reclaimed.iter().find(|(r, _)| r.id == id).unwrap().0;
    let (a, b) = (claim_of("a"), claim_of("b"));
    assert!(queue
        .finish_attempt(a, attempt(500), Next::RetryAt(5000))
        .await
        .unwrap());
    assert!(queue
        .finish_attempt(b, attempt(200), Next::Delivered)
        .await
        .unwrap());
    assert!(
        queue.get("b").await.unwrap().is_none(),
        "delivered messages leave"
    );
    let a = queue.get("a").await.unwrap().unwrap();
    assert_eq!((a.round_attempts, a.due_ms, a.attempts.len()), (1, 5000, 1));
    assert_eq!(a.attempts[0], attempt(500));
    assert!(queue.claim_due(4999, 1000, 10).await.unwrap().is_empty());
    // Held back (a busy endpoint): postponed without spending an attempt.
    let held = queue.claim_due(5000, 1000, 10).await.unwrap();
    queue.postpone("a", 7000).await.unwrap();
    assert!(
        !queue
            .finish_attempt(&held[0].0, attempt(500), Next::Dead)
            .await
            .unwrap(),
        "postponing ends the claim"
    );
    assert_eq!(queue.claim_due(7000, 1000, 10).await.unwrap().len(), 1);
}

/// (pending, scheduled, dead, oldest waiting accept time) of `endpoint`.
async fn depth_of(queue: &dyn Queue, endpoint: &str) -> (u64, u64, u64, Option<u64>) {
    let depths = queue.depth().await.unwrap();
    depths
        .iter()
        .find(|d| d.endpoint == endpoint)
        .map_or((0, 0, 0, None), |d| {
            (d.pending, d.scheduled, d.dead, d.oldest_waiting_ms)
        })
}

async fn queue_counts_its_depth_as_messages_move(stores: Stores) {
    let queue = stores.queue;
    for (id, created) in [("a", 10), ("b", 20), ("c", 30), ("d", 40)] {
        queue
            .enqueue(record(id, created), Bytes::from_static(b"x"), None)
            .await
            .unwrap();
    }
    let mut other = record("e", 50);
    other.endpoint = "beta".into();
    queue
        .enqueue(other, Bytes::from_static(b"x"), None)
        .await
        .unwrap();
    assert_eq!(depth_of(&*queue, "acme").await, (4, 0, 0, Some(10)));
    assert_eq!(depth_of(&*queue, "beta").await, (1, 0, 0, Some(50)));
    let claimed = queue.claim_due(100, 1000, 10).await.unwrap();
    let claim_of = |id: &str| claimed.iter().find(|(r, _)| r.id == id).unwrap().0.clone();
    assert_eq!(
        depth_of(&*queue, "acme").await,
        (4, 0, 0, Some(10)),
        "a claim moves nothing between buckets"
    );
    let next = [
        ("a", Next::Delivered),
        ("b", Next::RetryAt(5000)),
        ("c", Next::Dead),
    ];
    for (id, next) in next {
        assert!(queue
            .finish_attempt(&claim_of(id), attempt(500), next)
            .await
            .unwrap());
    }
    assert_eq!(
        depth_of(&*queue, "acme").await,
        (1, 1, 1, Some(20)),
        "a delivered, b scheduled, c dead, d pending; b is the oldest waiting"
    );
    assert!(queue.retry_now("c", 200).await.unwrap());
    assert_eq!(depth_of(&*queue, "acme").await, (2, 1, 0, Some(20)));
    assert_eq!(
        queue
            .purge(&of_endpoint("acme"), State::Pending)
            .await
            .unwrap(),
        3
    );
    assert_eq!(depth_of(&*queue, "acme").await, (0, 0, 0, None));
    assert_eq!(depth_of(&*queue, "beta").await, (1, 0, 0, Some(50)));
}

fn of_endpoint(endpoint: &str) -> DeliveryFilter {
    DeliveryFilter {
        endpoint: Some(endpoint.into()),
        ..DeliveryFilter::default()
    }
}

async fn queue_keeps_dead_letters_for_retry_replay_and_purge(stores: Stores) {
    let queue = stores.queue;
    for (id, created) in [("old", 10), ("new", 20), ("other", 30)] {
        let mut r = record(id, created);
        if id == "other" {
            r.endpoint = "beta".into();
        }
        queue
            .enqueue(r, Bytes::from_static(b"x"), None)
            .await
            .unwrap();
    }
    for (claimed, _) in queue.claim_due(100, 1000, 10).await.unwrap() {
        queue
            .finish_attempt(&claimed, attempt(500), Next::Dead)
            .await
            .unwrap();
    }
    let dead = queue.list(Some("acme"), Some(State::Dead)).await.unwrap();
    assert_eq!(
        dead.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["old", "new"],
        "by endpoint and state, in accept order"
    );
    assert!(
        queue.claim_due(10_000, 1000, 10).await.unwrap().is_empty(),
        "dead is not due"
    );
    assert!(queue.retry_now("old", 20_000).await.unwrap());
    assert!(!queue.retry_now("missing", 20_000).await.unwrap());
    let claimed = queue.claim_due(20_000, 1000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].0.round_attempts, claimed[0].0.attempts.len()),
        (0, 1),
        "a fresh round, history kept"
    );
    assert_eq!(
        queue
            .replay_dead(
                &DeliveryFilter {
                    since_ms: Some(15),
                    ..of_endpoint("acme")
                },
                30_000
            )
            .await
            .unwrap(),
        1,
        "only since 15"
    );
    assert_eq!(
        queue.list(None, Some(State::Pending)).await.unwrap().len(),
        2
    );
    assert_eq!(
        queue
            .purge(&DeliveryFilter::default(), State::Dead)
            .await
            .unwrap(),
        1,
        "other, of beta"
    );
    assert_eq!(
        queue
            .purge(&of_endpoint("acme"), State::Pending)
            .await
            .unwrap(),
        2
    );
    assert!(queue.list(None, None).await.unwrap().is_empty());
    assert!(queue
        .claim_due(u64::MAX / 2, 1000, 10)
        .await
        .unwrap()
        .is_empty());
}

/// Fifty messages with one idempotency key at once (the embedded store commits them
/// together): one is stored, and every other answer names it.
async fn queue_stores_one_of_many_concurrent_messages_with_one_key(stores: Stores) {
    let queue = stores.queue;
    let now = hookgate::clock::now_ms();
    let enqueues = (0..50).map(|i| {
        let queue = queue.clone();
        tokio::spawn(async move {
            queue
                .enqueue(
                    record(&format!("c{i}"), now),
                    Bytes::from_static(b"x"),
                    Some(("acme:same".to_string(), now + 60_000)),
                )
                .await
                .unwrap()
        })
    });
    let answers: Vec<Enqueued> = futures_util::future::join_all(enqueues)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let stored: Vec<&Enqueued> = answers.iter().filter(|a| **a == Enqueued::New).collect();
    assert_eq!(stored.len(), 1, "{answers:?}");
    let listed = queue.list(Some("acme"), None).await.unwrap();
    assert_eq!(listed.len(), 1);
    let first = Enqueued::Duplicate(listed[0].id.clone());
    assert!(
        answers.iter().all(|a| *a == Enqueued::New || *a == first),
        "{answers:?}"
    );
}

/// One event's deliveries: one record per subscription, of one tenant.
fn deliveries(event: &str, tenant: &str, count: usize, now: u64) -> Vec<Record> {
    (0..count)
        .map(|i| Record {
            endpoint: "subscriptions".into(),
            event: Some(EventRef {
                event_id: event.into(),
                subscription: format!("sub_{i}"),
                tenant: Some(tenant.into()),
                event_type: "application.scored".into(),
            }),
            ..record(&format!("{event}-{i}"), now)
        })
        .collect()
}

/// A purge or a replay by subscription, tenant or time touches those deliveries only,
/// never another subscription's or an endpoint's dead letters (the console once purged
/// every dead letter while it showed one subscription's).
async fn queue_purges_and_replays_exactly_what_a_filter_names(stores: Stores) {
    let queue = stores.queue;
    let now = 1_000;
    queue
        .enqueue_many(
            deliveries("evt_a", "acme", 2, now),
            Bytes::from_static(b"{}"),
            None,
        )
        .await
        .unwrap();
    queue
        .enqueue_many(
            deliveries("evt_b", "other", 1, now + 10),
            Bytes::from_static(b"{}"),
            None,
        )
        .await
        .unwrap();
    for id in ["m1", "m2"] {
        queue
            .enqueue(record(id, now), Bytes::from_static(b"x"), None)
            .await
            .unwrap();
    }
    for (claimed, _) in queue.claim_due(now + 100, 1000, 10).await.unwrap() {
        queue
            .finish_attempt(&claimed, attempt(500), Next::Dead)
            .await
            .unwrap();
    }
    let dead = |filter: DeliveryFilter| {
        let queue = queue.clone();
        async move {
            let mut ids: Vec<String> = queue
                .list(None, Some(State::Dead))
                .await
                .unwrap()
                .into_iter()
                .filter(|r| filter.matches(r))
                .map(|r| r.id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(dead(DeliveryFilter::default()).await.len(), 5);
    let one = DeliveryFilter {
        subscription: Some("sub_0".into()),
        ..DeliveryFilter::default()
    };
    assert_eq!(dead(one.clone()).await, ["evt_a-0", "evt_b-0"]);
    let acme_sub_0 = DeliveryFilter {
        tenant: Some("acme".into()),
        ..one
    };
    assert_eq!(queue.purge(&acme_sub_0, State::Dead).await.unwrap(), 1);
    assert_eq!(
        dead(DeliveryFilter::default()).await,
        ["evt_a-1", "evt_b-0", "m1", "m2"]
    );
    let later = DeliveryFilter {
        since_ms: Some(now + 5),
        ..DeliveryFilter::default()
    };
    assert_eq!(queue.replay_dead(&later, now + 200).await.unwrap(), 1);
    assert_eq!(
        dead(DeliveryFilter::default()).await,
        ["evt_a-1", "m1", "m2"]
    );
    let until = DeliveryFilter {
        until_ms: Some(now - 1),
        ..DeliveryFilter::default()
    };
    assert_eq!(queue.purge(&until, State::Dead).await.unwrap(), 0);
    assert_eq!(
        queue
            .purge(&of_endpoint("acme"), State::Dead)
            .await
            .unwrap(),
        2
    );
    assert_eq!(dead(DeliveryFilter::default()).await, ["evt_a-1"]);
}

async fn queue_stores_an_events_deliveries_together_once_per_key(stores: Stores) {
    let queue = stores.queue;
    let now = hookgate::clock::now_ms();
    let key = |receipt: &str| {
        Some(Idempotency {
            key: "events\nacme\nk1".into(),
            expires_ms: now + 60_000,
            receipt: receipt.into(),
        })
    };
    let body = Bytes::from_static(b"{\"score\":87}");
    let stored = queue
        .enqueue_many(
            deliveries("e1", "acme", 1000, now),
            body.clone(),
            key("first"),
        )
        .await
        .unwrap();
    assert_eq!(stored, Enqueued::New);
    let again = queue
        .enqueue_many(
            deliveries("e2", "acme", 3, now),
            body.clone(),
            key("second"),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        Enqueued::Duplicate("first".into()),
        "the whole event is a repeat"
    );
    let listed = queue.list(Some("subscriptions"), None).await.unwrap();
    assert_eq!(
        listed.len(),
        1000,
        "one commit of a thousand, and none of the repeat"
    );
    let one = queue.get("e1-999").await.unwrap().unwrap();
    assert_eq!(one.event.unwrap().subscription, "sub_999");
    // Each delivery is claimed, attempted and finished on its own.
    let claimed = queue.claim_due(now + 1, 30_000, 2000).await.unwrap();
    assert_eq!(claimed.len(), 1000);
    assert!(claimed.iter().all(|(_, b)| b.as_slice() == body.as_ref()));
    let (first, _) = &claimed[0];
    assert!(queue
        .finish_attempt(first, attempt(200), Next::Delivered)
        .await
        .unwrap());
    assert_eq!(
        queue.list(Some("subscriptions"), None).await.unwrap().len(),
        999
    );
    assert_eq!(
        queue
            .enqueue_many(Vec::new(), body, key("nothing"))
            .await
            .unwrap(),
        Enqueued::New,
        "no delivery: nothing stored"
    );
}

fn subscription(id: &str, updated_at: u64) -> Subscription {
    Subscription {
        tenant: Some("acme".into()),
        url: "https://hooks.acme.example/in".into(),
        event_types: vec!["application.*".into()],
        filters: [("job_id".to_string(), "42".to_string())].into(),
        scheme: "hiresscope".into(),
        secrets: vec![SigningSecret {
            value: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            expires_at: None,
        }],
        retry: Some(serde_json::json!({ "preset": "stripe" })),
        rate_limit: Some("10/s".into()),
        description: "Zapier".into(),
        created_at: 1,
        updated_at,
        ..Subscription::blank(id.into(), 1)
    }
}

async fn subscriptions_are_kept_whole_and_every_write_moves_the_version(stores: Stores) {
    let subs = stores.store.subscriptions().unwrap();
    let (start, none) = subs.load().await.unwrap();
    assert!(none.is_empty());
    let a = subscription("sub_a", 1);
    subs.put(&a).await.unwrap();
    subs.put(&subscription("sub_b", 1)).await.unwrap();
    let (version, all) = subs.load().await.unwrap();
    assert!(version > start);
    assert_eq!(version, subs.version().await.unwrap());
    assert_eq!(all.len(), 2);
    assert!(all.contains(&a), "kept whole");
    let changed = Subscription {
        enabled: false,
        ..subscription("sub_a", 2)
    };
    subs.put(&changed).await.unwrap();
    assert!(subs.version().await.unwrap() > version);
    subs.note("sub_a", &DeliveryNote::Delivered, 10)
        .await
        .unwrap();
    let failed = DeliveryNote::Dead {
        status: Some(410),
        error: String::new(),
    };
    subs.note("sub_a", &failed, 20).await.unwrap();
    let stats = subs.stats("sub_a").await.unwrap();
    assert_eq!(
        (stats.delivered, stats.dead, stats.failed_attempts),
        (1, 1, 1)
    );
    assert_eq!(stats.last_success_at, Some(10));
    assert_eq!(stats.last_error.as_deref(), Some("HTTP 410"));
    assert!(subs.delete("sub_a").await.unwrap());
    assert!(!subs.delete("sub_a").await.unwrap());
    let (_, left) = subs.load().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(subs.stats("sub_a").await.unwrap().delivered, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_on_redis_see_each_others_subscriptions() {
    let redis = support::TestRedis::start();
    let prefix = format!("hookgate-test:{}:", new_delivery_id());
    let one = connect_with_prefix(&redis.url, None, false, &prefix)
        .subscriptions()
        .unwrap();
    let two = connect_with_prefix(&redis.url, None, false, &prefix)
        .subscriptions()
        .unwrap();
    let seen = two.version().await.unwrap();
    one.put(&subscription("sub_shared", 1)).await.unwrap();
    assert!(
        two.version().await.unwrap() > seen,
        "the other replica sees a change"
    );
    assert_eq!(two.load().await.unwrap().1, [subscription("sub_shared", 1)]);
}

async fn queue_dedupes_idempotency_keys_and_keeps_endpoint_states(stores: Stores) {
    let queue = stores.queue;
    let now = hookgate::clock::now_ms();
    let key = |k: &str, until: u64| Some((k.to_string(), until));
    let x = || Bytes::from_static(b"x");
    assert_eq!(
        queue
            .enqueue(record("first", now), x(), key("acme:k1", now + 300))
            .await
            .unwrap(),
        Enqueued::New
    );
    assert_eq!(
        queue
            .enqueue(record("second", now), x(), key("acme:k1", now + 300))
            .await
            .unwrap(),
        Enqueued::Duplicate("first".into())
    );
    assert!(queue.get("second").await.unwrap().is_none());
    // A repeat within the window stores nothing, so it can be tried until the window passes.
    let mut later = 0;
    support::eventually("the window passed", LAPSE, async || {
        later = hookgate::clock::now_ms();
        let third = queue.enqueue(record("third", later), x(), key("acme:k1", later + 300));
        third.await.unwrap() == Enqueued::New
    })
    .await;
    // Given again after its window, a key keeps its new window, whatever is swept meanwhile.
    assert_eq!(
        queue
            .enqueue(
                record("fourth", later + 100),
                x(),
                key("acme:k1", later + 400)
            )
            .await
            .unwrap(),
        Enqueued::Duplicate("third".into())
    );

    assert!(queue.endpoint_states().await.unwrap().is_empty());
    let state = hookgate::store::queue::EndpointState {
        paused_until_ms: None,
        enabled: false,
        reason: "the receiver answered 410 Gone".into(),
        since_ms: 5,
    };
    queue.set_endpoint_state("acme", &state).await.unwrap();
    assert_eq!(
        queue.endpoint_states().await.unwrap(),
        [("acme".to_string(), state)]
    );
}

async fn queue_hands_each_message_to_one_of_many_concurrent_claimers(stores: Stores) {
    let queue = stores.queue;
    for i in 0..100 {
        queue
            .enqueue(
                record(&format!("m{i:03}"), i),
                Bytes::from_static(b"x"),
                None,
            )
            .await
            .unwrap();
    }
    let claimers = (0..8).map(|_| {
        let queue = queue.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = queue.claim_due(1000, 60_000, 7).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|(r, _)| r.id));
            }
        })
    });
    let mut all: Vec<String> = futures_util::future::join_all(claimers)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    all.sort();
    let expected: Vec<String> = (0..100).map(|i| format!("m{i:03}")).collect();
    assert_eq!(all, expected, "every message claimed exactly once");
}

async fn rate_limit_admits_the_burst_then_answers_429_with_retry_after(stores: Stores) {
    let limiter = RouteLimiter::new(
        "r",
        &RateLimitConfig {
            key: KeySource::Header("x-tenant".into()),
            limit: Rate {
                count: 100,
                per: Duration::from_secs(60),
            },
            burst: None,
            max_keys: 100_000,
        },
        OnStoreError::FailClosed,
        &stores.store,
    );
    let mut header = RequestHeader::build("POST", b"/", None).unwrap();
    header.insert_header("X-Tenant", "a").unwrap();
    for i in 0..100 {
        let headers = limiter.check("r", &header, None).await.unwrap();
        assert_eq!(headers[0], ("RateLimit-Limit", "100".to_string()));
        assert_eq!(headers[1], ("RateLimit-Remaining", (99 - i).to_string()));
    }
    let refused = limiter.check("r", &header, None).await.unwrap_err();
    assert_eq!((refused.status, refused.code), (429, "rate_limited"));
    // One request is earned back every 600 ms: Retry-After rounds up to 1.
    assert!(
        refused.headers.contains(&("Retry-After", "1".to_string())),
        "{:?}",
        refused.headers
    );
    let mut other = RequestHeader::build("POST", b"/", None).unwrap();
    other.insert_header("X-Tenant", "b").unwrap();
    assert!(
        limiter.check("r", &other, None).await.is_ok(),
        "keys are separate"
    );
    support::eventually("one earned back", LAPSE, async || {
        limiter.check("r", &header, None).await.is_ok()
    })
    .await;
}

fn limits(concurrency: u32, rate: Option<(u32, Duration)>) -> Limits {
    Limits {
        concurrency,
        rate: rate.map(|(capacity, per_request)| Allowance {
            capacity,
            per_request,
        }),
        lease: Duration::from_secs(30),
    }
}

async fn pacing_holds_each_receivers_concurrency_and_rate(stores: Stores) {
    let pacing = stores.store.pacing();
    let two = limits(2, None);
    let mut taken = pacing.take("e", &two, 3).await.unwrap();
    assert_eq!(taken.slots.len(), 2, "two of three wanted");
    assert!(pacing.take("e", &two, 1).await.unwrap().slots.is_empty());
    assert_eq!(
        pacing.take("other", &two, 1).await.unwrap().slots.len(),
        1,
        "receivers are separate"
    );
    let slot = taken.slots.pop().unwrap();
    pacing.give_back("e", slot).await.unwrap();
    assert_eq!(pacing.take("e", &two, 5).await.unwrap().slots.len(), 1);

    // Two at once, then one every 30 s: the third waits about 30 s, spending no slot.
    let rated = limits(3, Some((2, Duration::from_secs(30))));
    let taken = pacing.take("r", &rated, 3).await.unwrap();
    assert_eq!(taken.slots.len(), 2, "the rate's burst");
    assert!(taken.wait > Duration::from_secs(25), "{:?}", taken.wait);
    for slot in taken.slots {
        pacing.give_back("r", slot).await.unwrap();
    }
    let over = pacing.take("r", &rated, 1).await.unwrap();
    assert!(over.slots.is_empty(), "over the rate");
    assert!(over.wait > Duration::from_secs(25), "{:?}", over.wait);
}

/// Two replicas on one Redis share each receiver's limits, and a slot whose replica died
/// comes back when its lease lapses.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_on_redis_share_a_receivers_limits() {
    let redis = support::TestRedis::start();
    let prefix = format!("hookgate-test:{}:", new_delivery_id());
    let one = connect_with_prefix(&redis.url, None, false, &prefix).pacing();
    let two = connect_with_prefix(&redis.url, None, false, &prefix).pacing();
    let mut short = limits(2, Some((3, Duration::from_secs(60))));
    short.lease = Duration::from_millis(300);
    let mut kept = one.take("e", &short, 1).await.unwrap().slots;
    assert_eq!(kept.len(), 1);
    let lost = two.take("e", &short, 5).await.unwrap().slots;
    assert_eq!(lost.len(), 1, "the second slot, on the other replica");
    assert!(
        one.take("e", &short, 1).await.unwrap().slots.is_empty(),
        "two in flight across the replicas: the limit"
    );
    one.give_back("e", kept.pop().unwrap()).await.unwrap();
    assert_eq!(two.take("e", &short, 1).await.unwrap().slots.len(), 1);
    // The rate (3 a minute) is spent across the replicas too: once the slots lapse, the
    // wait is the rate's (a slot granted meanwhile fails the test).
    support::eventually("the slots lapsed, the rate did not", LAPSE, async || {
        let over = one.take("e", &short, 1).await.unwrap();
        assert!(over.slots.is_empty(), "the rate is spent: {over:?}");
        over.wait > Duration::from_secs(10)
    })
    .await;
    let mut unrated = short;
    unrated.rate = None;
    assert_eq!(
        one.take("e", &unrated, 5).await.unwrap().slots.len(),
        2,
        "slots never given back lapse after their lease"
    );
}

#[tokio::test]
async fn the_embedded_queue_keeps_its_messages_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let queue = embedded_at(dir.path()).queue().unwrap();
        queue
            .enqueue(record("kept", 1), Bytes::from_static(b"x"), None)
            .await
            .unwrap();
    }
    let queue = embedded_at(dir.path()).queue().unwrap();
    assert_eq!(queue.claim_due(10, 1000, 10).await.unwrap()[0].0.id, "kept");
}

/// A Redis of the test's own that only speaks TLS and wants a password.
struct TlsRedis {
    _server: support::RedisServer,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        support::make_certificates(dir.path());
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let port = support::free_port();
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "s3cret",
            "--tls-cert-file",
            &path("server.pem"),
            "--tls-key-file",
            &path("server.key"),
        ];
        let server = support::RedisServer::start(dir.path(), port, &args);
        TlsRedis {
            _server: server,
            port,
            dir,
        }
    }

    fn ca(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_over_tls_with_a_password_and_a_database_index() {
    let redis = TlsRedis::start();
    let url = format!("rediss://:s3cret@127.0.0.1:{}/3", redis.port);
    let store = redis_store(&url, Some(&redis.ca()));
    store.check().await.unwrap();
    let dedupe = store.dedupe(1).unwrap();
    assert_eq!(dedupe.claim("r:tls", LEASE).await, Ok(Claim::Claimed));
    assert_eq!(dedupe.claim("r:tls", LEASE).await, Ok(Claim::InFlight));

    let wrong_password = format!("rediss://:nope@127.0.0.1:{}/3", redis.port);
    let refused = redis_store(&wrong_password, Some(&redis.ca()))
        .check()
        .await;
    assert!(refused.is_err(), "a wrong password is refused");
    let untrusted = redis_store(&url, None).check().await;
    assert!(
        untrusted.is_err(),
        "a certificate from an unknown CA is refused"
    );
}

/// Three Redis Cluster nodes (no replicas) on free ports, joined with redis-cli.
struct RedisCluster {
    _nodes: Vec<support::RedisServer>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A node also listens on its port + 10000 (the cluster bus).
        let mut ports = Vec::new();
        for port in 20_000..30_000u16 {
            let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
            if free(port) && free(port + 10_000) {
                ports.push(port);
                if ports.len() == 3 {
                    break;
                }
            }
        }
        let nodes = ports
            .iter()
            .map(|port| {
                let node_dir = dir.path().join(port.to_string());
                std::fs::create_dir(&node_dir).unwrap();
                let port_arg = port.to_string();
                let args = ["--port", &port_arg, "--cluster-enabled", "yes"];
                support::RedisServer::start(&node_dir, *port, &args)
            })
            .collect();
        let cluster = RedisCluster {
            _nodes: nodes,
            ports,
            _dir: dir,
        };
        let created = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stdout)
        );
        // Every node must agree before the suite starts.
        for port in &cluster.ports {
            let started = std::time::Instant::now();
            loop {
                let info = std::process::Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "the cluster did not form"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        cluster
    }

    fn stores(&self) -> Stores {
        let seed = format!("redis://127.0.0.1:{}", self.ports[0]);
        stores(connect(&seed, None, true), None)
    }
}

/// A queue written by a version before the partitions (every key under `{outbound}`) is
/// claimed, listed, counted and replayed as it was, next to new messages in the partitions.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_queue_from_before_the_partitions_loses_nothing() {
    let redis = support::TestRedis::start();
    let prefix = format!("hookgate-test:{}:", new_delivery_id());
    let legacy = format!("{prefix}{{outbound}}:");
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    // What the earlier version's enqueue and finish scripts left: a and b pending, c dead.
    for (id, created, state, round) in [
        ("a", 10, "pending", 0),
        ("b", 20, "pending", 0),
        ("c", 30, "dead", 1),
    ] {
        let meta = serde_json::to_string(&record(id, created)).unwrap();
        let m = format!("{legacy}m:{id}");
        redis::cmd("HSET")
            .arg(&m)
            .arg(&[
                "meta",
                &meta,
                "state",
                state,
                "due",
                &created.to_string(),
                "round",
                &round.to_string(),
                "body",
                &format!("body-{id}"),
            ])
            .query_async::<()>(&mut c)
            .await
            .unwrap();
        if state == "pending" {
            redis::cmd("ZADD")
                .arg(format!("{legacy}due"))
                .arg(created)
                .arg(id)
                .query_async::<()>(&mut c)
                .await
                .unwrap();
        } else {
            let attempt = serde_json::to_string(&attempt(500)).unwrap();
            redis::cmd("RPUSH")
                .arg(format!("{legacy}a:{id}"))
                .arg(attempt)
                .query_async::<()>(&mut c)
                .await
                .unwrap();
        }
        redis::cmd("ZADD")
            .arg(format!("{legacy}all"))
            .arg(created)
            .arg(id)
            .query_async::<()>(&mut c)
            .await
            .unwrap();
    }

    let queue = connect_with_prefix(&redis.url, None, false, &prefix)
        .queue()
        .unwrap();
    assert_eq!(
        depth_of(&*queue, "acme").await,
        (2, 0, 1, Some(10)),
        "counted once, from the messages"
    );
    queue
        .enqueue(record("d", 40), Bytes::from_static(b"body-d"), None)
        .await
        .unwrap();
    assert_eq!(depth_of(&*queue, "acme").await, (3, 0, 1, Some(10)));
    let listed: Vec<String> = queue
        .list(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, ["a", "b", "c", "d"], "old and new, in accept order");

    let mut claimed = queue.claim_due(100, 1000, 10).await.unwrap();
    claimed.sort_by(|x, y| x.0.id.cmp(&y.0.id));
    let bodies: Vec<&[u8]> = claimed.iter().map(|(_, b)| b.as_slice()).collect();
    assert_eq!(bodies, [&b"body-a"[..], b"body-b", b"body-d"]);
    for (record, _) in &claimed {
        let next = if record.id == "b" {
            Next::RetryAt(5000)
        } else {
            Next::Delivered
        };
        assert!(queue
            .finish_attempt(record, attempt(200), next)
            .await
            .unwrap());
    }
    assert_eq!(depth_of(&*queue, "acme").await, (0, 1, 1, Some(20)));
    assert!(
        queue.get("a").await.unwrap().is_none(),
        "delivered from the old slot"
    );
    assert_eq!(queue.get("c").await.unwrap().unwrap().attempts.len(), 1);
    assert!(
        queue.retry_now("c", 200).await.unwrap(),
        "an old dead letter is replayed"
    );
    let again = queue.claim_due(300, 1000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].0.id.as_str(), &again[0].1[..]),
        ("c", &b"body-c"[..])
    );
    assert_eq!(
        queue
            .purge(&DeliveryFilter::default(), State::Pending)
            .await
            .unwrap(),
        2,
        "b and c"
    );
    assert_eq!(depth_of(&*queue, "acme").await, (0, 0, 0, None));
}
