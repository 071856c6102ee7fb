//! Every keeper request to a hive has a deadline: against a listener that accepts connections and
//! never answers, every command fails within 15 s, saying that nothing answered.

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::Keeper;

/// A listener that accepts every connection, reads nothing and never answers.
struct Silent {
    url: String,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Silent {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&held);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                keep.lock().expect("held").push(conn);
            }
        });
        Self { url, _held: held }
    }
}

const COMMANDS: &[&[&str]] = &[
    &["model", "download", "rbee-test/tiny-model", "model.gguf"],
    &["model", "list"],
    &["model", "get", "rbee-test/tiny-model"],
    &["model", "delete", "rbee-test/tiny-model"],
    &["model", "verify"],
    &["job", "list"],
    &["job", "status", "job-1"],
    &["job", "cancel", "job-1"],
    &["job", "attach", "job-1"],
    &["hive", "status"],
];

#[test]
fn every_command_gives_up_on_a_silent_hive_within_15s() {
    let silent = Silent::start();
    let runs: Vec<_> = COMMANDS
        .iter()
        .map(|args| {
            let started = Instant::now();
            (args, started, Keeper::new().args(["--hive", &silent.url]).args(args.iter().copied()).spawn())
        })
        .collect();
    for (args, started, run) in runs {
        let out = run.wait_timeout(Duration::from_secs(30));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(15), "`rbee {}` took {took:?}\n{}", args.join(" "), out.dump());
        out.assert_code(2).assert_stderr_contains("accepts connections but sent no answer within 5s");
    }
}
