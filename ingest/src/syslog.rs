//! Syslog receiver: `[[syslog]]` listeners (UDP and/or TCP) whose
//! messages become [`LogRecord`]s on `vigie.logs`, like tailed lines.
//!
//! Each datagram (RFC 5426) or TCP frame (RFC 6587, [`frame`]) is parsed
//! by [`parse`] (RFC 5424 or RFC 3164). A record gets the message time
//! (receive time when the message has none), the level of its PRI
//! severity ([`parse::level`]), the MSG as body, and labels: `source`
//! (`syslog` unless set in `labels`), `transport`, `peer` (sender IP),
//! `facility`, `syslog_severity`, `hostname`, `app`, `procid`, `msgid`
//! when present, `<sd-id>.<param>` for structured data, then the
//! configured `labels`. A message that cannot be parsed is still kept,
//! whole, as the body, and counted in `vigie_syslog_errors_total{stage, reason}`.
//!
//! Records are batched (every 200 ms or 1000 records) per sending host
//! and published with the bus key `syslog/<hostname or peer>`.
//!
//! Backpressure: between the listeners and the batcher sits a bounded
//! queue (4000 records). A TCP connection waits for room (TCP flow control
//! slows the sender down); a UDP datagram that finds the queue full is
//! dropped and counted in
//! `vigie_ingest_dropped_log_records_total{source="syslog",reason="queue_full"}`.
//! A batch the bus does not accept within `bus.publish_timeout` is
//! dropped and counted there too (`reason="timeout"`).

pub mod frame;
pub mod parse;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};
use vigie_model::{Labels, LogRecord};

use crate::emit::{MAX_LOG_RECORD_BYTES, count_dropped_logs};
use crate::metrics::{SYSLOG_ERRORS, SYSLOG_MESSAGES};
use crate::ratelimit::LogLimiter;
use crate::source::now_ms;
use crate::{Emitter, IngestError};

fn default_max_message_bytes() -> usize {
    64 << 10
}

/// `[[syslog]]`: one syslog receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// UDP address to listen on, e.g. `"0.0.0.0:514"`.
    #[serde(default)]
    pub udp: Option<SocketAddr>,
    /// TCP address to listen on (octet-counted or newline-framed).
    #[serde(default)]
    pub tcp: Option<SocketAddr>,
    /// Labels added to every record.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Longest message kept (default 64 KiB); longer ones are cut and
    /// counted (`reason="truncated"`).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

impl SyslogConfig {
    /// A receiver on `udp` and/or `tcp` with no extra labels.
    pub fn new(udp: Option<SocketAddr>, tcp: Option<SocketAddr>) -> Self {
        Self {
            udp,
            tcp,
            labels: BTreeMap::new(),
            max_message_bytes: default_max_message_bytes(),
        }
    }

    /// Problems of entry `i`, as `(key, what to fix)`.
    pub fn problems(&self, i: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.udp.is_none() && self.tcp.is_none() {
            out.push((
                format!("syslog[{i}]"),
                "set `udp` and/or `tcp`, e.g. udp = \"0.0.0.0:514\"".into(),
            ));
        }
        if self.max_message_bytes == 0 || self.max_message_bytes > MAX_LOG_RECORD_BYTES {
            out.push((
                format!("syslog[{i}].max_message_bytes"),
                format!(
                    "must be between 1 and {MAX_LOG_RECORD_BYTES} (a record must fit one bus message), e.g. 65536"
                ),
            ));
        }
        for k in self.labels.keys() {
            if k.is_empty() || k.starts_with("__") {
                out.push((
                    format!("syslog[{i}].labels"),
                    format!("label name `{k}` is empty or reserved"),
                ));
            }
        }
        out
    }
}

/// A started receiver: the addresses it listens on and its tasks.
pub struct SyslogReceiver {
    /// Bound UDP address.
    pub udp: Option<SocketAddr>,
    /// Bound TCP address.
    pub tcp: Option<SocketAddr>,
    /// Listener and batching tasks; all end after `shutdown`, the batcher
    /// once it has published what it holds.
    pub tasks: Vec<JoinHandle<()>>,
}

/// What every record of one receiver shares.
struct Context {
    labels: Labels,
    max: usize,
    tx: mpsc::Sender<(String, LogRecord)>,
}

static BAD_INPUT_LOG: LogLimiter = LogLimiter::new();
static PUBLISH_LOG: LogLimiter = LogLimiter::new();

/// Records buffered before a publish, at most.
const BATCH: usize = 1000;
/// Longest a record waits for its batch.
const LINGER: Duration = Duration::from_millis(200);

