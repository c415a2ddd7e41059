//! The cost per published event of `outbound.events.validate`: a 1.3 KB payload checked
//! against a small schema (parse included, as `POST /events` does), next to parsing alone.
//!
//! cargo bench --bench catalog

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hookgate::config::EventTypeConfig;
use hookgate::outbound::catalog::Catalog;

fn catalog(c: &mut Criterion) {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": { "type": "string" },
            "data": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {
                    "id": { "type": "string", "pattern": "^cand_[0-9]+$" },
                    "name": { "type": "string", "maxLength": 200 },
                    "notes": { "type": "string" }
                }
            }
        }
    });
    let types = [EventTypeConfig {
        name: "candidate.created".into(),
        description: String::new(),
        schema: Some(schema),
        example: None,
        deprecated: false,
    }];
    let catalog = Catalog::new(&types, true).unwrap();
    let payload = serde_json::to_vec(&serde_json::json!({
        "event": "candidate.created",
        "data": { "id": "cand_1", "name": "A. Candidate", "notes": "x".repeat(1130) }
    }))
    .unwrap();
    c.bench_function("parse only (1.3 KB)", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&payload)).unwrap())
    });
    c.bench_function("parse and validate (1.3 KB)", |b| {
        b.iter(|| {
            catalog
                .check(black_box("candidate.created"), black_box(&payload))
                .unwrap()
        })
    });
}

criterion_group!(benches, catalog);
criterion_main!(benches);
