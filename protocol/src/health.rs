//! The JSON reply to `GET /health` (with `Accept: application/json`): the one shape the hive
//! writes and the keeper reads (`rbee hive status` prints it).

use serde::{Deserialize, Serialize};

/// `GET /health` as JSON. rbee's own hive answers plain `ok` instead; a keeper reads that as
/// `Health { status: "ok", ..Health::default() }` (no version, pid or counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` from a hive that answers.
    pub status: String,
    /// The hive's version (`rbee-hive --version` prints `rbee-hive <version>`).
    #[serde(default)]
    pub version: String,
    /// The hive's process id.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Jobs not yet ended.
    #[serde(default)]
    pub running_jobs: u64,
    /// Live tasks (jobs and heartbeats; a cancelled job's are gone).
    #[serde(default)]
    pub live_tasks: u64,
    /// Jobs in the table (running and retained).
    #[serde(default)]
    pub jobs: u64,
    /// The HF cache the hive writes to (this hive only; rbee's says nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<String>,
    /// The hub it downloads from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Whether it has an `HF_TOKEN` (never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_set: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_details_default() {
        let h: Health = serde_json::from_str(r#"{"status":"ok"}"#).unwrap();
        assert_eq!(h, Health { status: "ok".into(), ..Health::default() });
        let json = serde_json::to_string(&h).unwrap();
        assert!(!json.contains("cache_dir"), "{json}");
    }
}
