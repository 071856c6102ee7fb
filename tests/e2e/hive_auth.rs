//! Security defaults: a hive bound beyond loopback refuses to start without a token; a hive with a
//! token answers `401` JSON (with `WWW-Authenticate: Bearer`) to every request — `/health`
//! included — that lacks the exact `Authorization: Bearer <token>`; the keeper sends
//! `RBEE_HIVE_TOKEN`, and without it fails with a message naming that variable.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;

use crate::harness::process::KillOnDrop;
use crate::harness::{bin, free_port, http, Keeper, TIMEOUT};

const TOKEN: &str = "s3cret-token-for-tests";

/// `rbee-hive` with `args`, a fresh cache, no upstream, no token in the environment.
fn hive_command(cache: &TempDir, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("rbee-hive"));
    cmd.args(args);
    for var in ["HF_TOKEN", "HF_HOME", "RBEE_HIVE_TOKEN", "RBEE_HIVE_ADDR"] {
        cmd.env_remove(var);
    }
    cmd.env("HF_ENDPOINT", "http://127.0.0.1:9").env("HF_HUB_CACHE", cache.path());
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Runs a hive that must refuse to start; returns its stderr.
#[track_caller]
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let cache = TempDir::new().expect("cache");
    let mut cmd = hive_command(&cache, args);
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("spawn rbee-hive");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rbee-hive {args:?} kept running; it must refuse to listen without a token");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!status.success(), "rbee-hive {args:?} exited 0; stderr: {stderr}");
    let touched: Vec<_> = std::fs::read_dir(cache.path()).expect("cache dir").flatten().map(|e| e.path()).collect();
    assert!(touched.is_empty(), "a refused hive wrote to its cache: {touched:?}");
    stderr
}

#[test]
fn non_loopback_without_token_is_refused_at_start() {
    let port = free_port().to_string();
    for addr in [format!("0.0.0.0:{port}"), format!("[::]:{port}")] {
        for (args, env) in [
            (vec!["--addr", addr.as_str()], vec![]),
            (vec!["--addr", addr.as_str(), "--token", ""], vec![]),
            (vec!["--addr", addr.as_str()], vec![("RBEE_HIVE_TOKEN", "")]),
        ] {
            let stderr = refused(&args, &env);
            for needle in ["--token", "RBEE_HIVE_TOKEN", "refusing"] {
                assert!(stderr.contains(needle), "{args:?} {env:?}: stderr lacks {needle:?}: {stderr}");
            }
            // Nothing listens on the port afterwards (no detached child kept serving).
            assert!(std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().expect("port"))).is_err());
        }
    }
    // The address comes from the environment just as well.
    let stderr = refused(&[], &[("RBEE_HIVE_ADDR", &format!("0.0.0.0:{port}"))]);
    assert!(stderr.contains("RBEE_HIVE_TOKEN"), "{stderr}");
}

#[test]
fn short_or_whitespace_tokens_are_refused_at_start() {
    // Issue 24 §8: at least 16 visible characters, on loopback as well as off it.
    let port = free_port().to_string();
    for addr in [format!("0.0.0.0:{port}"), format!("127.0.0.1:{port}")] {
        for token in
            ["s3cret", "0123456789abcde", "                ", "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t", "0123456789 abcdef"]
        {
            for (args, env) in [
                (vec!["--addr", addr.as_str(), "--token", token], vec![]),
                (vec!["--addr", addr.as_str()], vec![("RBEE_HIVE_TOKEN", token)]),
            ] {
                let stderr = refused(&args, &env);
                for needle in ["at least 16", "RBEE_HIVE_TOKEN"] {
                    assert!(stderr.contains(needle), "{token:?}: stderr lacks {needle:?}: {stderr}");
                }
                assert!(std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().expect("port"))).is_err());
            }
        }
    }
}

/// A hive with a token, listening on all interfaces; killed on drop.
struct TokenHive {
    _child: KillOnDrop,
    url: String,
    _cache: TempDir,
}

