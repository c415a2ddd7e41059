//! Finding 2 of the hardening review, at the scale of the process's descriptors: a flood
//! of silent connections past the open-files limit. The excess is refused, the admin port
//! keeps answering, and descriptors come back once the flood is over. (While refusals are
//! being written, Pingora's accept loop may still meet the limit for a moment: it logs
//! `Too many open files` and pauses accepting for a second, which the flood survives.)

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{raw_exchange, Gateway, TestApp};

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_past_the_descriptor_limit_is_refused_and_leaves_nothing_behind() {
    let app = TestApp::start().await;
    // 600 descriptors leave room for (600 - 256) / 2 = 172 client connections.
    let gateway = Gateway::builder(app.url())
        .open_files(600)
        .inbound("  header_timeout: 30s\n")
        .start()
        .await;
    let (fds_before, rss_before) = gateway.resources();
    let flood: Vec<TcpStream> = (0..1_000)
        .filter_map(|_| TcpStream::connect(gateway.inbound).ok())
        .collect();
    assert_eq!(flood.len(), 1_000, "the kernel accepted every connection");
    gateway
        .metrics_eventually("hookgate_inbound_connections 172")
        .await;
    let health = reqwest::get(gateway.admin_url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let refused = raw_exchange(
        gateway.inbound,
        b"POST /hooks/test HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(3),
    );
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused:?}");
    let (fds_during, _) = gateway.resources();
    assert!(fds_during < 600, "{fds_during} descriptors open");

    drop(flood);
    gateway.until_admitted(Duration::from_secs(5)).await;
    // Connections still in the listen backlog are accepted and refused after the flood.
    let started = Instant::now();
    let (fds_after, rss_after) = loop {
        let (fds, rss) = gateway.resources();
        if fds <= fds_before + 4 {
            break (fds, rss);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "descriptors before {fds_before}, after {fds}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("flood of 1,000: descriptors {fds_before} -> {fds_during} -> {fds_after}, RSS {rss_before} -> {rss_after} KiB");
}

/// The second half of finding 2: memory taken by a flood is handed back once it is over
/// (glibc's malloc kept all of it; jemalloc's background thread purges freed pages).
#[tokio::test(flavor = "multi_thread")]
async fn memory_taken_by_a_flood_comes_back_after_it() {
    const FLOOD: usize = 3_000;
    let app = TestApp::start().await;
    let gateway = Gateway::builder(app.url())
        .inbound("  header_timeout: 60s\n  max_connections: 5000\n")
        .start()
        .await;
    let (_, rss_before) = gateway.resources();
    // Each connection sends half a request head, so each holds a read buffer.
    let flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| {
            let mut stream = TcpStream::connect(gateway.inbound).unwrap();
            stream
                .write_all(b"POST /hooks/test HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    gateway
        .metrics_eventually(&format!("hookgate_inbound_connections {FLOOD}"))
        .await;
    let (_, rss_during) = gateway.resources();
    let grown = rss_during.saturating_sub(rss_before);
    assert!(grown > 20 * 1024, "the flood took only {grown} KiB");

    drop(flood);
    let started = Instant::now();
    let rss_after = loop {
        let (_, rss) = gateway.resources();
        if rss < rss_before + grown / 4 {
            break rss;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "RSS {rss_before} KiB before, {rss_during} during, still {rss} after the flood"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "flood of {FLOOD}: RSS {rss_before} -> {rss_during} -> {rss_after} KiB after {:?}",
        started.elapsed()
    );
}
