//! A stand-in for rbee's own hive (rbee-keeper/rbee at 0509312f), faithful to what its wire
//! carries, written from rbee's contract and observed streams, not from this workspace's types:
//!
//! - `POST /v1/jobs` takes any JSON: `200 {job_id, sse_url}`. A bad operation fails on the stream
//!   (`[ERROR] Failed to parse operation: unknown variant …`). `GET /v1/jobs` and
//!   `GET /v1/jobs/{id}` are `405`. `DELETE` of a running job is `200 {job_id, status:
//!   "cancelled"}`; of any other id `404` with a text body.
//! - Narration is three `data:` lines per event: `ESC[1m<module::fn padded to 40>ESC[0m
//!   ESC[2m<action padded to 20>ESC[0m`, the message (one `data:` line per line), an empty one.
//! - Results come as `event: data` with `{"action":"model_list","payload":{"models":[…]}}`.
//! - Heartbeats read `⏳ Still downloading <file> (12.5% complete)...`; success `✅ Model '<id>'
//!   downloaded and added to catalog`, then `[DONE]`; models land in rbee's catalog
//!   (`~/.cache/rbee/models/<id>/model.gguf`), and a second download of one fails with
//!   `Model '<id>' already exists`.
//!
//! [`StandIn::hostile`] is the same hive run by an attacker: its health, narration, model names,
//! error messages and (as if it had our extensions: JSON health, job table) carry terminal escapes.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Escapes an attacker would send: SGR, OSC title and clipboard, CSI, C1, bidi, zero-width.
pub(crate) const EVIL: &str =
    "\u{1b}[31mRED\u{1b}[0m\u{1b}]0;TITLE\u{7}\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J\u{9b}1m\u{202e}\u{2028}\u{200b}\u{feff}";

/// What the stand-in saw and holds.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) posts: Vec<Value>,
    pub(crate) deletes: Vec<String>,
    pub(crate) paths: Vec<String>,
    jobs: HashMap<String, Value>,
    cancelled: HashSet<String>,
    ended: HashSet<String>,
    /// Catalog: model id → path.
    pub(crate) catalog: Vec<(String, String)>,
}

/// rbee's hive, standing in.
pub(crate) struct StandIn {
    pub(crate) url: String,
    seen: Arc<Mutex<Seen>>,
    /// The stand-in's `$HOME` (its catalog lives under `.cache/rbee/models`).
    pub(crate) home: PathBuf,
    _dir: tempfile::TempDir,
}

#[derive(Clone)]
struct Ctx {
    seen: Arc<Mutex<Seen>>,
    home: PathBuf,
    hostile: bool,
}

impl Seen {
    /// The id of the (last) job that operated on `model`.
    pub(crate) fn jobs_of(&self, model: &str) -> String {
        let of = |op: &Value| op["model"].as_str() == Some(model) || op["id"].as_str() == Some(model);
        let ids = self.jobs.iter().filter(|(_, op)| of(op)).map(|(id, _)| id.clone());
        ids.max_by_key(|id| id.trim_start_matches("job-").parse::<u64>().unwrap_or(0)).expect("a job of that model")
    }
}

impl StandIn {
    pub(crate) fn start() -> Self {
        Self::serve(false)
    }

    /// The stand-in run by an attacker (see the module docs).
    pub(crate) fn hostile() -> Self {
        Self::serve(true)
    }

    fn serve(hostile: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let dir = tempfile::tempdir().expect("tempdir");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let ctx = Ctx { seen: seen.clone(), home: dir.path().to_owned(), hostile };
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let ctx = ctx.clone();
                std::thread::spawn(move || serve(conn, &ctx));
            }
        });
        Self { url, seen, home: dir.path().to_owned(), _dir: dir }
    }

    pub(crate) fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().expect("seen")
    }

    /// Where rbee's catalog puts `model`.
    pub(crate) fn catalog_path(&self, model: &str) -> String {
        catalog_path(&self.home, model)
    }
}

fn catalog_path(home: &std::path::Path, model: &str) -> String {
    let dir = model.replace(['/', ':'], "-");
    home.join(".cache/rbee/models").join(dir).join("model.gguf").display().to_string()
}

fn read_request(conn: &TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut head = String::new();
    if reader.read_line(&mut head).ok()? == 0 {
        return None;
    }
    let mut len = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let mut parts = head.split_whitespace();
    Some((parts.next()?.to_owned(), parts.next()?.to_owned(), body))
}

fn reply(out: &mut TcpStream, status: &str, ctype: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(head.as_bytes()).and_then(|()| out.write_all(body.as_bytes()));
}

