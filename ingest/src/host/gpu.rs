//! NVIDIA GPUs through `nvidia-smi --query-gpu`, under NVIDIA's DCGM
//! exporter names (those `rules/gpu.yml` and the community dashboards use).
//!
//! Each collection runs `nvidia-smi --query-gpu=<fields>
//! --format=csv,noheader,nounits` once, with a timeout, and maps its CSV
//! ([`parse_query_output`], a pure function) to `DCGM_FI_DEV_*` gauges
//! labelled `gpu` (the index), `UUID`, `modelName`, `pci_bus_id` and
//! `Hostname`, as dcgm-exporter labels them; units are dcgm-exporter's too
//! (°C, %, MiB, W, MHz). dcgm-exporter's `device` label (`nvidia<minor>`) is
//! left out: `nvidia-smi --query-gpu` does not give the minor number.
//! `DCGM_FI_DEV_XID_ERRORS` has no `--query-gpu` field and is not reported.
//!
//! What goes wrong is counted, never fatal: a value nvidia-smi reports as
//! `[N/A]` or `[Not Supported]` is skipped and counted in
//! `vigie_host_gpu_unsupported_values_total{field}`; a run that cannot
//! start, exits with an error, outlives its timeout, or prints lines or
//! values nvidia-smi does not print is counted in
//! `vigie_host_gpu_errors_total{reason}` (`spawn`, `exit_status`,
//! `timeout`, `still_running`, `garbage`) with a rate-limited warning. A
//! run killed at its timeout that has not exited by the next round (a GPU
//! driver stuck in the kernel) makes that round skip nvidia-smi, so hung
//! processes do not pile up.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use vigie_model::Labels;

use super::Point;
use crate::metrics::{GPU_ERRORS, GPU_UNSUPPORTED};
use crate::ratelimit::LogLimiter;

/// The label fields queried first, in this order.
const LABEL_FIELDS: [&str; 4] = ["index", "uuid", "name", "pci.bus_id"];

/// Each value field queried, and the DCGM exporter metric it becomes.
pub const VALUE_FIELDS: [(&str, &str); 13] = [
    ("temperature.gpu", "DCGM_FI_DEV_GPU_TEMP"),
    ("utilization.gpu", "DCGM_FI_DEV_GPU_UTIL"),
    ("utilization.memory", "DCGM_FI_DEV_MEM_COPY_UTIL"),
    ("memory.used", "DCGM_FI_DEV_FB_USED"),
    ("memory.free", "DCGM_FI_DEV_FB_FREE"),
    ("memory.total", "DCGM_FI_DEV_FB_TOTAL"),
    ("power.draw", "DCGM_FI_DEV_POWER_USAGE"),
    ("power.limit", "DCGM_FI_DEV_POWER_MGMT_LIMIT"),
    ("clocks.sm", "DCGM_FI_DEV_SM_CLOCK"),
    ("clocks.mem", "DCGM_FI_DEV_MEM_CLOCK"),
    ("fan.speed", "DCGM_FI_DEV_FAN_SPEED"),
    (
        "ecc.errors.corrected.volatile.total",
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    ),
    (
        "ecc.errors.uncorrected.volatile.total",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    ),
];

/// Most bytes of nvidia-smi output read (a line per GPU is ~200 bytes).
const MAX_OUTPUT: u64 = 1 << 20;

/// The `--query-gpu=` argument: label fields, then value fields.
pub fn query_argument() -> String {
    let fields: Vec<&str> = LABEL_FIELDS
        .iter()
        .copied()
        .chain(VALUE_FIELDS.iter().map(|(f, _)| *f))
        .collect();
    format!("--query-gpu={}", fields.join(","))
}

/// What one nvidia-smi output gives.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parsed {
    /// `(metric, labels, value)` for every value reported.
    pub points: Vec<(String, Labels, f64)>,
    /// The field of every value nvidia-smi reported as unavailable
    /// (`[N/A]`, `[Not Supported]`).
    pub unsupported: Vec<&'static str>,
    /// Why each line or value nvidia-smi does not print was skipped.
    pub garbage: Vec<String>,
}

/// True for nvidia-smi's "this GPU or driver does not report it" values.
fn is_unavailable(value: &str) -> bool {
    matches!(value, "[N/A]" | "N/A" | "[Not Supported]" | "Not Supported")
}

/// At most 40 characters of outside text, for a message.
fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Parses the output of `nvidia-smi` run with [`query_argument`] and
/// `--format=csv,noheader,nounits`: one line per GPU, fields separated by
/// `, `. `hostname` becomes the `Hostname` label (left out
/// when empty). Never fails: what it cannot use is listed in
/// [`Parsed::unsupported`] and [`Parsed::garbage`].
pub fn parse_query_output(text: &str, hostname: &str) -> Parsed {
    let mut out = Parsed::default();
    let expected = LABEL_FIELDS.len() + VALUE_FIELDS.len();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != expected {
            out.garbage.push(format!(
                "line {} has {} fields, expected {expected}: `{}`",
                n + 1,
                fields.len(),
                excerpt(line)
            ));
            continue;
        }
        let (index, uuid, name, bus_id) = (fields[0], fields[1], fields[2], fields[3]);
        if index.parse::<u32>().is_err() || uuid.is_empty() || is_unavailable(uuid) {
            out.garbage.push(format!(
                "line {}: `{}` is not a GPU index and UUID",
                n + 1,
                excerpt(&format!("{index}, {uuid}"))
            ));
            continue;
        }
        let mut labels = Labels::new().with("gpu", index).with("UUID", uuid);
        if !name.is_empty() && !is_unavailable(name) {
            labels.insert("modelName", name);
        }
        if !bus_id.is_empty() && !is_unavailable(bus_id) {
            labels.insert("pci_bus_id", bus_id);
        }
        if !hostname.is_empty() {
            labels.insert("Hostname", hostname);
        }
        for ((field, metric), value) in VALUE_FIELDS.iter().zip(&fields[LABEL_FIELDS.len()..]) {
            if is_unavailable(value) {
                out.unsupported.push(field);
                continue;
            }
            match value.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    out.points.push((metric.to_string(), labels.clone(), v));
                }
                _ => out.garbage.push(format!(
                    "GPU {index}: {field} is `{}`, not a number",
                    excerpt(value)
                )),
            }
        }
    }
    out
}

