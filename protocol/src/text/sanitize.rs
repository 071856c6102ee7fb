//! The one sanitizer for every text that came from a hive, a hub or a user before it reaches a
//! terminal or a JSON consumer.
//!
//! One rule: SGR colour sequences (`ESC [ … m`) are stripped, wherever they come from; every other
//! escape sequence (CSI, OSC such as `ESC ] 0;title BEL` or `ESC ] 52;c;… BEL`), C0/C1 control,
//! bidi control (U+061C, U+200E/F, U+202A–E, U+2066–9), line/paragraph separator (U+2028/9) and
//! zero-width character (U+200B–D, U+FEFF) is shown as `\u{…}` in text ([`sanitize`]) and as a
//! `\uXXXX` escape inside JSON strings ([`json`]). An escape sequence other than SGR thus loses its
//! `ESC` (and `BEL`) and prints as harmless visible text.

use std::borrow::Cow;

/// Whether `c` may not reach a terminal raw: a control character (C0, DEL, C1), a bidi control,
/// U+2028/U+2029, or a zero-width character.
#[must_use]
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// Length in bytes of the SGR sequence (`ESC [` digits, `;` or `:`, then `m`) at the start of `s`.
fn sgr_len(s: &str) -> Option<usize> {
    let params = s.strip_prefix("\u{1b}[")?;
    let end = params.find(|c: char| !(c.is_ascii_digit() || c == ';' || c == ':'))?;
    (params.as_bytes()[end] == b'm').then_some(2 + end + 1)
}

/// `s` safe to print on one line: SGR colour sequences removed, every [`is_unsafe`] character
/// (newlines too) written as `\u{…}`.
///
/// ```
/// use rbee_protocol::text::sanitize;
/// assert_eq!(sanitize("\u{1b}[1mbold\u{1b}[0m"), "bold");
/// assert_eq!(sanitize("ok\u{1b}]0;TITLE\u{7}"), "ok\\u{1b}]0;TITLE\\u{7}");
/// assert_eq!(sanitize("a\u{202e}b\n"), "a\\u{202e}b\\u{a}");
/// assert_eq!(sanitize("plain ✅ ünïcode"), "plain ✅ ünïcode");
/// ```
#[must_use]
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if let Some(n) = sgr_len(rest) {
            rest = &rest[n..];
            continue;
        }
        if is_unsafe(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// Text with SGR colour sequences removed and nothing else changed: for splitting a multi-line
/// message into lines before each is [`sanitize`]d.
#[must_use]
pub fn strip_sgr(s: &str) -> Cow<'_, str> {
    if !s.contains('\u{1b}') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        match sgr_len(rest) {
            Some(n) => rest = &rest[n..],
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    Cow::Owned(out)
}

/// JSON text with every [`is_unsafe`] character that JSON allows raw (DEL, C1, bidi, U+2028/9,
/// zero-width) written as a `\uXXXX` escape. Such characters can only stand inside strings (JSON's
/// own syntax is ASCII), so the result is the same JSON value.
///
/// ```
/// let raw = serde_json::to_string("a\u{202e}b\u{2028}\u{9b}").unwrap();
/// assert_eq!(rbee_protocol::text::json(&raw), r#""a\u202eb\u2028\u009b""#);
/// ```
#[must_use]
pub fn json(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) {
            // Every unsafe character is in the BMP: one `\uXXXX` each.
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `value` as one line of JSON, every string [`json`]-escaped.
///
/// # Errors
/// When `value` does not serialize.
pub fn to_json(value: &impl serde::Serialize) -> serde_json::Result<String> {
    serde_json::to_string(value).map(|s| json(&s).into_owned())
}

/// rbee's end markers, as texts that may not appear inside a stream line.
const MARKERS: [&str; 3] = [crate::markers::DONE, crate::markers::CANCELLED, crate::markers::ERROR_PREFIX];

/// `line` with every end-marker text in it (`[DONE]`, `[CANCELLED]`, `[ERROR]`) written with its
/// `[` as `\u{5b}`: rbee's clients end a stream on a line that *contains* a marker, so no line but
/// the real end may hold one (a file named `x[DONE].gguf` must not end the stream).
///
/// ```
/// assert_eq!(rbee_protocol::text::defuse_markers("x[DONE].gguf"), "x\\u{5b}DONE].gguf");
/// ```
#[must_use]
pub fn defuse_markers(line: &str) -> Cow<'_, str> {
    if !MARKERS.iter().any(|m| line.contains(m)) {
        return Cow::Borrowed(line);
    }
    let mut out = line.to_owned();
    for marker in MARKERS {
        out = out.replace(marker, &format!("\\u{{5b}}{}", &marker[1..]));
    }
    Cow::Owned(out)
}

/// Whether `line` holds an end-marker text anywhere (what rbee's `contains` check sees).
#[must_use]
pub fn holds_marker(line: &str) -> bool {
    MARKERS.iter().any(|m| line.contains(m))
}

/// A narration as rbee's hive formats it: a bold `module::function` and a dim, padded action on
/// a first line (`ESC[1m…ESC[0m ESC[2m…ESC[0m`), the message on the following lines. `header` is
/// that first line without colour, its padding collapsed; `lines` the message's non-empty lines,
/// each [`sanitize`]d. A message without such a header is all `lines`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narration {
    /// `job_server::execution::execute_and_stream execute`, when the hive sent a header.
    pub header: Option<String>,
    /// The message, one safe line each.
    pub lines: Vec<String>,
}