/// Binds every receiver of `configs` (failing if an address is taken)
/// and starts them; returns all their tasks.
pub async fn spawn_syslog(
    configs: &[SyslogConfig],
    emitter: Arc<Emitter>,
    shutdown: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, IngestError> {
    let mut tasks = Vec::new();
    for c in configs {
        tasks.extend(start(c, emitter.clone(), shutdown.clone()).await?.tasks);
    }
    Ok(tasks)
}

/// Binds and starts one receiver.
pub async fn start(
    config: &SyslogConfig,
    emitter: Arc<Emitter>,
    shutdown: CancellationToken,
) -> Result<SyslogReceiver, IngestError> {
    let bind = |addr: SocketAddr| move |source| IngestError::Bind { addr, source };
    let udp = match config.udp {
        Some(a) => {
            let socket = UdpSocket::bind(a).await.map_err(bind(a))?;
            let local = socket.local_addr().map_err(bind(a))?;
            Some((socket, local))
        }
        None => None,
    };
    let tcp = match config.tcp {
        Some(a) => {
            let listener = TcpListener::bind(a).await.map_err(bind(a))?;
            let local = listener.local_addr().map_err(bind(a))?;
            Some((listener, local))
        }
        None => None,
    };
    let mut labels = Labels::new();
    for (k, v) in &config.labels {
        labels.insert(k.clone(), v.clone());
    }
    let (tx, rx) = mpsc::channel(4 * BATCH);
    let ctx = Arc::new(Context {
        labels,
        max: config.max_message_bytes.max(1),
        tx,
    });
    let mut receiver = SyslogReceiver {
        udp: None,
        tcp: None,
        tasks: vec![tokio::spawn(
            batch(rx, emitter).instrument(info_span!("syslog_batch")),
        )],
    };
    if let Some((socket, addr)) = udp {
        info!(%addr, "syslog listening on UDP");
        receiver.udp = Some(addr);
        receiver.tasks.push(tokio::spawn(
            serve_udp(socket, ctx.clone(), shutdown.clone())
                .instrument(info_span!("syslog_udp", %addr)),
        ));
    }
    if let Some((listener, addr)) = tcp {
        info!(%addr, "syslog listening on TCP");
        receiver.tcp = Some(addr);
        receiver.tasks.push(tokio::spawn(
            serve_tcp(listener, ctx, shutdown).instrument(info_span!("syslog_tcp", %addr)),
        ));
    }
    Ok(receiver)
}

/// Removes trailing newlines, CRs and NULs (some senders add them).
fn trim(raw: &[u8]) -> &[u8] {
    let end = raw
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r' | b'\0'))
        .map_or(0, |i| i + 1);
    &raw[..end]
}

/// Parses one message into its bus key and record, counting defects.
fn to_record(
    raw: &[u8],
    truncated: bool,
    transport: &'static str,
    peer: IpAddr,
    extra: &Labels,
) -> (String, LogRecord) {
    let m = parse::parse(raw, &chrono::Local::now());
    SYSLOG_MESSAGES.with_label_values(&[transport]).inc();
    for reason in m.defect.into_iter().chain(truncated.then_some("truncated")) {
        SYSLOG_ERRORS.with_label_values(&[transport, reason]).inc();
        if let Some(suppressed) = BAD_INPUT_LOG.check() {
            warn!(%peer, reason, suppressed, "syslog message not fully readable; kept as is");
        }
    }
    let mut labels = Labels::new().with("source", "syslog");
    labels.insert("transport", transport);
    labels.insert("peer", peer.to_string());
    if let Some(f) = m.facility {
        labels.insert("facility", parse::FACILITIES[usize::from(f % 24)]);
    }
    if let Some(s) = m.severity {
        labels.insert("syslog_severity", parse::SEVERITIES[usize::from(s % 8)]);
    }
    let fields = [
        ("hostname", &m.hostname),
        ("app", &m.app_name),
        ("procid", &m.procid),
        ("msgid", &m.msgid),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            labels.insert(name, v.clone());
        }
    }
    for sd in &m.structured_data {
        for (k, v) in &sd.params {
            labels.insert(format!("{}.{k}", sd.id), v.clone());
        }
    }
    for (k, v) in extra.iter() {
        labels.insert(k, v);
    }
    let key = format!(
        "syslog/{}",
        m.hostname.clone().unwrap_or_else(|| peer.to_string())
    );
    let record = LogRecord {
        ts_ms: m.ts_ms.unwrap_or_else(now_ms),
        labels,
        severity: m.severity.map(|s| parse::level(s).to_string()),
        body: m.body,
    };
    (key, record)
}

