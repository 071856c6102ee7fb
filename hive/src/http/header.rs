//! The one way the hive puts text into a response header. http-types panics on a header value
//! that is not ASCII (`Headers::insert` unwraps), and a control byte in a value would split or
//! forge a header line. Any text that came from a request, an upstream or the disk (a file name
//! in `X-Error-Message`, a commit or etag read from the cache) goes through [`set`]: every byte
//! that is not visible ASCII or a space is percent-encoded, as in a URL.

use std::borrow::Cow;

use tide::Response;

/// `text` with every byte outside `0x20..=0x7E` written as `%XX`.
#[must_use]
pub(crate) fn value(text: &str) -> Cow<'_, str> {
    if text.bytes().all(visible) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for b in text.bytes() {
        if visible(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

fn visible(b: u8) -> bool {
    (0x20..=0x7E).contains(&b)
}

/// Sets header `name` to `text`, percent-encoded where it is not visible ASCII.
pub(crate) fn set(res: &mut Response, name: &'static str, text: &str) {
    res.insert_header(name, value(text).as_ref());
}

#[cfg(test)]
mod tests {
    use super::value;

    #[test]
    fn encodes_what_a_header_cannot_carry() {
        for (text, header) in [
            ("plain text: ok", "plain text: ok"),
            ("é.bin", "%C3%A9.bin"),
            ("a\r\nX-Evil: 1", "a%0D%0AX-Evil: 1"),
            ("\u{1b}[31m\t\u{7f}", "%1B[31m%09%7F"),
        ] {
            assert_eq!(value(text), header);
        }
    }

    #[test]
    fn every_encoded_value_is_a_valid_header() {
        let mut res = tide::Response::new(200);
        for text in ["é", "\0", "\u{202e}x", "\u{ff}\u{1b}]0;t\u{7}"] {
            super::set(&mut res, "X-Error-Message", text);
            assert!(res
                .header("X-Error-Message")
                .is_some_and(|v| v.as_str().bytes().all(|b| (0x20..0x7f).contains(&b))));
        }
    }
}