impl TokenHive {
    fn spawn(token_via_env: bool) -> Self {
        let cache = TempDir::new().expect("cache");
        let port = free_port();
        let addr = format!("0.0.0.0:{port}");
        let mut cmd = hive_command(&cache, &["--addr", &addr]);
        if token_via_env {
            cmd.env("RBEE_HIVE_TOKEN", TOKEN);
        } else {
            cmd.args(["--token", TOKEN]);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().expect("spawn rbee-hive");
        let hive = Self { _child: KillOnDrop(child), url: format!("http://127.0.0.1:{port}"), _cache: cache };
        let deadline = Instant::now() + TIMEOUT;
        let auth = format!("Bearer {TOKEN}");
        while !http::request("GET", &hive.url("/health"), &[("Authorization", &auth)], None)
            .is_ok_and(|r| r.status == 200)
        {
            assert!(Instant::now() < deadline, "the hive with a token did not answer /health");
            std::thread::sleep(Duration::from_millis(20));
        }
        hive
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

#[test]
fn token_hive_answers_401_json_without_the_exact_token() {
    for via_env in [false, true] {
        let hive = TokenHive::spawn(via_env);
        let wrong_auth = [
            None,
            Some(String::new()),
            Some("Bearer".to_owned()),
            Some("Bearer ".to_owned()),
            Some("Bearer wrong".to_owned()),
            Some(format!("Bearer {TOKEN}x")),
            Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
            Some(format!("Basic {TOKEN}")),
            Some(TOKEN.to_owned()),
            Some(format!("Bearer  {TOKEN}")),
        ];
        let op = json!({"operation": "model_list", "hive_id": "localhost"}).to_string();
        let requests: [(&str, &str, Option<&[u8]>); 6] = [
            ("GET", "/health", None),
            ("GET", "/v1/jobs", None),
            ("POST", "/v1/jobs", Some(op.as_bytes())),
            ("GET", "/v1/models", None),
            ("DELETE", "/v1/jobs/job-0000000000000000", None),
            ("POST", "/v1/shutdown", None),
        ];
        for auth in &wrong_auth {
            for (method, path, body) in requests {
                let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
                let r = http::request(method, &hive.url(path), &headers, body).expect("request");
                assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.text());
                assert!(r.header("content-type").is_some_and(|t| t.starts_with("application/json")));
                let body = r.json();
                assert_eq!(body["error"], "unauthorized", "{body}");
                assert!(body["message"].as_str().is_some_and(|m| m.contains("RBEE_HIVE_TOKEN")), "{body}");
                assert_eq!(r.header("www-authenticate"), Some("Bearer"), "401 needs a challenge");
            }
        }
        // The refused POSTs started nothing, and the token opens every route.
        let auth = format!("Bearer {TOKEN}");
        let ok = http::request("GET", &hive.url("/v1/jobs"), &[("Authorization", &auth)], None).expect("list");
        assert_eq!((ok.status, ok.json()), (200, json!([])), "a refused POST created a job");
        let created = http::request("POST", &hive.url("/v1/jobs"), &[("Authorization", &auth)], Some(op.as_bytes()));
        assert_eq!(created.expect("post").status, 200);
        let health = http::request("GET", &hive.url("/health"), &[("Authorization", &auth)], None).expect("health");
        assert_eq!(health.status, 200);
        assert!(!String::from_utf8_lossy(&health.body).contains(TOKEN), "the token leaks in /health");
    }
}

#[test]
fn keeper_sends_rbee_hive_token() {
    let hive = TokenHive::spawn(true);
    let with = Keeper::new().args(["--hive", &hive.url, "job", "list"]).env("RBEE_HIVE_TOKEN", TOKEN).run();
    with.assert_success().assert_stdout_contains("no jobs").assert_nowhere(TOKEN);

    // A job the hive really holds: the keeper with the token sees it, plain and as JSON.
    let auth = format!("Bearer {TOKEN}");
    let op = json!({"operation": "model_list", "hive_id": "localhost"}).to_string();
    let created = http::request("POST", &hive.url("/v1/jobs"), &[("Authorization", &auth)], Some(op.as_bytes()));
    let job_id = created.expect("post").json()["job_id"].as_str().expect("job_id").to_owned();
    let with = Keeper::new().args(["--hive", &hive.url, "job", "list"]).env("RBEE_HIVE_TOKEN", TOKEN).run();
    with.assert_success().assert_stdout_contains(&job_id).assert_nowhere(TOKEN);
    let with_json =
        Keeper::new().args(["--hive", &hive.url, "--json", "job", "list"]).env("RBEE_HIVE_TOKEN", TOKEN).run();
    with_json.assert_success().assert_nowhere(TOKEN);
    let listed: serde_json::Value = serde_json::from_str(with_json.stdout.trim()).expect("--json job list is JSON");
    let ids: Vec<_> = listed.as_array().expect("a JSON array").iter().map(|j| j["job_id"].clone()).collect();
    assert_eq!(ids, [json!(job_id)], "{listed}");

    // Without the token (or with a wrong one) the hive refuses: the keeper fails (2), names the
    // variable, and shows none of the hive's data.
    let without = Keeper::new().args(["--hive", &hive.url, "job", "list"]).run();
    without.assert_code(2).assert_stderr_contains("RBEE_HIVE_TOKEN").assert_stderr_contains("401");
    assert!(!without.stdout.contains(&job_id) && !without.stderr.contains(&job_id), "{}", without.dump());
    let wrong = Keeper::new().args(["--hive", &hive.url, "job", "list"]).env("RBEE_HIVE_TOKEN", "nope").run();
    wrong.assert_code(2).assert_stderr_contains("RBEE_HIVE_TOKEN").assert_nowhere(TOKEN);
    assert!(!wrong.stdout.contains(&job_id), "{}", wrong.dump());
}
