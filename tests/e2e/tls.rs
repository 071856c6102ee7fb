//! The production hub is HTTPS: the hive's libcurl driver must speak TLS, verify certificates, and
//! honour a custom CA bundle the way huggingface_hub (requests) and curl do.
//!
//! A tiny TLS "hub" in Python (the system `python3`; its `ssl` module) answers every resolve with
//! 404 RepoNotFound, so reaching that error proves the handshake and the CA setup worked.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::process::KillOnDrop;
use crate::harness::{free_port, Hive, Keeper};

const SERVER: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(404); self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "0"); self.end_headers()
    do_GET = do_HEAD
    def log_message(self, *a): pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[2], sys.argv[3])
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
s.socket = ctx.wrap_socket(s.socket, server_side=True); s.serve_forever()
"#;

struct TlsHub {
    _child: KillOnDrop,
    endpoint: String,
}

/// A self-signed certificate for 127.0.0.1 (`cert.pem`, `key.pem` in `dir`), then the server.
fn tls_hub(dir: &Path) -> TlsHub {
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian package `openssl`) is needed to make a test certificate");
    assert!(made.success(), "openssl req failed");
    let port = free_port();
    let child = Command::new("python3")
        .args(["-c", SERVER, &port.to_string()])
        .arg(dir.join("cert.pem"))
        .arg(dir.join("key.pem"))
        .stdout(Stdio::null())
        .spawn()
        .expect("python3");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the TLS hub did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsHub { _child: KillOnDrop(child), endpoint: format!("https://127.0.0.1:{port}") }
}

fn download(hive: &Hive) -> crate::harness::Output {
    Keeper::new().hive(hive).args(["model", "download", "org/absent", "model.gguf"]).run()
}

#[test]
fn an_untrusted_certificate_is_refused_and_a_ca_bundle_is_honoured() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hub = tls_hub(dir.path());

    // Unknown CA: refused, and the message says it is about the certificate.
    let strict = Hive::builder().endpoint(&hub.endpoint).retries(0).spawn();
    let out = download(&strict);
    out.assert_code(1).assert_stderr_contains("certificate");

    // With the CA bundle set (as for huggingface_hub): TLS works and the hub's answer comes through.
    let cert = dir.path().join("cert.pem");
    let trusting =
        Hive::builder().endpoint(&hub.endpoint).retries(0).env("REQUESTS_CA_BUNDLE", cert.to_str().unwrap()).spawn();
    let out = download(&trusting);
    out.assert_code(1).assert_stderr_contains("org/absent");
    assert!(!out.stderr.contains("certificate"), "{}", out.dump());
    assert!(out.stderr.to_lowercase().contains("not found"), "{}", out.dump());
}
