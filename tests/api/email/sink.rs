//! A real SMTP server for the tests: Debian's python3-aiosmtpd running
//! tests/support/smtp_sink.py on a free loopback port, writing each message
//! it accepts to a directory, which the tests read with `mailparse`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mailparse::MailHeaderMap;

pub struct Sink {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

fn python() -> &'static str {
    // Debian's interpreter, which has python3-aiosmtpd (a pyenv or venv
    // python3 earlier on PATH may not).
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py")
}

impl Sink {
    /// A sink on a free port.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (child, port) = Self::spawn(0, &dir);
        Self {
            child: Some(child),
            port,
            dir,
        }
    }

    /// A port that nothing listens on (yet): the sink, started and stopped.
    pub fn stopped() -> Self {
        let mut s = Self::start();
        s.stop();
        s
    }

    fn spawn(port: u16, dir: &tempfile::TempDir) -> (Child, u16) {
        let mut child = Command::new(python())
            .arg(script())
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (apt-get install python3-aiosmtpd)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("the SMTP sink did not start: {line:?}"))
            .parse()
            .unwrap();
        (child, port)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same port, into the same directory.
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            let (mut child, port) = Self::spawn(self.port, &self.dir);
            if port == self.port && child.try_wait().unwrap().is_none() {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not listen on port {} again", self.port);
    }

    /// While on, every recipient gets 451 (a temporary failure).
    pub fn set_tempfail(&self, on: bool) {
        let flag = self.dir.path().join("TEMPFAIL");
        if on {
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// Every message received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| Received::parse(&std::fs::read(p).unwrap()))
            .collect()
    }

    /// Wait until a message matching `want` has arrived (a guard against a
    /// hang, not a measure: 60 s).
    pub async fn wait_for(&self, want: impl Fn(&Received) -> bool) -> Received {
        for _ in 0..600 {
            if let Some(m) = self.received().into_iter().find(&want) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let got: Vec<String> = self
            .received()
            .iter()
            .map(|m| format!("{} → {}", m.subject, m.to))
            .collect();
        panic!("the expected message never arrived; received: {got:#?}");
    }

    /// Wait for the message with this subject to `to`.
    pub async fn wait_for_subject(&self, to: &str, subject: &str) -> Received {
        self.wait_for(|m| m.to == to && m.subject == subject).await
    }

    /// The messages to `to`.
    pub fn to(&self, to: &str) -> Vec<Received> {
        self.received().into_iter().filter(|m| m.to == to).collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One received message, parsed.
#[derive(Clone, Debug)]
pub struct Received {
    pub envelope_to: String,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub date: String,
    pub auto_submitted: String,
    pub text: String,
    pub html: String,
    pub raw: String,
}

impl Received {
    fn parse(bytes: &[u8]) -> Self {
        let mail = mailparse::parse_mail(bytes).expect("a well-formed message");
        let h = |name: &str| mail.headers.get_first_value(name).unwrap_or_default();
        let mut text = String::new();
        let mut html = String::new();
        let parts: Vec<&mailparse::ParsedMail> = if mail.subparts.is_empty() {
            vec![&mail]
        } else {
            mail.subparts.iter().collect()
        };
        for part in parts {
            match part.ctype.mimetype.as_str() {
                "text/plain" => text = part.get_body().unwrap(),
                "text/html" => html = part.get_body().unwrap(),
                _ => {}
            }
        }
        Self {
            envelope_to: h("X-Envelope-To"),
            from: h("From"),
            to: h("To"),
            subject: h("Subject"),
            message_id: h("Message-ID"),
            date: h("Date"),
            auto_submitted: h("Auto-Submitted"),
            text,
            html,
            raw: String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    /// The path of the link of `kind` ("not-me" or "verify") in the text
    /// body, e.g. `/email/not-me/TOKEN`, checked to be the same in the HTML.
    pub fn link(&self, kind: &str) -> Option<String> {
        let marker = format!("/email/{kind}/");
        let start = self.text.find(&marker)?;
        let path: String = self.text[start..].chars().take_while(|c| !c.is_whitespace()).collect();
        assert!(self.html.contains(&path), "the HTML body has the same link");
        Some(path)
    }
}
