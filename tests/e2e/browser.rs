//! A real browser attacks the hive: headless Chromium (Debian's `chromium`, installed by
//! `.ci/run`) opens pages from other loopback origins whose scripts do what a hostile web page
//! can — `fetch` with `mode: "no-cors"` and a `text/plain` body, form POSTs, and a DNS-rebinding
//! page that is same-origin with the hive's port. Every request goes both to the hive and to an
//! unprotected echo server: the echo must see them all (so the browser really sent them), the
//! hive must have run nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::fixtures::{cached_model, MODEL, REPO};
use crate::harness::fixtures::{op_download, op_remove};
use crate::harness::{cdp, TIMEOUT};

/// Requests an [`Echo`] received: `METHOD path | headers | body`.
type Seen = Arc<Mutex<Vec<String>>>;

/// Reads one request head (and its `Content-Length` body); `None` when the client went away.
fn read_request(conn: &TcpStream) -> Option<(String, Vec<u8>, Vec<u8>)> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let len = text
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let path = text.split(' ').nth(1).unwrap_or("").to_owned();
    Some((path, head, body))
}

/// An unprotected HTTP server that records every request and answers `200 ok`.
fn echo(listener: TcpListener, seen: Seen) {
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                if let Some((_, head, body)) = read_request(&conn) {
                    let head = String::from_utf8_lossy(&head).replace("\r\n", " | ");
                    seen.lock().unwrap().push(format!("{head}{}", String::from_utf8_lossy(&body)));
                    let _ = (&conn).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                }
            });
        }
    });
}

/// Serves `page` at `/` on `listener`; any other request is forwarded byte for byte to
/// `forward_to` (what a DNS-rebinding attacker achieves once the name points at 127.0.0.1).
fn page_server(listener: TcpListener, page: String, forward_to: Option<String>) {
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (page, forward_to) = (page.clone(), forward_to.clone());
            std::thread::spawn(move || {
                let Some((path, head, body)) = read_request(&conn) else { return };
                match forward_to {
                    Some(to) if path != "/" => {
                        let Ok(mut up) = TcpStream::connect(&to) else { return };
                        let _ = up.write_all(&head).and_then(|()| up.write_all(&body));
                        let mut back = Vec::new();
                        let _ = up.read_to_end(&mut back);
                        let _ = (&conn).write_all(&back);
                    }
                    _ => {
                        let res = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                            page.len()
                        );
                        let _ = (&conn).write_all(res.as_bytes());
                    }
                }
            });
        }
    });
}

/// Chromium on `url`; the DOM after the page's scripts ran.
fn chromium(url: &str, profile: &Path) -> String {
    let mut child = Command::new(cdp::CHROMIUM)
        .args(cdp::FLAGS)
        .args(["--host-resolver-rules=MAP rebind.test 127.0.0.2", "--virtual-time-budget=8000", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        let _ = stdout.read_to_string(&mut dom);
        dom
    });
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

/// The attacking script: every request at each of `targets` (absolute origins).
fn cross_site_page(targets: &[String]) -> String {
    let (rm, dl) = (op_remove(REPO, None).to_string(), op_download(REPO, MODEL).to_string());
    let mut forms = String::new();
    for (i, t) in targets.iter().enumerate() {
        // A text/plain form: `name=value` becomes `{"operation":"model_delete",…,"x":"="}`.
        let name = format!("{},\"x\":\"", &rm[..rm.len() - 1]).replace('"', "&quot;");
        forms.push_str(&format!(
            "<iframe name=sink{i}></iframe><form id=f{i} method=POST action='{t}/v1/jobs' enctype='text/plain' target=sink{i}><input name=\"{name}\" value='\"}}'></form>\
             <iframe name=sinku{i}></iframe><form id=u{i} method=POST action='{t}/v1/shutdown' target=sinku{i}><input name=a value=b></form>"
        ));
    }
    format!(
        "<!doctype html><html><body>{forms}<pre id=out>started</pre><script>
const targets = {targets:?};
const rebound = {rebound:?};
const log = (m) => {{ document.getElementById('out').textContent += '\\n' + m; }};
async function attack() {{
  for (const t of targets) {{
    for (const [path, body] of [['/v1/jobs', {rm:?}], ['/v1/jobs', {dl:?}], ['/v1/shutdown', '{{}}']]) {{
      try {{ await fetch(t + path, {{method: 'POST', mode: 'no-cors', headers: {{'Content-Type': 'text/plain'}}, body}}); log('sent ' + t + path); }}
      catch (e) {{ log('error ' + t + path + ' ' + e); }}
    }}
  }}
  for (const t of rebound) {{
    try {{ await fetch(t + '/v1/models', {{mode: 'no-cors'}}); log('sent ' + t); }} catch (e) {{ log('error ' + t + ' ' + e); }}
  }}
  document.querySelectorAll('form').forEach((f) => f.submit());
  log('done');
}}
attack();
</script></body></html>",
        rebound = targets.iter().map(|t| t.replace("127.0.0.1", "rebind.test")).collect::<Vec<_>>(),
    )
}

/// The page a rebinding attacker serves from `rebind.test:<port of the victim>`: same-origin with
/// the victim, so JSON POSTs and reading answers are allowed by the browser.
fn rebound_page() -> String {
    let rm = op_remove(REPO, None).to_string();
    format!(
        "<!doctype html><html><body><pre id=out>started</pre><script>
const log = (m) => {{ document.getElementById('out').textContent += '\\n' + m; }};
(async () => {{
  try {{
    const r = await fetch('/v1/jobs', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body: {rm:?}}});
    log('jobs ' + r.status);
    const m = await fetch('/v1/models');
    log('models ' + m.status + ' ' + (await m.text()).slice(0, 200));
  }} catch (e) {{ log('error ' + e); }}
  log('done');
}})();
</script></body></html>"
    )
}

