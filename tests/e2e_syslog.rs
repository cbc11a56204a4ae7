//! Syslog end to end: the real `vigie` binary receives messages sent by
//! util-linux `logger` (RFC 5424 and RFC 3164, UDP and TCP, octet-counted
//! and newline-framed) and over a raw TCP socket, and stores them in
//! table `logs`, where SQL finds them with their labels and levels.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::{GAUGE_RULES, Vigie, free_port, wait_for};

/// A free UDP port on 127.0.0.1.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free udp port")
}

/// Sends `message` with util-linux `logger` and the given options.
fn logger(port: u16, options: &[&str], message: &str) {
    let status = Command::new("logger")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(options)
        .arg(message)
        .status()
        .expect("run logger (util-linux: apt-get install bsdutils)");
    assert!(status.success(), "logger {options:?} failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_and_raw_tcp_messages_are_stored_and_queryable() {
    let version = Command::new("logger").arg("--version").output();
    assert!(
        version.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("util-linux")),
        "this test needs util-linux `logger` (apt-get install bsdutils)"
    );
    let udp = free_udp_port();
    let tcp = free_port();
    let config = format!(
        "[[syslog]]\nudp = \"127.0.0.1:{udp}\"\ntcp = \"127.0.0.1:{tcp}\"\nlabels = {{ dc = \"par1\" }}\n"
    );
    let vigie = Vigie::start(&config, GAUGE_RULES).await;

    let tag = ["-t", "vigietest"];
    logger(
        udp,
        &["--udp", "--rfc5424", "-p", "local3.warning", tag[0], tag[1]],
        "m1 udp 5424",
    );
    logger(
        udp,
        &["--udp", "--rfc3164", "-p", "user.err", tag[0], tag[1]],
        "m2 udp 3164",
    );
    logger(
        tcp,
        &[
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-p",
            "daemon.info",
            tag[0],
            tag[1],
        ],
        "m3 tcp 5424 octet-counted",
    );
    logger(
        tcp,
        &["--tcp", "--rfc3164", "-p", "auth.debug", tag[0], tag[1]],
        "m4 tcp 3164",
    );

    // A raw TCP client: two octet-counted messages, a newline one, garbage,
    // and an unterminated last line flushed by closing the connection.
    let addr: SocketAddr = format!("127.0.0.1:{tcp}").parse().expect("addr");
    let mut raw = TcpStream::connect(addr).expect("connect");
    let m5 = "<165>1 2003-10-11T22:14:15.003Z mymachine evntslog - ID47 [exampleSDID@32473 iut=\"3\"] m5 raw";
    let m6 = "<34>Oct 11 22:14:15 host2 su[7]: m6 raw";
    write!(raw, "{} {m5}{} {m6}", m5.len(), m6.len()).expect("write");
    raw.write_all(b"<30>Oct 11 22:14:16 host2 app: m7 raw\nm8 garbage without pri\n<13>m9 last")
        .expect("write");
    drop(raw);

    let ours = "labels['source'] = 'syslog' AND body LIKE 'm_ %'";
    wait_for("all 9 messages stored", Duration::from_secs(60), || async {
        let n = vigie
            .count(&format!("SELECT count(*) FROM logs WHERE {ours}"))
            .await;
        (n == 9).then_some(())
    })
    .await;

    let rows = vigie
        .sql(&format!(
            "SELECT body, severity, labels['transport'], labels['app'], labels['facility'], \
             labels['hostname'], labels['dc'] FROM logs WHERE {ours} ORDER BY body"
        ))
        .await["rows"]
        .clone();
    let rows: Vec<Vec<String>> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect()
        })
        .collect();
    let hostname = rows[0][5].clone();
    assert!(!hostname.is_empty(), "logger sends the host name: {rows:?}");
    let expect = |body: &str, sev: &str, transport: &str, app: &str, facility: &str, host: &str| {
        vec![
            body.to_string(),
            sev.into(),
            transport.into(),
            app.into(),
            facility.into(),
            host.into(),
            "par1".into(),
        ]
    };
    assert_eq!(
        rows,
        vec![
            expect(
                "m1 udp 5424",
                "warn",
                "udp",
                "vigietest",
                "local3",
                &hostname
            ),
            expect(
                "m2 udp 3164",
                "error",
                "udp",
                "vigietest",
                "user",
                &hostname
            ),
            expect(
                "m3 tcp 5424 octet-counted",
                "info",
                "tcp",
                "vigietest",
                "daemon",
                &hostname
            ),
            expect(
                "m4 tcp 3164",
                "debug",
                "tcp",
                "vigietest",
                "auth",
                &hostname
            ),
            expect("m5 raw", "info", "tcp", "evntslog", "local4", "mymachine"),
            expect("m6 raw", "error", "tcp", "su", "auth", "host2"),
            expect("m7 raw", "info", "tcp", "app", "daemon", "host2"),
            expect("m8 garbage without pri", "", "tcp", "", "", ""),
            // PRI 13 is user.notice: level info.
            expect("m9 last", "info", "tcp", "", "user", ""),
        ]
    );

    // The RFC 5424 timestamp is the record time; structured data is labels.
    assert_eq!(
        vigie
            .count(
                "SELECT count(*) FROM logs WHERE body = 'm5 raw' \
                 AND ts = TIMESTAMP '2003-10-11T22:14:15.003Z' \
                 AND labels['exampleSDID@32473.iut'] = '3' AND labels['msgid'] = 'ID47'"
            )
            .await,
        1
    );
    // logger's own structured data arrives too.
    assert_eq!(
        vigie
            .count("SELECT count(*) FROM logs WHERE body = 'm1 udp 5424' AND labels['timeQuality.tzKnown'] = '1'")
            .await,
        1
    );
    // The message without PRI is kept and counted.
    let metrics = vigie.metrics().await;
    assert!(
        metrics.contains("vigie_syslog_errors_total{reason=\"pri\",stage=\"tcp\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vigie_syslog_messages_total{transport=\"tcp\"} 7"),
        "{metrics}"
    );
}
