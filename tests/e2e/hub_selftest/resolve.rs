//! The hub's own routes: resolve (LFS redirect, non-LFS body), errors, gating, revisions, API.

use super::{cdn_location, hub, sha256, REPO, SIZE};
use crate::harness::http::{self, request};
use crate::harness::RepoSpec;

#[test]
fn lfs_resolve_redirects_to_the_cdn_with_hf_headers() {
    let hub = hub();
    let sha = hub.sha256(REPO, "model.gguf");
    for method in ["HEAD", "GET"] {
        let r =
            request(method, &format!("{}/{REPO}/resolve/main/model.gguf", hub.endpoint()), &[], None).expect("resolve");
        assert_eq!(r.status, 302, "{method}: {r:?}");
        assert_eq!(r.header("location"), Some(format!("{}/blobs/{REPO}/{sha}", hub.cdn_url()).as_str()));
        assert_eq!(r.header("x-repo-commit"), Some(hub.commit(REPO).as_str()));
        assert_eq!(r.header("x-linked-etag"), Some(format!("\"{sha}\"").as_str()));
        assert_eq!(r.header("x-linked-size"), Some(SIZE.to_string().as_str()));
        assert_eq!(r.header("etag"), Some(format!("\"{sha}\"").as_str()));
        assert_eq!(r.header("content-length"), Some("0"));
    }
    let body = http::get(&cdn_location(&hub, "model.gguf"));
    assert_eq!((body.status, body.body.len() as u64), (200, SIZE));
    assert_eq!(sha256(&body.body), sha);
}

#[test]
fn non_lfs_files_come_from_the_hub_with_a_git_etag_and_ranges() {
    let hub = hub();
    let url = format!("{}/{REPO}/resolve/main/config.json", hub.endpoint());
    let want = hub.file_bytes(REPO, "config.json");
    let info = hub.file_info(REPO, "main", "config.json").expect("file");
    let head = http::head(&url);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(want.len().to_string().as_str()));
    assert_eq!(head.header("etag"), Some(format!("\"{}\"", info.etag).as_str()));
    assert_eq!(info.etag.len(), 40);
    assert_eq!(head.header("x-repo-commit"), Some(hub.commit(REPO).as_str()));
    let get = http::get(&url);
    assert_eq!(get.body, want);
    serde_json::from_slice::<serde_json::Value>(&get.body).expect("config.json is JSON");
    let part = request("GET", &url, &[("Range", "bytes=10-")], None).expect("range");
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some(format!("bytes 10-{}/{}", want.len() - 1, want.len()).as_str()));
    assert_eq!(part.body, want[10..]);
    assert_eq!(hub.stats().hub_bytes, (want.len() + want.len() - 10) as u64);
}

#[test]
fn unknown_repo_revision_and_file_answer_404_with_x_error_code() {
    let hub = hub();
    let cases = [
        ("nobody/nothing/resolve/main/model.gguf", "RepoNotFound"),
        (&format!("{REPO}/resolve/no-such-branch/model.gguf"), "RevisionNotFound"),
        (&format!("{REPO}/resolve/main/missing.bin"), "EntryNotFound"),
        ("api/models/nobody/nothing", "RepoNotFound"),
        (&format!("api/models/{REPO}/revision/nope"), "RevisionNotFound"),
    ];
    for (path, code) in cases {
        let r = http::head(&format!("{}/{path}", hub.endpoint()));
        assert_eq!((r.status, r.header("x-error-code")), (404, Some(code)), "{path}");
    }
}

#[test]
fn gated_repos_want_the_token() {
    let hub = crate::harness::FakeHub::start(crate::harness::HubConfig {
        token: Some("hf_good".into()),
        ..Default::default()
    });
    hub.add_repo(RepoSpec::demo("org/gated", 1024).gated());
    let url = format!("{}/org/gated/resolve/main/model.gguf", hub.endpoint());
    let none = http::head(&url);
    assert_eq!((none.status, none.header("x-error-code")), (401, Some("GatedRepo")));
    let wrong = request("HEAD", &url, &[("Authorization", "Bearer hf_bad")], None).expect("head");
    assert_eq!(wrong.status, 403);
    let good = request("HEAD", &url, &[("Authorization", "Bearer hf_good")], None).expect("head");
    assert_eq!(good.status, 302);
    let log = hub.stats().requests;
    assert_eq!(log.len(), 3);
    assert_eq!(log[2].header("authorization"), Some("Bearer hf_good"));
    assert_eq!(log[0].header("authorization"), None);
    assert_eq!((log[0].method.as_str(), log[0].status), ("HEAD", 401));
}

#[test]
fn tags_commit_ids_and_later_commits_resolve() {
    let hub = hub();
    let first = hub.commit(REPO);
    hub.add_repo(RepoSpec::new(REPO).commit(&"b".repeat(40)).lfs("model.gguf", 2048).tag("v2"));
    let resolve = |rev: &str| http::head(&format!("{}/{REPO}/resolve/{rev}/model.gguf", hub.endpoint()));
    assert_eq!(resolve("main").header("x-repo-commit"), Some("b".repeat(40).as_str()));
    assert_eq!(resolve("v2").header("x-linked-size"), Some("2048"));
    let old = resolve(&first);
    assert_eq!(
        (old.header("x-repo-commit"), old.header("x-linked-size")),
        (Some(first.as_str()), Some(SIZE.to_string().as_str()))
    );
    assert_ne!(hub.file_info(REPO, &first, "model.gguf").expect("old").sha256, hub.sha256(REPO, "model.gguf"));
}

#[test]
fn api_models_lists_sha_and_siblings() {
    let hub = hub();
    for path in [format!("api/models/{REPO}"), format!("api/models/{REPO}/revision/main")] {
        let v = http::get(&format!("{}/{path}", hub.endpoint())).json();
        assert_eq!(v["id"], REPO);
        assert_eq!(v["sha"], hub.commit(REPO));
        let names: Vec<_> =
            v["siblings"].as_array().expect("siblings").iter().map(|s| s["rfilename"].clone()).collect();
        assert_eq!(names, ["model.gguf", "config.json"]);
    }
}

#[test]
fn resolve_faults_answer_5xx_then_recover() {
    let hub = hub();
    hub.set_resolve_fault(503, 2);
    let url = format!("{}/{REPO}/resolve/main/model.gguf", hub.endpoint());
    let statuses: Vec<_> = (0..3).map(|_| http::head(&url).status).collect();
    assert_eq!(statuses, [503, 503, 302]);
}

#[test]
fn control_routes_change_the_config_and_report_stats() {
    let hub = hub();
    let patch = r#"{"rate": 12345, "faults": [{"file": "model.gguf", "fault": {"kind": "status", "n": 500}}]}"#;
    let r = request("POST", &format!("{}/_config", hub.endpoint()), &[], Some(patch.as_bytes())).expect("config");
    assert_eq!((r.status, r.json()["rate"].as_u64()), (200, Some(12345)));
    assert_eq!(hub.rate(), 12345);
    assert_eq!(http::get(&cdn_location(&hub, "model.gguf")).status, 500);
    let stats = http::get(&format!("{}/_stats", hub.endpoint())).json();
    assert_eq!(stats["connections"][0]["status"], 500);
    assert_eq!(stats["requests"].as_array().map(Vec::len), Some(1), "control routes are not logged");
    let bad = request("POST", &format!("{}/_config", hub.endpoint()), &[], Some(b"{\"nope\":1}")).expect("config");
    assert_eq!(bad.status, 400);
}
