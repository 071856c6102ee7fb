//! `rbee model list|ls`: what the hive's cache holds.

use anyhow::Result;
use rbee_protocol::text::{bytes, sanitize};
use rbee_protocol::{ModelList, Operation};
use serde_json::{json, Value};

use super::super::watch::{submit, Show};
use super::Ctx;
use crate::exit::Exit;

/// List cached models, their files, sizes and revisions, and unfinished downloads.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let op = Operation::ModelList(ModelList { hive_id: ctx.hive_id().to_owned() });
        submit(ctx, &op, Show::Result).await
    }
}

/// The models in rbee's results (`model_list`'s `payload.models`, `model_get`'s model).
fn models(data: &[(String, Value)]) -> Vec<&Value> {
    let mut out = Vec::new();
    for (action, payload) in data {
        match (action.as_str(), payload.get("models").and_then(Value::as_array)) {
            ("model_list", Some(models)) => out.extend(models),
            ("model_get", _) => out.push(payload),
            _ => {}
        }
    }
    out
}

/// rbee's results as rows, `MODEL  SIZE  PATH` (every text sanitized, the columns aligned by
/// what is shown); any other result as one [`data_line`].
pub(crate) fn data_lines(data: &[(String, Value)]) -> Vec<String> {
    let known = |a: &str| matches!(a, "model_list" | "model_get");
    let field = |m: &Value, key: &str| sanitize(m.get(key).and_then(Value::as_str).unwrap_or("?")).into_owned();
    let rows: Vec<[String; 3]> = models(data)
        .into_iter()
        .map(|m| {
            [field(m, "id"), m.get("size").and_then(Value::as_u64).map_or_else(|| "?".into(), bytes), field(m, "path")]
        })
        .collect();
    let mut out = Vec::new();
    if rows.is_empty() && data.iter().any(|(a, _)| a == "model_list") {
        out.push("no models in the hive's catalog".to_owned());
    }
    if !rows.is_empty() {
        let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).chain([5]).max().unwrap_or(0);
        let (w0, w1) = (width(0), width(1));
        out.push(format!("{:<w0$}  {:>w1$}  PATH", "MODEL", "SIZE"));
        out.extend(rows.iter().map(|[id, size, path]| format!("{id:<w0$}  {size:>w1$}  {path}")));
    }
    out.extend(data.iter().filter(|(a, _)| !known(a)).map(data_line));
    out
}

/// One result of rbee's hive as a line: `📎 <action>: <JSON>`.
pub(crate) fn data_line((action, payload): &(String, Value)) -> String {
    format!("📎 {}: {}", sanitize(action), rbee_protocol::text::json(&payload.to_string()))
}

/// rbee's results for `--json`: one result's payload, or every `{action, payload}` when several.
pub(crate) fn data_json(mut data: Vec<(String, Value)>) -> Option<Value> {
    match data.len() {
        0 => None,
        1 => data.pop().map(|(_, payload)| payload),
        _ => Some(Value::Array(data.into_iter().map(|(a, p)| json!({ "action": a, "payload": p })).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbee_results_become_rows() {
        let m = json!({"id":"org/m:f.gguf","name":"f","path":"/c/rbee/models/m/model.gguf","size":3 << 20});
        let data = vec![("model_list".to_owned(), json!({ "models": [m] })), ("odd".to_owned(), json!({"x": 1}))];
        assert_eq!(
            data_lines(&data),
            ["MODEL            SIZE  PATH", "org/m:f.gguf  3.0 MiB  /c/rbee/models/m/model.gguf", "📎 odd: {\"x\":1}",]
        );
        assert_eq!(data_lines(&[("model_list".into(), json!({"models": []}))]), ["no models in the hive's catalog"]);
        let evil = vec![("model_get".to_owned(), json!({"id":"a\u{1b}]0;t\u{7}","path":"/p\u{202e}","size":1}))];
        assert_eq!(data_lines(&evil)[1], "a\\u{1b}]0;t\\u{7}    1 B  /p\\u{202e}");
        assert_eq!(data_json(data.clone()).unwrap()[1]["action"], "odd");
        assert_eq!(data_json(data[..1].to_vec()).unwrap()["models"][0]["size"], 3 << 20);
    }
}
