//! `[[logs]]` paths with a `*` in their last element
//! (`path = "/var/log/nova/*.log"`): every matching file gets its own
//! [`Tailer`] and its own saved position (keyed by the file's path, which
//! is also its `source` label). The pattern is listed again at every
//! poll: files that match at start-up are followed from their end (or
//! their saved position), files that appear later are read from their
//! start. A pattern should not match rotated names (`*.log`, not `app*`),
//! or a rotated file would be followed twice.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span};

use super::{Checkpoints, LogConfig, Tailer, run_tail};
use crate::Emitter;

/// Whether `config` names a pattern rather than one file.
pub(crate) fn is_glob(config: &LogConfig) -> bool {
    config
        .path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains('*'))
}

/// Lists the pattern every `poll_interval` and starts a tail per new file.
pub(crate) async fn run_glob(
    config: LogConfig,
    emitter: Arc<Emitter>,
    shutdown: CancellationToken,
    checkpoints: Option<Arc<Checkpoints>>,
) {
    let pattern = config.path.to_string_lossy().into_owned();
    let every = config.poll_interval.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut running: BTreeMap<PathBuf, JoinHandle<()>> = BTreeMap::new();
    let mut first = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let p = pattern.clone();
        let Ok(found) = tokio::task::spawn_blocking(move || crate::sd::expand(&p)).await else {
            break;
        };
        for path in found {
            if running.contains_key(&path) || !path.is_file() {
                continue;
            }
            let file = LogConfig {
                path: path.clone(),
                ..config.clone()
            };
            let tailer = Tailer::new(&file);
            let saved = checkpoints.as_ref().and_then(|c| c.get(tailer.source()));
            let mut tailer = tailer.resume_from(saved);
            if !first {
                info!(file = %path.display(), "new file matches the pattern; following it from its start");
                tailer = tailer.from_start();
            }
            let span = info_span!("tail", file = %tailer.source());
            let task = run_tail(
                tailer,
                every,
                emitter.clone(),
                shutdown.clone(),
                checkpoints.clone(),
            );
            running.insert(path, tokio::spawn(task.instrument(span)));
        }
        first = false;
    }
    for task in running.into_values() {
        let _ = task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use vigie_bus::memory::MemoryBus;
    use vigie_model::topics;

    fn append(path: &std::path::Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("write");
    }

    #[test]
    fn a_star_is_allowed_in_the_file_name_only() {
        assert!(LogConfig::new("/var/log/nova/*.log").problems(0).is_empty());
        let p = LogConfig::new("/var/*/app.log").problems(0);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "logs[0].path");
    }

    #[tokio::test]
    async fn new_files_matching_the_glob_are_followed_each_with_its_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.log");
        append(&a, "old line of a\n");
        let bus = MemoryBus::new(64);
        let mut sub = bus.subscribe(&[topics::LOGS]);
        let emitter = Arc::new(Emitter::new(Arc::new(bus.clone()), 1));
        let state = dir.path().join("state").join("tail.json");
        let checkpoints = Arc::new(Checkpoints::load(&state));
        let config = LogConfig {
            poll_interval: Duration::from_millis(20),
            ..LogConfig::new(dir.path().join("*.log"))
        };
        assert!(is_glob(&config));
        let shutdown = CancellationToken::new();
        let tasks = super::super::spawn_tails(
            &[config],
            emitter,
            shutdown.clone(),
            Some(checkpoints.clone()),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        append(&a, "a1\n");
        let b = dir.path().join("b.log");
        append(&b, "b1\nb2\n");
        append(&dir.path().join("c.txt"), "not matched\n");
        let mut got: Vec<(String, String)> = Vec::new();
        while got.len() < 3 {
            let d = crate::testing::next_message(&mut sub, "records arrive").await;
            for r in crate::testing::logs_in(&d) {
                let source = r.labels.get("source").unwrap_or_default().to_string();
                got.push((source, r.body));
            }
        }
        got.sort();
        let (a, b) = (a.display().to_string(), b.display().to_string());
        assert_eq!(
            got,
            vec![
                (a.clone(), "a1".into()),
                (b.clone(), "b1".into()),
                (b.clone(), "b2".into()),
            ],
            "old lines of a file present at start are skipped, a new file is read whole"
        );
        // Each file has its own saved position.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let saved = Checkpoints::load(&state);
        assert_eq!(saved.get(&a).map(|p| p.offset), Some(17));
        assert_eq!(saved.get(&b).map(|p| p.offset), Some(6));
        assert!(
            saved
                .get(&dir.path().join("c.txt").display().to_string())
                .is_none()
        );
        shutdown.cancel();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(2), t)
                .await
                .expect("stops")
                .expect("no panic");
        }
    }
}
