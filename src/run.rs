//! `vigie run`: wires the stages of the configured roles together and
//! shuts them down in order (collectors, then analyzer flush, then
//! alerting, then HTTP).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigie_analyzer::pipeline::Analyzer;
use vigie_analyzer::rules::{RuleManager, load_paths};
use vigie_analyzer::storage::Storage;
use vigie_bus::kafka::{KafkaPublisher, KafkaSubscriber, ensure_topic, ensure_topics};
use vigie_bus::memory::MemoryBus;
use vigie_bus::{BusKind, Publisher, Subscriber};
use vigie_ingest::Emitter;
use vigie_model::topics;

use crate::config::{Config, Role};

struct Bus {
    publisher: Arc<dyn Publisher>,
    metrics: Option<Box<dyn Subscriber>>,
    alerts: Option<Box<dyn Subscriber>>,
    /// `vigie.alerts` again, for the action engine (`[[action]]`).
    actions: Option<Box<dyn Subscriber>>,
    /// The alerting replicas, with `[alerting.ha]`.
    peers: Option<vigie_alerting::ha::Peers>,
    /// `vigie.feedback`, in a consumer group of this analyzer's own
    /// (Kafka only: one process needs no sharing).
    feedback: Option<Box<dyn Subscriber>>,
}

async fn connect_bus(config: &Config) -> anyhow::Result<Bus> {
    let c = &config.bus;
    match c.kind {
        BusKind::Memory => {
            let bus = MemoryBus::new(c.channel_capacity).with_publish_timeout(c.publish_timeout);
            let metrics: Box<dyn Subscriber> =
                Box::new(bus.subscribe(&[topics::METRICS, topics::LOGS]));
            // Alerting reads anomaly events too, for incidents.
            let alerts: Box<dyn Subscriber> =
                Box::new(bus.subscribe(&[topics::ALERTS, topics::ANOMALIES]));
            let actions: Option<Box<dyn Subscriber>> = (!config.action.is_empty())
                .then(|| Box::new(bus.subscribe(&[topics::ALERTS])) as Box<dyn Subscriber>);
            Ok(Bus {
                publisher: Arc::new(bus),
                metrics: Some(metrics),
                alerts: Some(alerts),
                actions,
                peers: None,
                feedback: None,
            })
        }
        BusKind::Kafka => {
            info!(brokers = %c.brokers, "connecting to kafka");
            if c.create_topics {
                ensure_topics(
                    c,
                    &[
                        topics::METRICS,
                        topics::ALERTS,
                        topics::DEADLETTER,
                        topics::LOGS,
                        topics::ANOMALIES,
                    ],
                )
                .await
                .context("creating Vigie's topics")?;
            }
            if c.create_topics && config.runs(Role::Analyze) {
                // One partition: feedback is rare and read by every analyzer.
                ensure_topic(c, topics::FEEDBACK)
                    .await
                    .context("creating the operator feedback topic")?;
            }
            let ha = config.runs(Role::Alert) && config.alerting.ha.enabled;
            if c.create_topics && ha {
                ensure_topics(c, &[topics::NFLOG])
                    .await
                    .context("creating the notification log topic")?;
                ensure_topic(c, topics::ALERTING_LEADER)
                    .await
                    .context("creating the alerting election topic")?;
            }
            let publisher: Arc<dyn Publisher> = Arc::new(KafkaPublisher::new(c)?);
            let feedback: Option<Box<dyn Subscriber>> = if config.runs(Role::Analyze) {
                let group = format!("{}-feedback-{}", c.group_id, process_name(config));
                Some(Box::new(KafkaSubscriber::new(
                    c,
                    Some(&group),
                    &[topics::FEEDBACK],
                )?))
            } else {
                None
            };
            let metrics: Option<Box<dyn Subscriber>> = if config.runs(Role::Analyze) {
                Some(Box::new(KafkaSubscriber::new(
                    c,
                    None,
                    &[topics::METRICS, topics::LOGS],
                )?))
            } else {
                None
            };
            let alerts: Option<Box<dyn Subscriber>> = if ha {
                // Every replica reads every alert, the leader's log and
                // (for incidents) every anomaly event, in a group of its own.
                let group = format!("{}-alerting-{}", c.group_id, config.alerting.ha.peer);
                let mut read = vec![topics::ALERTS, topics::NFLOG];
                if config.alerting.incidents.enabled {
                    read.push(topics::ANOMALIES);
                }
                Some(Box::new(KafkaSubscriber::new(c, Some(&group), &read)?))
            } else if config.runs(Role::Alert) {
                let group = format!("{}-alerting", c.group_id);
                Some(Box::new(KafkaSubscriber::new(
                    c,
                    Some(&group),
                    &[topics::ALERTS],
                )?))
            } else {
                None
            };
            let peers = if ha {
                let leadership = vigie_bus::Leadership::kafka(
                    c,
                    &format!("{}-alerting", c.group_id),
                    &config.alerting.ha.peer,
                    topics::ALERTING_LEADER,
                    config.alerting.ha.session_timeout,
                )
                .context("joining the alerting election (alerting.ha)")?;
                info!(peer = %config.alerting.ha.peer, "alerting high availability: every replica reads all alerts, the elected one sends");
                Some(vigie_alerting::ha::Peers {
                    peer: config.alerting.ha.peer.clone(),
                    leadership,
                    publisher: publisher.clone(),
                })
            } else {
                None
            };
            let actions: Option<Box<dyn Subscriber>> =
                if config.runs(Role::Alert) && !config.action.is_empty() {
                    let group = format!("{}-actions", c.group_id);
                    Some(Box::new(KafkaSubscriber::new(
                        c,
                        Some(&group),
                        &[topics::ALERTS],
                    )?))
                } else {
                    None
                };
            Ok(Bus {
                publisher,
                metrics,
                alerts,
                actions,
                peers,
                feedback,
            })
        }
    }
}

