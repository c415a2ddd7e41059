//! Test harness: a real app that records what it receives, and the real hookgate binary
//! started on free ports in front of it.
#![allow(dead_code)] // each test file uses its own part of the harness

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Runs the test `name` of this test binary again in a network namespace of its own with
/// only loopback (`unshare`), where nothing it does can reach a network and its ports meet
/// no other test's. `true`: this is that run, go on with the test; `false`: the test ran
/// there (and passed), return.
pub fn in_loopback_namespace(name: &str) -> bool {
    const INSIDE: &str = "HOOKGATE_TEST_IN_NETNS";
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let status = Command::new("unshare")
        .args(["--map-root-user", "--net", "--", "sh", "-c"])
        .arg("ip link set lo up && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture"])
        .env(INSIDE, "1")
        .status()
        .expect("unshare (util-linux) runs this test without a network");
    assert!(status.success(), "{name} failed in its namespace");
    false
}

/// Waits (up to 10 s) until something accepts connections on 127.0.0.1:`port`.
pub fn wait_until_listening(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing listens on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A redis-server of a test's own, bound to 127.0.0.1 with its files in a test directory;
/// killed when dropped.
pub struct RedisServer(Child);

impl RedisServer {
    /// Starts redis-server with `args` and returns once `port` accepts connections.
    pub fn start(dir: &std::path::Path, port: u16, args: &[&str]) -> Self {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(dir)
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        wait_until_listening(port);
        let mut server = RedisServer(child);
        // Listening is not yet serving (and the port could be another process's).
        let started = Instant::now();
        loop {
            // PONG, or NOAUTH from one that wants a password: either way Redis answers.
            let answered = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "ping"])
                .output()
                .is_ok_and(|out| !out.stdout.is_empty());
            if answered || args.contains(&"--tls-port") {
                break;
            }
            if let Ok(Some(status)) = server.0.try_wait() {
                panic!("redis-server on port {port} exited with {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server on port {port} does not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl RedisServer {
    /// Sends `signal` (`STOP`, `CONT`, `KILL`...) to the server process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Redis for one test: the one `HOOKGATE_TEST_REDIS` names (for example
/// `redis://127.0.0.1:6379`; tests keep to their own key prefixes), or else a redis-server
/// of the test's own on a free port, so `cargo test` needs no Redis already running.
pub struct TestRedis {
    pub url: String,
    _own: Option<(RedisServer, tempfile::TempDir)>,
}

impl TestRedis {
    pub fn start() -> Self {
        if let Ok(url) = std::env::var("HOOKGATE_TEST_REDIS") {
            return TestRedis { url, _own: None };
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let server = RedisServer::start(dir.path(), port, &["--port", &port.to_string()]);
        TestRedis {
            url: format!("redis://127.0.0.1:{port}"),
            _own: Some((server, dir)),
        }
    }
}

/// A port nothing listens on right now.
/// A port that nothing listens on, for hookgate to bind. Each is handed out once per test
/// process, from below the kernel's ephemeral range (32768 and up on Linux): a port the
/// kernel picked for `bind(0)` can be picked again for the next caller or for an outgoing
/// connection before hookgate binds it, which once gave inbound and outbound one port.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    // Test binaries run one after another; a start that depends on the pid keeps one
    // binary's ports away from those a previous one's children may still hold.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        (std::process::id() % SPAN as u32) as u16 + 1,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Polls `check` (every 50 ms) until it holds; fails the test after `within`.
pub async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < within,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks (every 20 ms) that `check` holds for the whole `window`: what must not happen
/// (a second attempt, a send to a disabled endpoint) fails the test the moment it does,
/// instead of being looked for once at the end of a fixed sleep.
pub async fn stays(what: &str, window: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    loop {
        assert!(
            check().await,
            "{what}: no longer so after {:?}",
            started.elapsed()
        );
        if started.elapsed() >= window {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The headers a sender using `scheme` with `secret` puts on `body` (signed now).
pub fn sign(
    scheme: &str,
    secret: &str,
    id: &str,
    body: &[u8],
    url: Option<&str>,
) -> Vec<(String, String)> {
    use hookgate::clock::unix_now;
    use hookgate::schemes::{Message, SchemeSpec, Verifier};
    Verifier::new(&SchemeSpec::Named(scheme.into()), &[secret], None)
        .unwrap()
        .sign(&Message {
            id,
            timestamp: unix_now(),
            method: "POST",
            url,
            body,
        })
        .unwrap()
}

/// POSTs `body` to `url` with `headers`.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> reqwest::Response {
    let mut request = client.post(url).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

/// The outbound endpoint most tests use: `acme`, delivering to the app's `path` signed as
/// Rejento with `acme-secret`; `extra` adds keys (`retry: ...`, `mode: sync`...).
pub fn acme_endpoint(app: &TestApp, path: &str, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    format!(
        "    - {{ name: acme, url: \"{}{path}\", sign: {{ scheme: rejento, secret: acme-secret }}{extra} }}\n",
        app.url()
    )
}

/// What the sending app does: POSTs a JSON message to the `acme` endpoint.
pub async fn send_to_acme(gateway: &Gateway, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/acme", gateway.outbound))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// What an app fanning out to its customers does: POSTs a message for a per-request
/// destination, signed with the tenant's secret; the delivery id.
pub async fn send_to_destination(gateway: &Gateway, url: &str, body: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("http://{}/", gateway.outbound))
        .header("Hookgate-Destination", url)
        .header("Hookgate-Secret", "tenant-secret")
        .header("Hookgate-Scheme", "github")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let json: serde_json::Value = response.json().await.unwrap();
    json["delivery_id"].as_str().unwrap().to_string()
}

/// One request as the app received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Where the request came from.
    pub peer: SocketAddr,
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// When the request arrived.
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Checks the request's signature as a receiver would (hookgate's inbound verifier for
    /// the named scheme) and returns the signed delivery id; panics if it does not verify.
    pub fn verified_id(&self, scheme: &str, secret: &str) -> Option<String> {
        use hookgate::clock::unix_now;
        use hookgate::schemes::{Request, SchemeSpec, Verifier};
        let verifier = Verifier::new(&SchemeSpec::Named(scheme.into()), &[secret], None).unwrap();
        let request = Request {
            method: "POST",
            url: None,
            headers: &self.headers,
            body: &self.body,
        };
        verifier.verify(&request, unix_now()).unwrap().id
    }
}

#[derive(Clone)]
struct Behaviour {
    status: u16,
    delay: Duration,
    headers: Vec<(String, String)>,
    body: &'static str,
}

/// A small HTTP/1.1 app (hyper) that records every request and answers
/// `status` with body `app says hi` after `delay`.
pub struct TestApp {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    /// The next this many connections are closed after the request arrives, unanswered.
    to_drop: Arc<AtomicU32>,
    dropped: Arc<AtomicU32>,
    /// Connections accepted so far.
    connections: Arc<AtomicU32>,
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::start_on("127.0.0.1").await
    }

    /// The app on another loopback address (`127.0.0.3`), to tell receivers apart by address.
    pub async fn start_on(ip: &str) -> TestApp {
        TestApp::start_at(&format!("{ip}:0")).await
    }

    /// The app on a given address: one a gateway was pointed at while nothing listened.
    pub async fn start_at(addr: &str) -> TestApp {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(Behaviour {
            status: 200,
            delay: Duration::ZERO,
            headers: Vec::new(),
            body: "app says hi",
        }));
        let (rec, beh) = (received.clone(), behaviour.clone());
        let to_drop = Arc::new(AtomicU32::new(0));
        let dropped = Arc::new(AtomicU32::new(0));
        let (drop_budget, drop_count) = (to_drop.clone(), dropped.clone());
        let connections = Arc::new(AtomicU32::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, peer)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let take = |n: u32| n.checked_sub(1);
                if drop_budget
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, take)
                    .is_ok()
                {
                    // Read the request's start, then hang up without a word.
                    let mut buf = [0u8; 1024];
                    let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
                    drop_count.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let (rec, beh) = (rec.clone(), beh.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (rec, beh) = (rec.clone(), beh.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            rec.lock().unwrap().push(Received {
                                peer,
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                                at: Instant::now(),
                            });
                            let behaviour = beh.lock().unwrap().clone();
                            tokio::time::sleep(behaviour.delay).await;
                            let mut response = Response::builder()
                                .status(behaviour.status)
                                .header("X-App", "test-app");
                            for (k, v) in &behaviour.headers {
                                response = response.header(k, v);
                            }
                            let response = response
                                .body(Full::new(Bytes::from_static(behaviour.body.as_bytes())))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestApp {
            addr,
            received,
            behaviour,
            to_drop,
            dropped,
            connections,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until `count` requests have arrived.
    pub async fn wait_for(&self, count: usize) {
        let started = Instant::now();
        while self.received().len() < count {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the app got {} of {count} requests",
                self.received().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes the next `count` new connections as soon as a request arrives on them.
    pub fn close_connections(&self, count: u32) {
        self.to_drop.store(count, Ordering::SeqCst);
    }

    /// Connections closed unanswered so far.
    pub fn closed(&self) -> u32 {
        self.dropped.load(Ordering::SeqCst)
    }

    pub fn respond_with(&self, status: u16, delay: Duration) {
        self.respond_with_headers(status, delay, &[]);
    }

    pub fn respond_with_headers(&self, status: u16, delay: Duration, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        *self.behaviour.lock().unwrap() = Behaviour {
            status,
            delay,
            headers,
            body: "app says hi",
        };
    }

    /// Answers `status` with `body` from now on.
    pub fn respond_with_body(&self, status: u16, body: &'static str) {
        let mut behaviour = self.behaviour.lock().unwrap();
        behaviour.status = status;
        behaviour.body = body;
    }
}

/// The hookgate binary, running on free ports with a config written for the test.
pub struct Gateway {
    child: Child,
    pub inbound: SocketAddr,
    pub outbound: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    log: PathBuf,
    /// The path hookgate was started with.
    pub config: PathBuf,
}

pub struct GatewayBuilder {
    upstream: String,
    routes: String,
    inbound_extra: String,
    server: String,
    env: Vec<(String, String)>,
    store: Option<PathBuf>,
    /// `store.max_ids` of the embedded store.
    max_ids: Option<usize>,
    /// The process's open-files limit.
    open_files: Option<u32>,
    /// `store: { kind: redis, ... }` instead of the embedded store.
    redis: Option<String>,
    /// More keys of `store:`, e.g. `encryption: {...}`.
    store_extra: String,
    endpoints: Option<String>,
    outbound_extra: String,
    /// More top-level sections, e.g. `telemetry:`.
    sections: String,
    /// Lay the config out as a mounted Kubernetes ConfigMap (symlinks through `..data`).
    config_map: bool,
    /// More keys of `admin:`, e.g. `portal: {...}`.
    admin_extra: String,
}

/// Runs the hookgate CLI against `gateway`'s admin port: whether it succeeded, and what it
/// printed (stdout, then stderr).
pub fn cli(gateway: &Gateway, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .env("HOOKGATE_ADMIN_URL", gateway.admin_url(""))
        .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The admin API token every test gateway has.
pub const ADMIN_TOKEN: &str = "test-admin-token";

impl Gateway {
    /// A gateway in front of `upstream` (e.g. `TestApp::url()`), with one route `/hooks/test`.
    pub fn builder(upstream: impl Into<String>) -> GatewayBuilder {
        GatewayBuilder {
            upstream: upstream.into(),
            routes: "    - { name: test, path: /hooks/test, verify: none }\n".to_string(),
            inbound_extra: String::new(),
            server: "server: { threads: 1, grace_period: 1s, shutdown_timeout: 1s }\n".to_string(),
            env: Vec::new(),
            store: None,
            max_ids: None,
            open_files: None,
            redis: None,
            endpoints: None,
            outbound_extra: String::new(),
            sections: String::new(),
            config_map: false,
            admin_extra: String::new(),
            store_extra: String::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.inbound, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Calls the admin API with the token; the status and the JSON answer.
    pub async fn admin(&self, method: reqwest::Method, path: &str) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .request(method, self.admin_url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Calls the admin API with the token and a JSON body; the status and the JSON answer.
    pub async fn admin_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .request(method, self.admin_url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Creates a subscription through the admin API; its answer (with the secret shown once).
    pub async fn subscribe(&self, body: serde_json::Value) -> serde_json::Value {
        let (status, answer) = self
            .admin_json(reqwest::Method::POST, "/admin/subscriptions", &body)
            .await;
        assert_eq!(status, 201, "{answer}");
        answer
    }

    /// Publishes an event (`POST /events`) with `headers`; the status and the JSON answer.
    pub async fn publish(&self, headers: &[(&str, &str)], body: &str) -> (u16, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .post(format!("http://{}/events", self.outbound))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The outbound messages still stored (pending, scheduled or dead).
    pub async fn stored_deliveries(&self) -> Vec<serde_json::Value> {
        let (status, json) = self.admin(reqwest::Method::GET, "/admin/deliveries").await;
        assert_eq!(status, 200, "{json}");
        json["deliveries"].as_array().unwrap().clone()
    }

    /// Waits until `/metrics` shows `series`: a request is counted just after its answer is
    /// sent, a reload of a changed file once it settled (`server.reload_settle`, 2 s).
    pub async fn metrics_eventually(&self, series: &str) -> String {
        let started = Instant::now();
        loop {
            let metrics = self.metrics().await;
            if metrics.contains(series) {
                return metrics;
            }
            assert!(
                started.elapsed() < Duration::from_secs(6),
                "no {series} in:\n{metrics}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The config file's text as it is now.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config).unwrap()
    }

    /// Replaces the config as the kubelet updates a ConfigMap volume: the new file in a new
    /// directory, then `..data` swapped to it in one rename.
    pub fn swap_config_map(&self, text: &str) {
        swap_config_map(self.config.parent().unwrap(), text);
    }

    /// Sends `signal` (e.g. `HUP`) to hookgate.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Posts `{}` to `/hooks/test` with `X-Delivery: id`, as a provider would.
    pub async fn deliver(&self, client: &reqwest::Client, id: &str) -> reqwest::Response {
        client
            .post(self.url("/hooks/test"))
            .header("X-Delivery", id)
            .body("{}")
            .send()
            .await
            .unwrap()
    }

    /// Waits until a request on a new connection is answered 200 (the inbound port admits
    /// connections again), for at most `within`.
    pub async fn until_admitted(&self, within: Duration) {
        let started = Instant::now();
        loop {
            let answer = raw_exchange(
                self.inbound,
                b"POST /hooks/test HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                Duration::from_secs(3),
            );
            if answer.starts_with("HTTP/1.1 200") {
                return;
            }
            assert!(started.elapsed() < within, "{answer:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Open file descriptors and resident memory (KiB) of the process, from /proc.
    pub fn resources(&self) -> (usize, u64) {
        let fds =
            std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |dir| dir.count());
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        (fds, rss)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < within,
                "hookgate did not exit within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayBuilder {
    /// Replaces the routes; each line an item of `inbound.routes`.
    pub fn routes(mut self, routes: &str) -> Self {
        self.routes = routes.to_string();
        self
    }

    /// Extra `inbound:` keys, e.g. `"  max_body: 1KiB\n"`.
    pub fn inbound(mut self, extra: &str) -> Self {
        self.inbound_extra.push_str(extra);
        self
    }

    /// Adds an outbound side with these endpoints (each line an item of `outbound.endpoints`).
    pub fn endpoints(mut self, endpoints: &str) -> Self {
        self.endpoints = Some(endpoints.to_string());
        self
    }

    /// Extra `outbound:` keys, e.g. `"  allow_private_destinations: [127.0.0.1/32]\n"`.
    pub fn outbound(mut self, extra: &str) -> Self {
        self.outbound_extra.push_str(extra);
        self
    }

    /// Keeps the embedded store in `dir` (to restart a gateway on the same state).
    pub fn store_dir(mut self, dir: &std::path::Path) -> Self {
        self.store = Some(dir.to_path_buf());
        self
    }

    /// Runs hookgate with this open-files limit (soft and hard).
    pub fn open_files(mut self, limit: u32) -> Self {
        self.open_files = Some(limit);
        self
    }

    /// Caps the embedded store's dedupe ids (`store.max_ids`).
    pub fn max_ids(mut self, max_ids: usize) -> Self {
        self.max_ids = Some(max_ids);
        self
    }

    /// Uses Redis at `url` under `key_prefix` as the store (replicas share the prefix).
    pub fn redis(mut self, url: &str, key_prefix: &str) -> Self {
        self.redis = Some(format!(
            "store: {{ kind: redis, url: \"{url}\", key_prefix: \"{key_prefix}\", command_timeout: 500ms }}\n"
        ));
        self
    }

    /// Pingora worker threads per service (1 unless set).
    pub fn threads(mut self, threads: usize) -> Self {
        self.server =
            format!("server: {{ threads: {threads}, grace_period: 1s, shutdown_timeout: 1s }}\n");
        self
    }

    /// `server.grace_period` (1 s unless set).
    pub fn grace_period(mut self, grace: &str) -> Self {
        self.server =
            format!("server: {{ threads: 1, grace_period: {grace}, shutdown_timeout: 1s }}\n");
        self
    }

    /// Writes the config as a Kubernetes ConfigMap volume holds it: `hookgate.yaml` a
    /// symlink to `..data/hookgate.yaml`, `..data` a symlink to a versioned directory.
    pub fn config_map(mut self) -> Self {
        self.config_map = true;
        self
    }

    /// More keys of the `store:` mapping, in flow style: `"encryption: { keys: [...] }"`.
    pub fn store_keys(mut self, keys: &str) -> Self {
        self.store_extra = keys.to_string();
        self
    }

    /// More keys of the `admin:` mapping, in flow style: `"portal: { signing_key: ... }"`.
    pub fn admin(mut self, keys: &str) -> Self {
        self.admin_extra = format!(", {keys}");
        self
    }

    /// A top-level section of the config, e.g. `"telemetry:\n  sampling: 1.0\n"`.
    pub fn section(mut self, yaml: &str) -> Self {
        self.sections.push_str(yaml);
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    fn config_text(
        &self,
        inbound: SocketAddr,
        outbound: SocketAddr,
        admin: SocketAddr,
        store: &std::path::Path,
    ) -> String {
        let outbound = match &self.endpoints {
            Some(endpoints) => format!(
                "outbound:\n  listen: \"{outbound}\"\n{}  endpoints:\n{endpoints}",
                self.outbound_extra
            ),
            None => String::new(),
        };
        let store = match &self.redis {
            Some(redis) => redis.clone(),
            None => format!(
                "store: {{ kind: embedded, path: \"{}\", max_ids: {} }}\n",
                store.display(),
                self.max_ids.unwrap_or(1_000_000)
            ),
        };
        let store = match self.store_extra.as_str() {
            "" => store,
            extra => format!("{}, {extra} }}\n", store.trim_end().trim_end_matches('}')),
        };
        format!(
            "{server}{sections}admin: {{ listen: \"{admin}\", token: {ADMIN_TOKEN}{admin_extra} }}\n{store}{outbound}inbound:\n  listen: \"{inbound}\"\n  upstream: {upstream}\n{extra}  routes:\n{routes}",
            server = self.server,
            sections = self.sections,
            upstream = self.upstream,
            extra = self.inbound_extra,
            routes = self.routes,
            admin_extra = self.admin_extra,
        )
    }

    /// Starts hookgate and waits until `/readyz` answers 200.
    pub async fn start(self) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let inbound: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let outbound: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let store = self
            .store
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let text = self.config_text(inbound, outbound, admin, &store);
        let config = match self.config_map {
            false => {
                let config = dir.path().join("hookgate.yaml");
                std::fs::write(&config, text).unwrap();
                config
            }
            true => {
                let volume = dir.path().join("configmap");
                std::fs::create_dir(&volume).unwrap();
                swap_config_map(&volume, &text);
                std::os::unix::fs::symlink("..data/hookgate.yaml", volume.join("hookgate.yaml"))
                    .unwrap();
                volume.join("hookgate.yaml")
            }
        };
        let log = dir.path().join("hookgate.log");
        let mut command = match self.open_files {
            // prlimit sets the limit and then executes hookgate in its own process.
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_hookgate"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_hookgate")),
        };
        // A proxy set in the environment running the tests must not reroute their traffic.
        for name in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            command.env_remove(name);
        }
        command
            .args(["run", "--config"])
            .arg(&config)
            .env("HOOKGATE_LOG", hookgate::logging::DEFAULT_FILTER)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let child = command.spawn().unwrap();
        let mut gateway = Gateway {
            child,
            inbound,
            outbound,
            admin,
            dir,
            log,
            config,
        };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(gateway.admin_url("/readyz")).send().await {
                if r.status() == 200 {
                    return gateway;
                }
            }
            if let Some(status) = gateway.child.try_wait().unwrap() {
                panic!("hookgate exited with {status}:\n{}", gateway.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "hookgate not ready:\n{}",
                gateway.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A test CA (`ca.pem`) and a certificate for 127.0.0.1 signed by it (`server.pem`,
/// `server.key`), made in `dir` with the openssl CLI.
pub fn make_certificates(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=hookgate test CA",
        ],
    );
    signed_certificate(dir, "server", "127.0.0.1", "subjectAltName=IP:127.0.0.1");
    make_client_certificate(dir, "client", "hookgate client");
}

/// A client certificate `<name>.pem` (and `<name>.key`) for `cn`, signed by the CA that
/// [`make_certificates`] made in `dir`.
pub fn make_client_certificate(dir: &std::path::Path, name: &str, cn: &str) {
    signed_certificate(dir, name, cn, "extendedKeyUsage=clientAuth");
}

/// Runs the openssl CLI in `dir`; fails the test if it fails.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `<name>.pem` and `<name>.key` for `cn`, with the extension `ext`, signed by `dir`'s CA.
fn signed_certificate(dir: &std::path::Path, name: &str, cn: &str, ext: &str) {
    let (key, csr, pem, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    std::fs::write(
        dir.join(&extfile),
        format!("{ext}\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    let subject = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ],
    );
}

/// An HTTPS receiver (Python's `ssl`, a TLS stack hookgate does not use) on a free port,
/// with `dir`'s `server.pem`: it requires a client certificate signed by `dir`'s CA when
/// `require_client` is set, and speaks at most TLS 1.2 when `tls12_only` is. Each request
/// it answers is a JSON line in `received` (path, the client certificate's CN, version).
pub struct TlsReceiver(ScriptPeer);

impl TlsReceiver {
    pub fn start(dir: &std::path::Path, require_client: bool, tls12_only: bool) -> Self {
        let port = free_port();
        let log = dir.join(format!("received-{port}.jsonl"));
        let mut command = Command::new("python3");
        command
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/tls_receiver.py"
            ))
            .arg(port.to_string())
            .arg(dir)
            .arg(if require_client {
                "require"
            } else {
                "optional"
            })
            .arg(if tls12_only { "1.2" } else { "any" })
            .arg(&log)
            .stderr(Stdio::null()); // failed handshakes are the point of some tests
        TlsReceiver(ScriptPeer::start(command, port, log))
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.0.port)
    }

    /// The requests answered so far, one JSON object each.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.0.lines()
    }
}

/// A peer of the tests that runs as its own process (a Python script) on `port`, writing
/// what it received to `out` as JSON lines; killed when dropped.
pub struct ScriptPeer {
    child: Child,
    pub port: u16,
    out: PathBuf,
}

impl ScriptPeer {
    /// Starts `command` and waits until it listens on `port`.
    pub fn start(mut command: Command, port: u16, out: PathBuf) -> Self {
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 is installed");
        wait_until_listening(port);
        ScriptPeer { child, port, out }
    }

    /// What it wrote so far, one JSON object a line.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for ScriptPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends raw bytes on a fresh connection and returns everything read back until the
/// server closes the connection or `timeout` passes: for requests no HTTP client would send.
pub fn raw_exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    // A server that answers early and closes may reset the rest of a large write.
    let _ = stream.write_all(request);
    read_until(&mut stream, timeout, |_| false)
}

/// Reads from a raw connection until `done` holds for what arrived, the server closes it,
/// or `timeout` passes.
pub fn read_until(
    stream: &mut std::net::TcpStream,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    while started.elapsed() < timeout {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        if done(&String::from_utf8_lossy(&seen)) {
            break;
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// A Python with the official `opentelemetry-proto` package: a virtualenv under `target/`
/// made on first use (from PyPI), shared by later runs.
pub fn otlp_python() -> PathBuf {
    static READY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("otlp-venv");
            let python = venv.join("bin/python");
            let has_package = |python: &PathBuf| {
                Command::new(python)
                    .args([
                        "-c",
                        "import opentelemetry.proto.collector.trace.v1.trace_service_pb2",
                    ])
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !has_package(&python) {
                let made = Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .status()
                    .expect("python3 is installed");
                assert!(
                    made.success(),
                    "python3 -m venv failed (python3-venv installed?)"
                );
                let installed = Command::new(venv.join("bin/pip"))
                    .args(["install", "-q", "opentelemetry-proto==1.45.2"])
                    .status()
                    .unwrap();
                assert!(
                    installed.success(),
                    "pip could not install opentelemetry-proto"
                );
            }
            assert!(has_package(&python));
            python
        })
        .clone()
}

/// A real OTLP/HTTP collector (`tests/support/otlp_receiver.py`, decoding with the official
/// `opentelemetry-proto`) on a free port. `slow`: it answers each export after 30 s.
pub struct OtlpReceiver(ScriptPeer);

impl OtlpReceiver {
    pub fn start(dir: &std::path::Path, slow: bool) -> Self {
        let port = free_port();
        let out = dir.join(format!("spans-{port}.jsonl"));
        let mut command = Command::new(otlp_python());
        command
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/otlp_receiver.py"
            ))
            .arg(port.to_string())
            .arg(&out)
            .arg(if slow { "slow" } else { "ok" });
        OtlpReceiver(ScriptPeer::start(command, port, out))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.0.port)
    }

    /// The spans received so far, one JSON object each.
    pub fn spans(&self) -> Vec<serde_json::Value> {
        self.0.lines()
    }
}

/// Points `volume/..data` at a new directory holding `text` as `hookgate.yaml`.
fn swap_config_map(volume: &std::path::Path, text: &str) {
    static VERSION: AtomicU32 = AtomicU32::new(0);
    let version = format!("..v{}", VERSION.fetch_add(1, Ordering::SeqCst));
    std::fs::create_dir(volume.join(&version)).unwrap();
    std::fs::write(volume.join(&version).join("hookgate.yaml"), text).unwrap();
    let staged = volume.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(&version, &staged).unwrap();
    std::fs::rename(&staged, volume.join("..data")).unwrap();
}
