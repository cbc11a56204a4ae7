//! A real Kafka-protocol broker process (tansu) and a real third-party
//! client (kcat) for the end-to-end tests.

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first executable named `name` in `$PATH`, then in `extra`.
fn find(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain(extra.iter().map(|d| d.join(name)))
        .find(|c| c.is_file())
}

/// The broker binary: `$VIGIE_TANSU`, else `tansu` on PATH or in ~/.cargo/bin.
pub fn tansu() -> PathBuf {
    if let Some(p) = std::env::var_os("VIGIE_TANSU") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    find("tansu", &[home.join(".cargo/bin")]).expect(
        "the tansu broker is missing: `cargo install tansu --locked --features dynostore,libsql` \
         (scripts/test does it)",
    )
}

/// `kcat` from PATH, or a failure saying how to install it.
pub fn kcat() -> PathBuf {
    find("kcat", &[])
        .expect("kcat is missing: `apt-get install kcat` (scripts/test and .ci/run do it)")
}

/// A tansu broker on 127.0.0.1 with its SQLite store in file `db`
/// (durable across [`Broker::restart`]); killed on drop.
pub struct Broker {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    db: PathBuf,
}

impl Broker {
    /// Starts the broker and waits until it listens.
    pub fn start(port: u16, db: PathBuf) -> Broker {
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(db.with_extension("log"))
            .expect("broker log");
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .arg("--storage-engine")
            // tansu resolves a sqlite:// path against its working directory.
            .arg(format!(
                "sqlite://{}",
                db.file_name().expect("db file").to_string_lossy()
            ))
            .current_dir(db.parent().expect("db dir"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {port}: {}",
                std::fs::read_to_string(db.with_extension("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Broker { child, port, db }
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would.
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Crashes the broker and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.crash();
        *self = Broker::start(self.port, self.db.clone());
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.crash();
    }
}

/// `kcat -P`: every line of `lines` becomes one message of `topic`
/// (with `-K SEP` given in `args`, the part before SEP is the key).
pub fn kcat_produce(brokers: &str, topic: &str, args: &[&str], lines: &str) {
    let mut child = Command::new(kcat())
        .args(["-P", "-b", brokers, "-t", topic])
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kcat");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write to kcat");
    let out = child.wait_with_output().expect("kcat");
    assert!(
        out.status.success(),
        "kcat -P: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
