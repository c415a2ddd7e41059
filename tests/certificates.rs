//! Certificates rustls cannot use are refused when the config is loaded (`hookgate check`,
//! and so a start), not at the first handshake or delivery: an X.509 v1 certificate, an
//! expired one, and a key that is not the certificate's; for the inbound listener's
//! certificate and for an endpoint's CA and client certificate.

mod support;

use std::path::Path;
use std::process::Command;

use support::{make_certificates, openssl};

/// `v1.pem` (X.509 v1, signed by the CA), `expired.pem` (v3, valid in January 2020) and
/// `other.key` (a key of no certificate), beside `make_certificates`' files.
fn bad_certificates(dir: &Path) {
    make_certificates(dir);
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
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "v1.pem",
            "-days",
            "2",
        ],
    );
    std::fs::create_dir(dir.join("db")).unwrap();
    std::fs::write(dir.join("db/index.txt"), "").unwrap();
    std::fs::write(dir.join("db/serial"), "01\n").unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = test\n[test]\ndatabase = db/index.txt\nserial = db/serial\nnew_certs_dir = db\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n[leaf]\nbasicConstraints = CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "leaf.csr",
            "-out",
            "expired.pem",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200201000000Z",
            "-extensions",
            "leaf",
            "-notext",
        ],
    );
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "other.key",
        ],
    );
}

/// `hookgate check` on `yaml`: whether it passed, and what it said.
fn check(dir: &Path, yaml: &str) -> (bool, String) {
    let file = dir.join("hookgate.yaml");
    std::fs::write(&file, yaml).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "-c", file.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

fn inbound(dir: &Path, cert: &str, key: &str) -> String {
    let d = dir.display();
    format!("inbound:\n  listen: 127.0.0.1:0\n  upstream: http://127.0.0.1:9\n  tls: {{ cert: {d}/{cert}, key: {d}/{key} }}\n  routes: [{{ name: a, path: /a, verify: none }}]\n")
}

fn endpoint(dir: &Path, tls: &str) -> String {
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  endpoints:\n    - {{ name: a, url: \"https://127.0.0.1:9/\", sign: {{ scheme: standard-webhooks, secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }}, tls: {{ {} }} }}\n",
        tls.replace("DIR", &dir.display().to_string())
    )
}

#[test]
fn the_inbound_certificate_is_checked_when_the_config_loads() {
    let dir = tempfile::tempdir().unwrap();
    bad_certificates(dir.path());
    let (ok, said) = check(dir.path(), &inbound(dir.path(), "server.pem", "server.key"));
    assert!(ok, "{said}");
    for (cert, key, expected) in [
        ("v1.pem", "leaf.key", "is X.509 v1: rustls accepts v3 only"),
        ("expired.pem", "leaf.key", "expired on"),
        ("server.pem", "other.key", "other.key is not the key of"),
    ] {
        let (ok, said) = check(dir.path(), &inbound(dir.path(), cert, key));
        assert!(!ok && said.contains(expected), "{cert} {key}: {said}");
        assert!(said.contains("inbound.tls"), "{said}");
    }
}

#[test]
fn an_endpoints_ca_and_client_certificate_are_checked_when_the_config_loads() {
    let dir = tempfile::tempdir().unwrap();
    bad_certificates(dir.path());
    let good = "ca: DIR/ca.pem, cert: DIR/client.pem, key: DIR/client.key";
    let (ok, said) = check(dir.path(), &endpoint(dir.path(), good));
    assert!(ok, "{said}");
    for (tls, expected, field) in [
        ("ca: DIR/v1.pem", "is X.509 v1", "tls.ca"),
        ("ca: DIR/expired.pem", "expired on", "tls.ca"),
        (
            "cert: DIR/v1.pem, key: DIR/leaf.key",
            "is X.509 v1",
            "tls.cert",
        ),
        (
            "cert: DIR/expired.pem, key: DIR/leaf.key",
            "expired on",
            "tls.cert",
        ),
        (
            "cert: DIR/client.pem, key: DIR/other.key",
            "is not the key of",
            "tls.cert",
        ),
    ] {
        let (ok, said) = check(dir.path(), &endpoint(dir.path(), tls));
        assert!(
            !ok && said.contains(expected) && said.contains(field),
            "{tls}: {said}"
        );
    }
}
