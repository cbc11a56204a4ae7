//! A real SMTP server for tests: aiosmtpd (Debian's python3-aiosmtpd)
//! started from `smtp_server.py`, plain, STARTTLS or implicit TLS, with or
//! without AUTH, storing mail in a Maildir.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// How the server protects connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP.
    None,
    /// STARTTLS offered and required before anything else.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// What server to start.
#[derive(Debug, Clone)]
pub struct SmtpOptions {
    /// Transport security.
    pub tls: SmtpTls,
    /// Server certificate and key (PEM), for `StartTls` and `Implicit`.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// The one user and password AUTH accepts; AUTH is then required.
    pub auth: Option<(String, String)>,
    /// Mechanisms offered, e.g. `"PLAIN,LOGIN"` or `"LOGIN"`.
    pub mechanisms: &'static str,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        Self {
            tls: SmtpTls::None,
            cert: None,
            auth: None,
            mechanisms: "PLAIN,LOGIN",
        }
    }
}

/// Debian's Python has python3-aiosmtpd; `VIGIE_TEST_PYTHON` (set by
/// scripts/test) names another interpreter that has aiosmtpd.
pub fn python() -> String {
    std::env::var("VIGIE_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_string())
}

/// A running aiosmtpd, killed on drop.
pub struct Smtp {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// Where mail is stored.
    pub maildir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Smtp {
    /// Starts a server on a free port, with its Maildir in a temporary
    /// directory.
    pub fn start(options: &SmtpOptions) -> Smtp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut smtp = Smtp::start_on(free_port(), dir.path(), options);
        smtp._dir = Some(dir);
        smtp
    }

    /// Starts a server on `port`, with its Maildir (and log) under `dir`;
    /// returns once it accepts connections.
    pub fn start_on(port: u16, dir: &Path, options: &SmtpOptions) -> Smtp {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/smtp_server.py");
        let maildir = dir.join("Maildir");
        let log = dir.join(format!("aiosmtpd-{port}.log"));
        let mut cmd = Command::new(python());
        cmd.arg(script)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--maildir")
            .arg(&maildir)
            .args(["--mechanisms", options.mechanisms]);
        match options.tls {
            SmtpTls::None => {}
            SmtpTls::StartTls | SmtpTls::Implicit => {
                let (cert, key) = options.cert.as_ref().expect("a TLS server needs cert");
                let mode = if options.tls == SmtpTls::StartTls {
                    "starttls"
                } else {
                    "implicit"
                };
                cmd.args(["--tls", mode])
                    .arg("--cert")
                    .arg(cert)
                    .arg("--key")
                    .arg(key);
            }
        }
        if let Some((user, password)) = &options.auth {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; install python3-aiosmtpd (the email tests need a real SMTP server)",
                    python()
                )
            });
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read aiosmtpd's stdout");
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "aiosmtpd did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Smtp {
            child,
            port,
            maildir,
            _dir: None,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn smarthost(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every stored message.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(self.maildir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }
}