fn serve(mut out: TcpStream, ctx: &Ctx) {
    let Some((method, path, body)) = read_request(&out) else { return };
    let mut seen = ctx.seen.lock().expect("seen");
    seen.paths.push(format!("{method} {path}"));
    let job = path.strip_prefix("/v1/jobs/").map(str::to_owned);
    match (method.as_str(), path.as_str(), job) {
        ("GET", "/health", _) if ctx.hostile => {
            let health = json!({ "status": format!("ok{EVIL}"), "version": format!("6.6.6{EVIL}"), "pid": 1 });
            reply(&mut out, "200 OK", "application/json", &health.to_string());
        }
        ("GET", "/health", _) => reply(&mut out, "200 OK", "text/plain", "ok"),
        ("POST", "/v1/jobs", _) => {
            let op: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let id = format!("job-{}", seen.jobs.len() + 1);
            seen.posts.push(op.clone());
            seen.jobs.insert(id.clone(), op);
            let sse_url = format!("/v1/jobs/{id}/stream");
            reply(&mut out, "200 OK", "application/json", &json!({ "job_id": id, "sse_url": sse_url }).to_string());
        }
        ("GET", "/v1/jobs", _) if ctx.hostile => {
            let table = json!([hostile_job()]).to_string();
            reply(&mut out, "200 OK", "application/json", &table);
        }
        ("DELETE", _, Some(id)) => {
            seen.deletes.push(id.clone());
            if seen.jobs.contains_key(&id) && !seen.ended.contains(&id) && seen.cancelled.insert(id.clone()) {
                let body = json!({ "job_id": id, "status": "cancelled" }).to_string();
                reply(&mut out, "200 OK", "application/json", &body);
            } else {
                reply(&mut out, "404 Not Found", "text/plain", &format!("Job {id} not found or cannot be cancelled"));
            }
        }
        ("GET", _, Some(id)) if id.ends_with("/stream") => {
            let id = id.trim_end_matches("/stream").to_owned();
            let op = seen.jobs.get(&id).cloned();
            drop(seen);
            let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
            let mut stream = Stream { out, ctx: ctx.clone(), id: id.clone() };
            let end = match op {
                Some(op) => stream.run(&op),
                None => "ERROR: Job channel not found.".to_owned(),
            };
            stream.line(&end);
            ctx.seen.lock().expect("seen").ended.insert(id);
        }
        ("GET", _, Some(_)) if ctx.hostile => {
            reply(&mut out, "200 OK", "application/json", &hostile_job().to_string());
        }
        ("GET", "/v1/jobs", _) | ("GET", _, Some(_)) => reply(&mut out, "405 Method Not Allowed", "text/plain", ""),
        _ => reply(&mut out, "404 Not Found", "text/plain", ""),
    }
}

/// A job as our hive's `GET /v1/jobs/{id}` shows it, every text field hostile.
fn hostile_job() -> Value {
    json!({
        "job_id": format!("job-1{EVIL}"), "status": "failed", "operation": format!("download op{EVIL}"),
        "events": 3, "age_secs": 1, "error": format!("the CDN said: {EVIL}"),
    })
}

/// One job's stream.
struct Stream {
    out: TcpStream,
    ctx: Ctx,
    id: String,
}

impl Stream {
    /// One SSE event of `data:` lines (a line break in `text` starts another `data:` line).
    fn line(&mut self, text: &str) -> bool {
        let frame: String = text.split('\n').map(|l| format!("data: {l}\n")).collect();
        self.out.write_all(format!("{frame}\n").as_bytes()).and_then(|()| self.out.flush()).is_ok()
    }

    /// rbee's narration: the ANSI header line, the message, an empty line.
    fn narrate(&mut self, function: &str, action: &str, message: &str) -> bool {
        let header = format!("\u{1b}[1m{function:<40}\u{1b}[0m \u{1b}[2m{action:<20}\u{1b}[0m");
        self.line(&format!("{header}\n{message}\n"))
    }

    fn data(&mut self, action: &str, payload: &Value) -> bool {
        let frame = format!("event: data\ndata: {}\n\n", json!({ "action": action, "payload": payload }));
        self.out.write_all(frame.as_bytes()).is_ok()
    }

