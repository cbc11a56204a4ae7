//! A real S3-compatible server for tests: moto's `moto_server`, started on
//! 127.0.0.1 and killed on drop. Found through `VIGIE_TEST_MOTO`, else on
//! `PATH` (`scripts/test` installs it: `pip install 'moto[server]'`).
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `moto_server` with one bucket.
pub struct Moto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The bucket created at start.
    pub bucket: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts the server and creates `bucket` (moto checks no signature).
    pub async fn start(bucket: &str) -> Moto {
        let bin = std::env::var("VIGIE_TEST_MOTO").unwrap_or_else(|_| "moto_server".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {bin} ({e}): pip install 'moto[server]' or set VIGIE_TEST_MOTO"
                )
            });
        let moto = Moto {
            child,
            port,
            bucket: bucket.to_string(),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match client
                .put(format!("{}/{bucket}", moto.endpoint()))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return moto,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                other => panic!("moto_server did not come up: {other:?}"),
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The keys under `prefix` in the bucket (ListObjectsV2).
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let xml = reqwest::get(format!(
            "{}/{}?list-type=2&prefix={prefix}",
            self.endpoint(),
            self.bucket
        ))
        .await
        .expect("ListObjectsV2")
        .text()
        .await
        .expect("listing");
        xml.split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// An `[analyzer.storage]` section for `s3://<bucket>/<prefix>` on
    /// this server, the secret read from `secret_file` (written here).
    pub fn storage_config(&self, prefix: &str, secret_file: &std::path::Path) -> String {
        std::fs::write(secret_file, "testing\n").expect("secret");
        format!(
            "[analyzer.storage]\nurl = \"s3://{}/{prefix}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"testing\"\nsecret_access_key_file = \"{}\"\nallow_http = true\n",
            self.bucket,
            self.endpoint(),
            secret_file.display()
        )
    }
}