async fn serve_udp(socket: UdpSocket, ctx: Arc<Context>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; ctx.max + 1];
    loop {
        let (n, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(error) => {
                    SYSLOG_ERRORS.with_label_values(&["udp", "read"]).inc();
                    if let Some(suppressed) = BAD_INPUT_LOG.check() {
                        warn!(%error, suppressed, "syslog UDP read failed");
                    }
                    continue;
                }
            },
        };
        let truncated = n > ctx.max;
        let raw = trim(&buf[..n.min(ctx.max)]);
        if raw.is_empty() {
            continue;
        }
        let item = to_record(raw, truncated, "udp", peer.ip(), &ctx.labels);
        // UDP has no flow control: waiting here would only move the loss
        // into the kernel's socket buffer, uncounted. Drop and count.
        match ctx.tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                count_dropped_logs("syslog", "queue_full", 1);
                if let Some(suppressed) = PUBLISH_LOG.check() {
                    warn!(
                        suppressed,
                        "syslog UDP arrives faster than the bus takes it; records dropped"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
    }
    debug!("syslog UDP listener stopped");
}

async fn serve_tcp(listener: TcpListener, ctx: Arc<Context>, shutdown: CancellationToken) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(error) => {
                    SYSLOG_ERRORS.with_label_values(&["tcp", "accept"]).inc();
                    if let Some(suppressed) = BAD_INPUT_LOG.check() {
                        warn!(%error, suppressed, "syslog TCP accept failed");
                    }
                    // E.g. out of file descriptors: do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        debug!(%peer, "syslog TCP connection");
        tokio::spawn(
            serve_connection(stream, peer.ip(), ctx.clone(), shutdown.clone())
                .instrument(info_span!("syslog_conn", %peer)),
        );
    }
    debug!("syslog TCP listener stopped");
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: IpAddr,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    let mut framer = frame::Framer::new(ctx.max);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => 0,
            r = stream.read(&mut buf) => match r {
                Ok(n) => n,
                Err(error) => {
                    SYSLOG_ERRORS.with_label_values(&["tcp", "read"]).inc();
                    debug!(%error, "syslog TCP read failed; closing");
                    0
                }
            },
        };
        let frames: Vec<frame::Frame> = if n == 0 {
            framer.finish().into_iter().collect()
        } else {
            framer.push(&buf[..n]);
            std::iter::from_fn(|| framer.next_frame()).collect()
        };
        for f in frames {
            let raw = trim(&f.bytes);
            if raw.is_empty() {
                continue;
            }
            let item = to_record(raw, f.truncated, "tcp", peer, &ctx.labels);
            if ctx.tx.send(item).await.is_err() {
                return;
            }
        }
        if n == 0 {
            return;
        }
    }
}

/// Publishes records per key every [`LINGER`] or [`BATCH`] records, until
/// every sender is gone; then publishes what is left.
async fn batch(mut rx: mpsc::Receiver<(String, LogRecord)>, emitter: Arc<Emitter>) {
    let mut pending: BTreeMap<String, Vec<LogRecord>> = BTreeMap::new();
    let mut count = 0;
    let mut tick = tokio::time::interval(LINGER);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let flush = tokio::select! {
            r = rx.recv() => match r {
                Some((key, record)) => {
                    pending.entry(key).or_default().push(record);
                    count += 1;
                    count >= BATCH
                }
                None => break,
            },
            _ = tick.tick() => true,
        };
        if flush && count > 0 {
            publish(&emitter, std::mem::take(&mut pending)).await;
            count = 0;
        }
    }
    publish(&emitter, pending).await;
}

async fn publish(emitter: &Emitter, pending: BTreeMap<String, Vec<LogRecord>>) {
    let mut bus_full = false;
    for (key, records) in pending {
        let n = records.len();
        if bus_full {
            // The bus just made a batch wait its whole timeout: the other
            // hosts' records do not wait again, one timeout per host.
            count_dropped_logs("syslog", "timeout", n);
            continue;
        }
        if let Err(error) = emitter.emit_logs_or_drop("syslog", &key, records).await {
            bus_full = error.is_backpressure();
            if let Some(suppressed) = PUBLISH_LOG.check() {
                warn!(%error, records = n, suppressed, "syslog records not published; dropped (counted)");
            }
        }
    }
}

#[cfg(test)]
mod tests;