    fn evil(&self) -> &'static str {
        if self.ctx.hostile {
            EVIL
        } else {
            ""
        }
    }

    /// Run `op`; the end marker.
    fn run(&mut self, op: &Value) -> String {
        let id = self.id.clone();
        self.narrate("job_server::execution::execute_and_stream", "execute", &format!("Executing job {id}"));
        let model = op["model"].as_str().or_else(|| op["id"].as_str()).unwrap_or_default().to_owned();
        let ops = "`model_download`, `model_list`, `model_get`, `model_delete`, `hive_check`";
        let result = match op["operation"].as_str().unwrap_or_default() {
            "model_download" => self.download(&model),
            "model_list" => self.list(),
            "model_get" => self.get(&model),
            other => Err(format!("Failed to parse operation: unknown variant `{other}`, expected one of {ops}")),
        };
        match result {
            Ok(()) => "[DONE]".to_owned(),
            Err(e) if e == "cancelled" => {
                self.narrate("job_server::execution::execute_and_stream", "cancelled", &format!("Job {id} cancelled"));
                "[CANCELLED]".to_owned()
            }
            Err(e) => {
                let failed = format!("Job {id} failed: {e}");
                self.narrate("job_server::execution::execute_and_stream", "failed", &failed);
                format!("[ERROR] {e}")
            }
        }
    }

    fn download(&mut self, model: &str) -> Result<(), String> {
        const FN: &str = "rbee_hive::operations::model::handle_model_download";
        let evil = self.evil();
        self.narrate(FN, "model_download_start", &format!("📥 Downloading model '{model}' on hive 'localhost'{evil}"));
        let exists = self.ctx.seen.lock().expect("seen").catalog.iter().any(|(m, _)| m == model);
        if exists {
            self.narrate(FN, "model_download_exists", &format!("⚠️  Model '{model}' already exists in catalog"));
            return Err(format!("Model '{model}' already exists"));
        }
        let file = model.rsplit(':').next().unwrap_or(model);
        if file.contains("fail") {
            return Err(format!("Model not found: no such file in the repo{evil}"));
        }
        if file.contains("slow") {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30) {
                if self.ctx.seen.lock().expect("seen").cancelled.contains(&self.id) {
                    return Err("cancelled".into());
                }
                let pct = started.elapsed().as_secs_f64() * 2.5;
                let beat = format!("⏳ Still downloading {file} ({pct:.1}% complete)...");
                if !self.narrate("model_provisioner::download_tracker", "download_progress", &beat) {
                    return Err("cancelled".into());
                }
                std::thread::sleep(Duration::from_millis(400));
            }
        }
        let path = catalog_path(&self.ctx.home, model);
        self.ctx.seen.lock().expect("seen").catalog.push((model.to_owned(), path));
        self.narrate(FN, "model_download_complete", &format!("✅ Model '{model}' downloaded and added to catalog"));
        Ok(())
    }

    fn models(&self) -> Vec<Value> {
        let evil = self.evil();
        let catalog = self.ctx.seen.lock().expect("seen").catalog.clone();
        let entry = |(id, path): (String, String)| {
            let name = id.rsplit(':').next().unwrap_or(&id).to_owned();
            json!({ "id": format!("{id}{evil}"), "name": name, "path": format!("{path}{evil}"), "size": 100_663_296, "loaded": false })
        };
        catalog.into_iter().map(entry).collect()
    }

    fn list(&mut self) -> Result<(), String> {
        const FN: &str = "rbee_hive::operations::model::handle_model_list";
        let models = self.models();
        self.narrate(FN, "model_list_start", "📋 Listing models on hive 'localhost'");
        self.narrate(FN, "model_list_result", &format!("Found {} model(s)", models.len()));
        if models.is_empty() {
            let hint = "No models found. Download a model with: ./rbee model download <model-id>";
            self.narrate(FN, "model_list_empty", hint);
        } else {
            let text = |m: &Value, key: &str| m[key].as_str().unwrap_or_default().to_owned();
            let rows: Vec<String> = models.iter().map(|m| format!("{} │ {}", text(m, "id"), text(m, "path"))).collect();
            self.narrate(FN, "model_list_table", &format!("id │ path\n{}", rows.join("\n")));
        }
        self.data("model_list", &json!({ "models": models }));
        self.narrate(FN, "model_list_complete", "✅ Model list operation complete");
        Ok(())
    }

    fn get(&mut self, model: &str) -> Result<(), String> {
        const FN: &str = "rbee_hive::operations::model::handle_model_get";
        self.narrate(FN, "model_get_start", &format!("🔍 Getting model '{model}' on hive 'localhost'"));
        let Some(m) = self.models().into_iter().find(|m| m["id"].as_str().is_some_and(|id| id.starts_with(model)))
        else {
            let e = format!("Model not found: {model}");
            self.narrate(FN, "model_get_error", &format!("❌ Model '{model}' not found: {e}"));
            return Err(e);
        };
        let text = |key: &str| m[key].as_str().unwrap_or_default().to_owned();
        let found = format!("✅ Model: {} | Name: {} | Path: {}", text("id"), text("name"), text("path"));
        self.narrate(FN, "model_get_found", &found);
        let details = json!({ "id": m["id"], "name": m["name"], "path": m["path"], "size": m["size"],
            "status": "Available", "added_at": "2026-12-04T07:00:00Z" });
        self.narrate(FN, "model_get_details", &serde_json::to_string_pretty(&details).expect("json"));
        Ok(())
    }
}
