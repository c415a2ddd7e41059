//! The delivery history at size: fills an embedded history with HISTORY_ROWS delivered
//! messages (1,000,000 by default; 1,000 tenants, 1.3 KB payloads kept), then times the
//! lists the admin API and the portal make, and prints p50 and p99 of each, the fill rate,
//! the file's size and the process's RSS before and after.
//!
//! cargo bench --bench history                  (HISTORY_ROWS=100000 for a quick run)

use std::time::Instant;

use hookgate::config::StoreConfig;
use hookgate::store::history::{Delivered, HistoryQuery};
use hookgate::store::queue::{DeliveryFilter, EventRef, Record};

const TENANTS: usize = 1000;
const QUERIES: usize = 1000;

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn row(i: usize) -> Delivered {
    let tenant = format!("tenant-{}", i % TENANTS);
    let record = Record {
        event: Some(EventRef {
            event_id: format!("evt_{i:012}"),
            subscription: format!("sub_{}", i % (TENANTS * 3)),
            tenant: Some(tenant),
            event_type: format!("candidate.stage{}", i % 20),
        }),
        idempotency_key: Some(format!("key-{i}")),
        ..Record::json(
            format!("msg_{i:024}"),
            "subscriptions",
            1_700_000_000_000 + i as u64,
        )
    };
    Delivered {
        record,
        delivered_ms: 1_700_000_000_000 + i as u64,
        payload_bytes: 1300,
    }
}

fn percentiles(mut took: Vec<f64>) -> (f64, f64) {
    took.sort_by(f64::total_cmp);
    (took[took.len() / 2], took[took.len() * 99 / 100])
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("HISTORY_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = hookgate::store::open(
        &StoreConfig::Embedded {
            path: dir.path().to_path_buf(),
            max_ids: 1000,
        },
        None,
    )
    .unwrap();
    let history = store.history().unwrap();
    let rss_before = rss_mib();
    let payload = vec![b'x'; 1300];
    let started = Instant::now();
    for start in (0..rows).step_by(512) {
        let batch = (start..(start + 512).min(rows))
            .map(|i| (row(i), Some(payload.clone())))
            .collect();
        history.keep(batch).await.unwrap();
    }
    let fill = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(dir.path().join("history.redb")).map_or(0, |m| m.len());
    println!(
        "filled {rows} rows in {fill:.1}s ({:.0} rows/s); history.redb {} MiB; RSS {rss_before} -> {} MiB",
        rows as f64 / fill,
        size >> 20,
        rss_mib()
    );
    let query =
        |f: &dyn Fn(usize) -> HistoryQuery| -> Vec<HistoryQuery> { (0..QUERIES).map(f).collect() };
    let first_page = |filter: DeliveryFilter| HistoryQuery {
        filter,
        limit: 100,
        ..HistoryQuery::default()
    };
    let cases: Vec<(&str, Vec<HistoryQuery>)> = vec![
        (
            "newest 100, no filter",
            query(&|_| first_page(DeliveryFilter::default())),
        ),
        (
            "a tenant's newest 100 (the portal's list)",
            query(&|i| {
                first_page(DeliveryFilter {
                    tenant: Some(format!("tenant-{}", i * 7 % TENANTS)),
                    endpoint: Some("subscriptions".into()),
                    ..DeliveryFilter::default()
                })
            }),
        ),
        (
            "a subscription's newest 100",
            query(&|i| {
                first_page(DeliveryFilter {
                    subscription: Some(format!("sub_{}", i * 13 % (TENANTS * 3))),
                    ..DeliveryFilter::default()
                })
            }),
        ),
        (
            "by event id",
            query(&|i| HistoryQuery {
                event_id: Some(format!("evt_{:012}", i * 997 % rows)),
                limit: 100,
                ..HistoryQuery::default()
            }),
        ),
        (
            "by Idempotency-Key",
            query(&|i| HistoryQuery {
                idempotency_key: Some(format!("key-{}", i * 991 % rows)),
                limit: 100,
                ..HistoryQuery::default()
            }),
        ),
        (
            "a tenant's page half-way back (after a cursor)",
            query(&|i| {
                let tenant = i * 7 % TENANTS;
                let newest = rows - TENANTS + tenant;
                // Half-way through the tenant's rows: page 500 on a million rows.
                let after = row(newest - (rows / TENANTS / 2) * TENANTS).cursor();
                HistoryQuery {
                    after: Some(after),
                    ..first_page(DeliveryFilter {
                        tenant: Some(format!("tenant-{tenant}")),
                        ..DeliveryFilter::default()
                    })
                }
            }),
        ),
    ];
    println!("| list | p50 ms | p99 ms | rows |");
    println!("|---|---|---|---|");
    for (name, queries) in cases {
        let mut took = Vec::new();
        let mut found = 0;
        for q in &queries {
            let start = Instant::now();
            found = history.list(q).await.unwrap().len();
            took.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let (p50, p99) = percentiles(took);
        println!("| {name} | {p50:.2} | {p99:.2} | {found} |");
    }
    println!("RSS after the lists: {} MiB", rss_mib());
}