impl Narration {
    /// Split a narration's text.
    ///
    /// ```
    /// use rbee_protocol::text::Narration;
    /// let n = Narration::parse("\u{1b}[1mm::f   \u{1b}[0m \u{1b}[2mexecute  \u{1b}[0m\nExecuting job 1\n");
    /// assert_eq!(n.header.as_deref(), Some("m::f execute"));
    /// assert_eq!(n.lines, ["Executing job 1"]);
    /// ```
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut raw = text.split('\n');
        let header = match text.strip_prefix("\u{1b}[1m") {
            Some(_) => raw.next().map(|h| strip_sgr(h).split_whitespace().collect::<Vec<_>>().join(" ")),
            None => None,
        };
        let header = header.map(|h| sanitize(&h).into_owned()).filter(|h| !h.is_empty());
        let lines =
            raw.map(|l| sanitize(strip_sgr(l).trim_end()).into_owned()).filter(|l| !l.trim().is_empty()).collect();
        Self { header, lines }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgr_is_stripped_everything_else_escaped() {
        assert_eq!(sanitize("\u{1b}[31mEVIL\u{1b}[0m \u{1b}]0;title\u{7}"), "EVIL \\u{1b}]0;title\\u{7}");
        assert_eq!(sanitize("op\u{1b}]52;c;aGk=\u{7}"), "op\\u{1b}]52;c;aGk=\\u{7}");
        assert_eq!(sanitize("\u{1b}[2J\u{1b}[1;31m!"), "\\u{1b}[2J!", "CSI other than SGR is escaped");
        assert_eq!(sanitize("\u{9b}31m"), "\\u{9b}31m", "C1 CSI is escaped, not taken as SGR");
        assert_eq!(sanitize("\u{1b}[38;5;196mred"), "red");
        assert_eq!(sanitize("\u{1b}"), "\\u{1b}");
        assert_eq!(sanitize("\u{1b}["), "\\u{1b}[");
        for c in ['\u{200b}', '\u{200c}', '\u{200d}', '\u{feff}', '\u{2028}', '\u{2029}', '\u{202a}', '\u{2069}'] {
            assert_eq!(sanitize(&format!("a{c}b")), format!("a{}b", c.escape_unicode()));
        }
        for c in ['\u{200e}', '\u{200f}', '\u{61c}', '\u{7f}', '\u{85}', '\u{0}', '\r', '\t'] {
            assert!(!sanitize(&c.to_string()).contains(c), "{c:?}");
        }
        assert_eq!(strip_sgr("\u{1b}[1ma\u{1b}[0m\nb\u{1b}]0;x"), "a\nb\u{1b}]0;x");
    }

    #[test]
    fn json_escapes_what_serde_leaves_raw() {
        let raw = serde_json::to_string("\u{1b}[31m\u{7f}\u{85}\u{200b}\u{feff}\u{2029}\u{2066}é").unwrap();
        let safe = json(&raw);
        assert!(!safe.chars().any(is_unsafe), "{safe}");
        assert_eq!(serde_json::from_str::<String>(&safe).unwrap(), serde_json::from_str::<String>(&raw).unwrap());
        assert_eq!(to_json(&["\u{202e}"]).unwrap(), r#"["\u202e"]"#);
    }

    #[test]
    fn markers_never_stay_inside_a_line() {
        for line in ["x[DONE].gguf", "a [CANCELLED] b", "[ERROR] x", "[DONE]", "[[DONE]]"] {
            let safe = defuse_markers(line);
            assert!(!holds_marker(&safe), "{line} → {safe}");
        }
        assert_eq!(defuse_markers("plain"), "plain");
    }

    #[test]
    fn rbee_narration_headers_and_lines() {
        let text = "\u{1b}[1mjob_server::execution::execute_and_stream\u{1b}[0m \u{1b}[2mexecute             \u{1b}[0m\nExecuting job job-1\n";
        let n = Narration::parse(text);
        assert_eq!(n.header.as_deref(), Some("job_server::execution::execute_and_stream execute"));
        assert_eq!(n.lines, ["Executing job job-1"]);
        let table = Narration::parse("\u{1b}[1mf\u{1b}[0m \u{1b}[2ma\u{1b}[0m\nrow 1\nrow\u{1b}]0;t\u{7} 2\n\n");
        assert_eq!(table.lines, ["row 1", "row\\u{1b}]0;t\\u{7} 2"]);
        let plain = Narration::parse("📥 hi\u{202e}");
        assert_eq!((plain.header, plain.lines), (None, vec!["📥 hi\\u{202e}".to_owned()]));
        assert!(Narration::parse("  \n").lines.is_empty());
    }
}