async fn metrics_handler() -> impl IntoResponse {
    let families = prometheus::gather();
    let mut body = String::new();
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, &mut body) {
        warn!(error = %e, "cannot encode own metrics");
    }
    ([(CONTENT_TYPE, prometheus::TEXT_FORMAT)], body)
}

fn register_build_info() {
    if let Ok(g) = prometheus::register_int_gauge_vec!(
        "vigie_build_info",
        "Vigie's version; always 1.",
        &["version"]
    ) {
        g.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Without an API token, the address to listen on: `listen` if it is a
/// loopback address, else 127.0.0.1 on the same port.
fn loopback_only(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    if listen.ip().is_loopback() {
        listen
    } else {
        std::net::SocketAddr::from(([127, 0, 0, 1], listen.port()))
    }
}

/// This process's name among Vigie's processes: `[alerting.ha] peer` if
/// set, else `<hostname>-<http port>` (unique per host and port).
fn process_name(config: &Config) -> String {
    if !config.alerting.ha.peer.is_empty() {
        return config.alerting.ha.peer.clone();
    }
    let port = config.http.listen.port();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "vigie".to_string());
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{host}-{port}")
}

/// With Kafka, alerting's subscription plus `vigie.anomalies` in a consumer
/// group of this process's own (`alerting.incidents.consumer_group`), so
/// every alerting process sees every anomaly event; the memory bus
/// subscription already has it.
fn with_anomalies(
    config: &Config,
    alerts: Box<dyn Subscriber>,
) -> anyhow::Result<Box<dyn Subscriber>> {
    let incidents = &config.alerting.incidents;
    // In high availability the replica's own group already reads them.
    if config.bus.kind != BusKind::Kafka || !incidents.enabled || config.alerting.ha.enabled {
        return Ok(alerts);
    }
    let group = incidents.consumer_group.clone().unwrap_or_else(|| {
        vigie_alerting::incident::default_consumer_group(
            &config.bus.group_id,
            &process_name(config),
        )
    });
    info!(%group, "reading vigie.anomalies for incidents");
    let anomalies = KafkaSubscriber::new(&config.bus, Some(&group), &[topics::ANOMALIES])
        .context("subscribing to vigie.anomalies (alerting.incidents.consumer_group)")?;
    Ok(Box::new(vigie_alerting::incident::Merged::new(
        alerts,
        Box::new(anomalies),
        &[topics::ANOMALIES],
    )))
}

/// Runs Vigie until SIGINT/SIGTERM.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    register_build_info();
    // State-changing endpoints need the token when there is one; without
    // one, only local users can reach Vigie.
    let token = match &config.api.token_file {
        Some(path) => Some(
            vigie_alerting::ApiToken::from_file(path)
                .context("reading the API token (api.token_file)")?,
        ),
        None => None,
    };
    if token.is_some() {
        info!(listen = %config.http.listen, "state-changing HTTP endpoints require the bearer token of api.token_file");
    } else {
        let local = loopback_only(config.http.listen);
        if local != config.http.listen {
            warn!(configured = %config.http.listen, listen = %local,
                  "no api.token_file: listening on 127.0.0.1 only; set [api] token_file to listen on other addresses");
        } else {
            info!(listen = %local, "no api.token_file: listening on the loopback interface only, state-changing endpoints open to local users");
        }
        config.http.listen = local;
    }
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (http.listen)", config.http.listen))?;
    if config.alerting.ha.enabled && config.alerting.ha.peer.is_empty() {
        config.alerting.ha.peer = process_name(&config);
    }
    let bus = connect_bus(&config).await?;

    let collect_stop = CancellationToken::new();
    let analyze_stop = CancellationToken::new();
    let alert_stop = CancellationToken::new();
    let http_stop = CancellationToken::new();

    let mut app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }));
    let emitter = Arc::new(
        Emitter::new(bus.publisher.clone(), config.bus.partitions)
            .with_publish_timeout(config.bus.publish_timeout),
    );
    let scrape_targets = Arc::new(vigie_ingest::Targets::new());
    if config.runs(Role::Collect) {
        app = app.merge(vigie_ingest::remote_write::router(emitter.clone()));
        app = app.merge(vigie_ingest::targets::router(scrape_targets.clone()));
    }

    // Analyzer: storage, scoring, rules, query API.
    let mut analyzer_task = None;
    let mut rules_task = None;
    let mut summary = None;
    if config.runs(Role::Analyze) {
        let storage = Arc::new(
            Storage::open_with(
                &config.analyzer.storage,
                &config.data_dir,
                config.analyzer.zstd_level,
            )
            .context("opening storage (data_dir, analyzer.storage)")?,
        );
        storage.set_compaction_zstd_level(config.analyzer.compaction_zstd_level);
        // Alerting's notification history, as SQL table `notifications`
        // (read from the data dir, so it works with alerting elsewhere on
        // the same disk too).
        let history = vigie_alerting::history::History::open(&config.data_dir);
        storage.add_table(
            "notifications",
            Arc::new(move || {
                history
                    .record_batch()
                    .map(|b| (b.schema(), vec![b]))
                    .map_err(|e| e.to_string())
            }),
        );
        // The remediation audit log, as SQL table `actions`.
        let actions_log = vigie_alerting::actions::audit_path(&config.data_dir);
        storage.add_table(
            "actions",
            Arc::new(move || {
                vigie_alerting::actions::read_batch(&actions_log)
                    .map(|b| (b.schema(), vec![b]))
                    .map_err(|e| e.to_string())
            }),
        );
        let groups = load_paths(&config.rules.files, config.rules.interval)
            .context("loading rule files (rules.files)")?;
        let rule_count: usize = groups.iter().map(|g| g.rule_count()).sum();
        info!(groups = groups.len(), rules = rule_count, "rules loaded");
        let manager = Arc::new(
            RuleManager::new(
                groups,
                storage.clone(),
                bus.publisher.clone(),
                config.rules.lookback,
                config.rules.resend_delay,
                config.alerting.external_url.clone(),
            )
            .with_state_file(config.data_dir.join("state").join("alerts.cbor"))
            .with_sources(config.rules.files.clone(), config.rules.interval),
        );
        let restored = manager
            .restore_state()
            .await
            .context("reading saved alert state (data_dir/state/alerts.cbor)")?;
        if restored > 0 {
            info!(alerts = restored, "restored pending and firing alerts");
        }
        let mut analyzer = Analyzer::new(
            config.analyzer.clone(),
            storage.clone(),
            bus.publisher.clone(),
        )
        .with_checkpoint(config.data_dir.join("state").join("detectors.cbor"))
        .with_anomaly_events(bus.publisher.clone());
        if bus.feedback.is_some() {
            analyzer = analyzer.with_feedback_bus(bus.publisher.clone(), process_name(&config));
        }
        let analyzer = Arc::new(analyzer);
        if let Some(feedback) = bus.feedback {
            tokio::spawn(
                analyzer
                    .clone()
                    .run_shared_feedback(feedback, analyze_stop.clone()),
            );
        }
        let series = analyzer
            .restore()
            .await
            .context("reading stored series (data_dir)")?;
        info!(series, "restored per-series watermarks from storage");
        let subscriber = bus
            .metrics
            .context("the analyzer role needs a metrics subscription")?;
        analyzer_task = Some(tokio::spawn(
            analyzer.clone().run(subscriber, analyze_stop.clone()),
        ));
        rules_task = Some(tokio::spawn(manager.clone().run(analyze_stop.clone())));
        tokio::spawn(reload_on_sighup(manager.clone(), analyze_stop.clone()));
        app = app
            .merge(vigie_analyzer::http::router(
                storage.clone(),
                manager.clone(),
            ))
            .merge(vigie_analyzer::http::analyzer_router(analyzer.clone()));
        summary = Some(tokio::spawn(log_summary(
            analyzer,
            manager,
            analyze_stop.clone(),
        )));
    }

    // Alerting.
    let mut alerting_task = None;
    if config.runs(Role::Alert) {
        let subscriber = bus
            .alerts
            .context("the alert role needs an alerts subscription")?;
        let subscriber = with_anomalies(&config, subscriber)?;
        let alerting = config.alerting.clone();
        let stop = alert_stop.clone();
        // Alertmanager API v2 (amtool, Prometheus) shares the loop's state.
        let (api, task) = vigie_alerting::start_with_peers(
            alerting,
            Some(&config.data_dir),
            subscriber,
            stop,
            bus.peers.clone(),
        )
        .context("starting alerting (alerting, data_dir)")?;
        app = app.merge(api);
        alerting_task = Some(tokio::spawn(async move {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "alerting stopped"),
                Err(e) => tracing::error!(error = %e, "alerting task failed"),
            }
        }));
    }

    // Remediation actions: their own subscription to vigie.alerts.
    let mut actions_task = None;
    if let Some(subscriber) = bus.actions {
        let audit = vigie_alerting::actions::AuditLog::open(vigie_alerting::actions::audit_path(
            &config.data_dir,
        ))
        .context("opening the action audit log (data_dir/state/actions.jsonl)")?;
        let engine = vigie_alerting::actions::ActionEngine::new(
            &config.action,
            audit,
            Some(bus.publisher.clone()),
        )
        .context("starting actions (action)")?;
        app = app.merge(vigie_alerting::actions::router(engine.clone()));
        actions_task = Some(tokio::spawn(engine.run(subscriber, alert_stop.clone())));
    }

    // Syslog receivers bind before HTTP answers, so a ready Vigie listens.
    let mut syslog = Vec::new();
    if config.runs(Role::Collect) {
        syslog = vigie_ingest::spawn_syslog(&config.syslog, emitter.clone(), collect_stop.clone())
            .await
            .context("starting syslog receivers (syslog)")?;
    }

    // HTTP.
    let app = vigie_alerting::protect(app, token);
    let http_token = http_stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_token.cancelled().await })
            .await
    });
    info!(
        listen = %config.http.listen,
        data_dir = %config.data_dir.display(),
        bus = ?config.bus.kind,
        roles = ?config.roles,
        "vigie is running: try  curl -s http://{}/api/v1/sql -d '{{\"query\":\"SELECT metric, count(*) FROM samples GROUP BY metric ORDER BY 2 DESC LIMIT 10\"}}'",
        config.http.listen
    );

    // Collectors.
    let mut collectors = syslog;
    if config.runs(Role::Collect) {
        let tail_state =
            vigie_ingest::tail::Checkpoints::load(config.data_dir.join("state").join("tail.json"));
        collectors.extend(vigie_ingest::spawn_tails(
            &config.logs,
            emitter.clone(),
            collect_stop.clone(),
            Some(Arc::new(tail_state)),
        ));
        // Interop topics (needs Kafka; check-config says so).
        if !config.interop.is_empty() {
            collectors.extend(
                vigie_ingest::spawn_interop(
                    &config.interop,
                    &config.bus,
                    emitter.clone(),
                    bus.publisher.clone(),
                    collect_stop.clone(),
                )
                .context("starting interop consumers (interop)")?,
            );
        }
        collectors.extend(vigie_ingest::spawn_collectors_with_targets(
            &config.scrape_jobs(),
            &config.host,
            emitter,
            collect_stop.clone(),
            scrape_targets,
        ));
    }

    shutdown_signal().await;
    info!("shutting down: collectors, then analyzer flush, then alerting");
    collect_stop.cancel();
    for c in collectors {
        let _ = c.await;
    }
    let _ = bus.publisher.flush(Duration::from_secs(10)).await;
    analyze_stop.cancel();
    if let Some(t) = analyzer_task {
        let _ = t.await;
    }
    if let Some(t) = rules_task {
        let _ = t.await;
    }
    if let Some(t) = summary {
        let _ = t.await;
    }
    let _ = bus.publisher.flush(Duration::from_secs(10)).await;
    alert_stop.cancel();
    if let Some(t) = alerting_task {
        let _ = t.await;
    }
    if let Some(t) = actions_task {
        let _ = t.await;
    }
    http_stop.cancel();
    server.await??;
    info!("stopped");
    Ok(())
}

/// Re-reads the rule files on SIGHUP, as Prometheus does.
async fn reload_on_sighup(rules: Arc<RuleManager>, stop: CancellationToken) {
    #[cfg(unix)]
    {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGHUP; use POST /-/reload");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = hup.recv() => {
                    // Errors are logged and counted by reload() itself.
                    let _ = rules.reload().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (rules, stop);
}

/// Logs what Vigie holds once a minute, so a terminal shows progress.
async fn log_summary(analyzer: Arc<Analyzer>, rules: Arc<RuleManager>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let alerts = rules.alerts().await;
        let firing = alerts
            .iter()
            .filter(|a| a.state == vigie_model::AlertState::Firing)
            .count();
        info!(
            series = analyzer.series_count(),
            head_rows = analyzer.storage.head_rows(),
            parquet_files = analyzer.storage.files().len(),
            alerts_firing = firing,
            alerts_pending = alerts.len() - firing,
            "status"
        );
    }
}
