//! Statistics over samples and Markdown tables.

use std::fmt::Write;

/// Nearest-rank percentile `p` (0–100) of `samples`.
pub(crate) fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The median (mean of the two middle samples for an even count).
pub(crate) fn median(samples: &[f64]) -> f64 {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Arithmetic mean.
pub(crate) fn mean(samples: &[f64]) -> f64 {
    samples.iter().sum::<f64>() / samples.len() as f64
}

/// A Markdown table.
pub(crate) struct Table {
    out: String,
}

impl Table {
    pub(crate) fn new(headers: &[&str]) -> Self {
        let mut out = format!("| {} |\n", headers.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(headers.len()));
        Self { out }
    }

    pub(crate) fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        let cells: Vec<&str> = cells.iter().map(AsRef::as_ref).collect();
        let _ = writeln!(self.out, "| {} |", cells.join(" | "));
    }

    pub(crate) fn done(self) -> String {
        self.out + "\n"
    }
}

/// `✅ met` or `❌ missed by …` for "lower is better" figures.
pub(crate) fn below(value: f64, target: f64, unit: &str) -> String {
    if value < target {
        "✅ met".to_owned()
    } else {
        format!("❌ missed by {:.1} {unit} ({:.0} % over)", value - target, (value / target - 1.0) * 100.0)
    }
}

/// `✅ met` or `❌ missed by …` for "higher is better" figures.
pub(crate) fn above(value: f64, target: f64, unit: &str) -> String {
    if value >= target {
        "✅ met".to_owned()
    } else {
        format!("❌ missed by {:.2} {unit}", target - value)
    }
}

/// Bytes as MiB with one decimal.
pub(crate) fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / f64::from(1 << 20))
}

/// A size like `2 GiB` / `256 MiB` / `1 KiB`.
pub(crate) fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}
