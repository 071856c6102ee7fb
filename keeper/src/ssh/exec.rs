//! Running `ssh`: the command line from `RBEE_SSH_COMMAND`, and one child run to its end with a
//! deadline (killed and reaped when late, so nothing hangs and nothing is left a zombie).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::Ssh;

/// How long one ssh exchange may take before the keeper gives up on it.
pub(super) const SSH_DEADLINE: Duration = Duration::from_secs(15);
/// What ssh itself waits for a TCP connection (below [`SSH_DEADLINE`]).
const CONNECT_TIMEOUT_SECS: u32 = 8;

/// A finished child.
#[derive(Debug)]
pub(super) struct Ran {
    pub(super) code: Option<i32>,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Ran {
    pub(super) fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// `line` split into words as a POSIX shell would (blanks, '…', "…", backslash), without any
/// expansion: what git does with `GIT_SSH_COMMAND`.
pub(super) fn split(line: &str) -> Result<Vec<String>> {
    let (mut words, mut word, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => word.push(chars.next().unwrap_or('\\')),
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => (quote, in_word) = (Some(c), true),
            (None, '\\') => (word, in_word) = (word + &chars.next().map(String::from).unwrap_or_default(), true),
            (None, c) if c.is_whitespace() => {
                if std::mem::take(&mut in_word) {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, c) => (word, in_word) = (word + &c.to_string(), true),
        }
    }
    if quote.is_some() {
        bail!("RBEE_SSH_COMMAND `{line}` has an unclosed quote");
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        bail!("RBEE_SSH_COMMAND is empty: set it to `ssh` (or unset it)");
    }
    Ok(words)
}

/// `value` quoted for a POSIX shell.
pub(super) fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

impl Ssh {
    /// The user's ssh with the options every call needs: never prompt, give up connecting in time.
    pub(super) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        cmd.args(["-o", "BatchMode=yes", "-o", &format!("ConnectTimeout={CONNECT_TIMEOUT_SECS}")]);
        cmd
    }

    /// What the user's ssh is called, for messages.
    pub(super) fn program(&self) -> &str {
        &self.argv[0]
    }
}

/// Run `cmd` with `stdin` as its input; `None` when it outlived `limit` (then it is killed).
pub(super) fn run(cmd: &mut Command, stdin: Vec<u8>, limit: Duration) -> Result<Option<Ran>> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("running `{}`", cmd.get_program().to_string_lossy()))?;
    let mut input = child.stdin.take().expect("piped stdin");
    // A child that exits early closes its end: the write fails, which its exit code explains.
    let writer = std::thread::spawn(move || drop(input.write_all(&stdin)));
    let out = reader(child.stdout.take().expect("piped stdout"));
    let err = reader(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    let (stdout, stderr) = (collect(&out), collect(&err));
    Ok(status.map(|s| Ran { code: s.code(), stdout, stderr }))
}

fn reader(mut pipe: impl Read + Send + 'static) -> async_channel::Receiver<String> {
    let (tx, rx) = async_channel::bounded(1);
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send_blocking(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// What a pipe carried; a pipe a grandchild still holds open gives what came within a second.
fn collect(rx: &async_channel::Receiver<String>) -> String {
    let late = async {
        smol::Timer::after(Duration::from_secs(1)).await;
        String::new()
    };
    smol::block_on(futures_lite::future::or(async { rx.recv().await.unwrap_or_default() }, late))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_git() {
        assert_eq!(split("ssh").unwrap(), ["ssh"]);
        assert_eq!(split(" ssh  -F ./cfg ").unwrap(), ["ssh", "-F", "./cfg"]);
        assert_eq!(split(r#"ssh -F "/a b/c" -o 'X=y z' a\ b"#).unwrap(), ["ssh", "-F", "/a b/c", "-o", "X=y z", "a b"]);
        assert_eq!(split(r#"ssh -o "" x"#).unwrap(), ["ssh", "-o", "", "x"]);
        assert!(split("ssh 'open").is_err());
        assert!(split("  ").is_err());
    }

    #[test]
    fn quotes_for_sh() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn a_late_child_is_killed() {
        let ran = run(Command::new("sleep").arg("5"), Vec::new(), Duration::from_millis(200)).unwrap();
        assert!(ran.is_none());
        let ran = run(&mut Command::new("cat"), b"hi".to_vec(), Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!((ran.ok(), ran.stdout.as_str()), (true, "hi"));
    }
}
