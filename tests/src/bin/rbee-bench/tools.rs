//! What the `cdn` and `cdn-paced` sections run and measure: the tools, the CDNs, one run's sample.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    Rbee,
    /// rbee with `--max-parts 1`: one stream.
    RbeeOneStream,
    Aria2,
    HfTransfer,
    HfHub,
    Curl,
    /// One core: rbee pinned with `taskset -c 0`.
    RbeeOneCore,
    /// One core: `curl | tee file | openssl dgst -sha256` pinned with `taskset -c 0`.
    CurlOpensslOneCore,
}

impl Tool {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Rbee => "rbee (keeper → hive, verified)",
            Self::RbeeOneStream => "rbee --max-parts 1 (one stream, verified)",
            Self::Aria2 => "aria2c -x16 -s16",
            Self::HfTransfer => "hf_transfer.download (16 connections)",
            Self::HfHub => "huggingface_hub hf_hub_download",
            Self::Curl => "curl -L -o",
            Self::RbeeOneCore => "taskset -c 0: rbee (verified)",
            Self::CurlOpensslOneCore => "taskset -c 0: curl \\| tee file \\| openssl dgst -sha256",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    pub(crate) wall: f64,
    pub(crate) cpu: f64,
    pub(crate) rss_kib: u64,
    /// rbee: most CDN connections its events said it used.
    pub(crate) connections: Option<usize>,
}

/// Which CDN a run downloads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cdn {
    /// nginx with `limit_rate`.
    Capped,
    /// nginx unthrottled.
    Free,
    /// The fake hub's own CDN, pacing each connection from its first byte.
    Paced,
    /// nginx pacing each connection from its first byte (`sendfile_max_chunk`).
    PacedNginx,
}

impl Cdn {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Capped => "capped",
            Self::Free => "unthrottled",
            Self::Paced => "paced (fake hub CDN)",
            Self::PacedNginx => "paced (nginx)",
        }
    }
}