#[test]
fn a_hostile_web_page_in_headless_chromium_cannot_drive_the_hive() {
    if rbee_tests::harness::peer::require("chromium", &[cdp::CHROMIUM], "the browser attack test").is_none() {
        return;
    }
    let (_hub, hive) = cached_model(1 << 20);
    let blob_count = || std::fs::read_dir(hive.repo_dir(REPO).join("blobs")).map(Iterator::count).unwrap_or(0);
    let blobs_before = blob_count();
    let hive_origin = hive.url().trim_end_matches('/').to_owned();
    let hive_port = hive_origin.rsplit(':').next().unwrap().to_owned();

    let seen: Seen = Arc::default();
    let echo_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo_listener.local_addr().unwrap().port();
    echo(echo_listener, seen.clone());
    let echo_origin = format!("http://127.0.0.1:{echo_port}");

    // 1. Cross-site: a page on 127.0.0.2 attacks the hive and the echo alike.
    let page = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2 (all of 127/8 is loopback)");
    let page_url = format!("http://127.0.0.2:{}/", page.local_addr().unwrap().port());
    page_server(page, cross_site_page(&[hive_origin.clone(), echo_origin.clone()]), None);
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(&page_url, profile.path());
    assert!(dom.contains("done"), "the page's script did not finish:\n{dom}");

    // 2. Rebinding: pages on rebind.test (→ 127.0.0.2) at the hive's and the echo's ports, whose
    //    later requests land on the hive / the echo.
    let mut rebound_doms = Vec::new();
    for (port, to) in
        [(&hive_port, format!("127.0.0.1:{hive_port}")), (&echo_port.to_string(), format!("127.0.0.1:{echo_port}"))]
    {
        let listener = TcpListener::bind(format!("127.0.0.2:{port}")).expect("bind 127.0.0.2 at the victim's port");
        page_server(listener, rebound_page(), Some(to));
        let profile = tempfile::tempdir().unwrap();
        rebound_doms.push(chromium(&format!("http://rebind.test:{port}/"), profile.path()));
    }

    // The echo got every request: the browser did send them.
    std::thread::sleep(Duration::from_millis(500));
    let seen = seen.lock().unwrap().clone();
    let count = |needle: &str| seen.iter().filter(|s| s.contains(needle)).count();
    let report =
        format!("echo saw:\n{}\n\ncross-site DOM:\n{dom}\n\nrebound DOMs:\n{rebound_doms:#?}", seen.join("\n"));
    assert!(count("POST /v1/jobs") >= 4, "no-cors fetches + text/plain form + rebound JSON POST\n{report}");
    assert!(count("POST /v1/shutdown") >= 2, "no-cors fetch + form\n{report}");
    assert!(count("text/plain") >= 3, "{report}");
    assert!(count("Host: rebind.test") >= 2, "rebinding requests\n{report}");
    assert!(rebound_doms[1].contains("jobs 200"), "the echo answered the rebound page\n{report}");

    // The hive ran nothing: no job but the test's own download, the cache intact, still alive.
    assert!(rebound_doms[0].contains("jobs 403"), "the hive refused the rebound POST\n{report}");
    assert!(rebound_doms[0].contains("models 403"), "the hive refused the rebound read\n{report}");
    assert!(!rebound_doms[0].contains(MODEL), "the rebound page read the listing\n{report}");
    let (status, jobs) = hive.get("/v1/jobs");
    assert_eq!(status, 200, "the hive is gone\n{}", hive.log());
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "a page started a job: {jobs}");
    assert_eq!(blob_count(), blobs_before, "the cache changed");
    assert!(hive.repo_dir(REPO).join("snapshots").exists());
    let _ = TIMEOUT;
    eprintln!("browser: the echo saw {} requests from the hostile pages; the hive ran none of them", seen.len());
}
