//! Matching a published event against 10,000 subscriptions (100 tenants, exact types,
//! wildcards and `*`), next to a scan of all of them: the index answers with a few hash
//! lookups, whatever the number of subscriptions.
//!
//! cargo bench --bench fanout

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hookgate::outbound::subscriptions::index::{pattern_matches, Index};
use hookgate::store::subscriptions::Subscription;

fn subscriptions() -> Vec<Subscription> {
    (0..10_000)
        .map(|i| Subscription {
            tenant: Some(format!("t{}", i % 100)),
            event_types: vec![match i % 3 {
                0 => format!("type{}.created", i % 50),
                1 => format!("type{}.*", i % 50),
                _ => "*".to_string(),
            }],
            ..Subscription::blank(format!("s{i:05}"), 0)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let all = subscriptions();
    let index = Index::new(1, all.clone());
    let labels = BTreeMap::new();
    let mut group = c.benchmark_group("match one event among 10,000 subscriptions");
    group.bench_function("index", |b| {
        b.iter(|| index.matching(black_box(Some("t7")), black_box("type7.created"), &labels))
    });
    group.bench_function("scan", |b| {
        b.iter(|| {
            all.iter()
                .filter(|s| {
                    s.enabled
                        && s.tenant.as_deref() == black_box(Some("t7"))
                        && s.event_types
                            .iter()
                            .any(|p| pattern_matches(p, black_box("type7.created")))
                })
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
