//! Signature verification next to a bare HMAC-SHA256 over the same bytes: verification
//! must stay within 1.3x of the bare HMAC (header parsing, tag decoding and the
//! constant-time comparison are the only extra work; the body is never copied).
//!
//! cargo bench --bench verify

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hookgate::schemes::{Message, Request, SchemeSpec, Verifier};
use http::{HeaderMap, HeaderName, HeaderValue};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn signed(scheme: &str, body: &[u8]) -> (Verifier, HeaderMap) {
    let verifier = Verifier::new(&SchemeSpec::Named(scheme.into()), &[SECRET], None).unwrap();
    let headers = verifier
        .sign(&Message {
            id: "msg_bench",
            timestamp: 1_700_000_000,
            method: "POST",
            url: None,
            body,
        })
        .unwrap();
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    // Realistic company for the signature headers.
    for (k, v) in [
        ("content-type", "application/json"),
        ("user-agent", "Provider-Hookshot/1.0"),
        ("accept", "*/*"),
    ] {
        map.insert(k, HeaderValue::from_static(v));
    }
    (verifier, map)
}

fn bench(c: &mut Criterion) {
    for size in [1024usize, 64 * 1024] {
        let body: Vec<u8> = (0..size).map(|i| b"{\"event\":\"x\"}"[i % 13]).collect();
        let mut group = c.benchmark_group(format!("{}KiB", size / 1024));
        group.throughput(Throughput::Bytes(size as u64));

        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
        group.bench_function("bare-hmac-sha256", |b| {
            b.iter(|| ring::hmac::sign(&key, black_box(&body)))
        });

        for scheme in ["github", "rejento", "stripe", "standard-webhooks"] {
            let (verifier, headers) = signed(scheme, &body);
            let request = Request {
                method: "POST",
                url: None,
                headers: &headers,
                body: &body,
            };
            assert!(verifier.verify(&request, 1_700_000_000).is_ok());
            group.bench_with_input(
                BenchmarkId::new("verify", scheme),
                &request,
                |b, request| b.iter(|| verifier.verify(black_box(request), 1_700_000_000).unwrap()),
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