/// True when `path` is a file someone may execute.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The nvidia-smi `setting` names: a bare name is looked up on `path_var`
/// (`PATH`'s value); a path is used as is. `None` when there is none.
pub(crate) fn resolve(setting: &str, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    if setting.is_empty() {
        return None;
    }
    if setting.contains('/') {
        let path = PathBuf::from(setting);
        return is_executable(&path).then_some(path);
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(setting))
        .find(|p| is_executable(p))
}

/// Up to [`MAX_OUTPUT`] bytes of a child's pipe; what a read error leaves.
async fn read_pipe<R: AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(pipe) = pipe {
        // Dropping the pipe after the limit makes a runaway writer fail.
        let _ = pipe.take(MAX_OUTPUT).read_to_end(&mut buf).await;
    }
    buf
}

/// Warnings about GPU collection, at most one per 10 s.
static WARN: LogLimiter = LogLimiter::new();

/// Counts a failed or partly failed run and warns (rate-limited).
fn gpu_error(reason: &str, error: &str) {
    GPU_ERRORS.with_label_values(&[reason]).inc();
    if let Some(suppressed) = WARN.check() {
        tracing::warn!(reason, error, suppressed, "nvidia-smi: GPU metrics skipped");
    }
}

/// Runs nvidia-smi each collection.
pub(crate) struct NvidiaSmi {
    path: PathBuf,
    timeout: Duration,
    hostname: String,
    /// A run killed at its timeout that had not exited yet.
    stuck: Option<Child>,
}

impl NvidiaSmi {
    /// The runner for the `[host] nvidia_smi` setting, or `None` (logged
    /// once at info) when there is no such executable.
    pub(crate) fn new(setting: &str, timeout: Duration, hostname: &str) -> Option<Self> {
        if setting.is_empty() {
            tracing::info!("GPU metrics off: [host] nvidia_smi is empty");
            return None;
        }
        let Some(path) = resolve(setting, std::env::var_os("PATH").as_deref()) else {
            tracing::info!(
                nvidia_smi = setting,
                "GPU metrics off: no nvidia-smi executable found"
            );
            return None;
        };
        tracing::info!(nvidia_smi = %path.display(), "GPU metrics from nvidia-smi");
        Some(Self {
            path,
            timeout,
            hostname: hostname.to_string(),
            stuck: None,
        })
    }

    /// One run's points; failures are counted and yield nothing.
    pub(crate) async fn collect(&mut self) -> Vec<Point> {
        if let Some(child) = &mut self.stuck {
            if let Ok(None) = child.try_wait() {
                gpu_error(
                    "still_running",
                    "the nvidia-smi killed at its timeout has not exited yet",
                );
                return Vec::new();
            }
            self.stuck = None;
        }
        let mut child = match Command::new(&self.path)
            .arg(query_argument())
            .arg("--format=csv,noheader,nounits")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(error) => {
                gpu_error(
                    "spawn",
                    &format!("running {}: {error}", self.path.display()),
                );
                return Vec::new();
            }
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let run = async { tokio::join!(read_pipe(stdout), read_pipe(stderr), child.wait()) };
        let (out, err, status) = match tokio::time::timeout(self.timeout, run).await {
            Ok(done) => done,
            Err(_) => {
                let _ = child.start_kill();
                self.stuck = Some(child);
                gpu_error(
                    "timeout",
                    &format!(
                        "nvidia-smi took longer than {}; killed",
                        humantime_serde::re::humantime::format_duration(self.timeout)
                    ),
                );
                return Vec::new();
            }
        };
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => {
                let stderr = String::from_utf8_lossy(&err);
                let stdout = String::from_utf8_lossy(&out);
                // nvidia-smi prints its own errors on stdout.
                let message = [stderr.trim(), stdout.trim()]
                    .into_iter()
                    .find(|m| !m.is_empty())
                    .and_then(|m| m.lines().next())
                    .unwrap_or_default()
                    .to_string();
                gpu_error("exit_status", &format!("{status}: {}", excerpt(&message)));
                return Vec::new();
            }
            Err(error) => {
                gpu_error("exit_status", &format!("waiting for nvidia-smi: {error}"));
                return Vec::new();
            }
        }
        let parsed = parse_query_output(&String::from_utf8_lossy(&out), &self.hostname);
        for field in &parsed.unsupported {
            GPU_UNSUPPORTED.with_label_values(&[field]).inc();
        }
        if let Some(first) = parsed.garbage.first() {
            GPU_ERRORS
                .with_label_values(&["garbage"])
                .inc_by(parsed.garbage.len() as u64);
            if let Some(suppressed) = WARN.check() {
                tracing::warn!(
                    reason = "garbage",
                    error = %first,
                    skipped = parsed.garbage.len(),
                    suppressed,
                    "nvidia-smi: GPU values skipped"
                );
            }
        }
        parsed.points
    }
}

#[cfg(test)]
mod tests;
