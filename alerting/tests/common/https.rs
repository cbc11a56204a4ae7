//! A real HTTPS server for tests: Python's `http.server` wrapped in TLS
//! (`https_server.py`), recording every POST.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running HTTPS server, killed on drop.
pub struct Https {
    child: Child,
    /// `https://127.0.0.1:<port>`.
    pub base: String,
    /// The port.
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Https {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Https {
    /// Serves with `cert` and `key`; with `client_ca`, requires a client
    /// certificate signed by it.
    pub fn start(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Https {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/https_server.py");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("requests.jsonl");
        let mut cmd = Command::new(super::smtp::python());
        cmd.arg(script)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--log")
            .arg(&log);
        if let Some(ca) = client_ca {
            cmd.arg("--client-ca").arg(ca);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the HTTPS test server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the server's stdout");
        let port: u16 = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("HTTPS test server did not start: {line:?}"));
        Https {
            child,
            base: format!("https://127.0.0.1:{port}"),
            port,
            log,
            _dir: dir,
        }
    }

    /// The requests received: path, lower-case headers and body (JSON).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("request line"))
            .collect()
    }
}
