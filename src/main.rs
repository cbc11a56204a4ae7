//! The `vigie` command: CLI parsing and wiring only; every stage lives in
//! its own crate (see docs/ARCHITECTURE.md).

mod actions_cli;
mod alerts;
mod api_client;
mod backtest;
mod config;
mod replay;
mod run;
mod sql;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, Role};

/// jemalloc rather than the system allocator: scoring allocates an output
/// key per point, and glibc's malloc spent 40 % of the scoring time on
/// them over 100,000 series (see BENCHMARKS.md, "Detector updates").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Vigie: predictive monitoring — collect metrics, store them as Arrow and
/// Parquet, score every series for anomalies, evaluate Prometheus rules,
/// and page people before users notice.
#[derive(Parser)]
#[command(name = "vigie", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Vigie. Without --config: one process, in-process bus, data under
    /// ./vigie-data, HTTP on 127.0.0.1:9464, host metrics every 10s, rules
    /// from ./rules.
    Run {
        /// TOML configuration file (see README.md for an example).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Run only these roles (overrides `roles` in the file); splitting
        /// roles across processes needs the Kafka bus.
        #[arg(long, value_enum, value_delimiter = ',')]
        roles: Option<Vec<Role>>,
    },
    /// Check a configuration file and its rule files; print every problem
    /// with the file, the key and the fix. Exit status 1 on any problem.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// Run SQL on a running Vigie (tables: samples) and print a table.
    Sql {
        /// The query, e.g. "SELECT metric, count(*) FROM samples GROUP BY 1".
        query: String,
        /// Vigie's HTTP address.
        #[arg(long, default_value = "http://127.0.0.1:9464")]
        url: String,
        /// Print the JSON answer instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replay one series (a CSV file or a stored series) through the
    /// detector and forecaster: print when alerts would have fired and how
    /// honest the forecast band was, and draw it all as SVG.
    Backtest(replay::Options),
    /// Measure quality on public labelled data (NAB, Loghub, BGL alerts).
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Check Prometheus rule files, run their unit tests (promtool's
    /// formats) and backtest them over history.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Act on the alerts of a running Vigie.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Approve or deny remediation actions waiting for approval
    /// (`require_approval`; `GET /api/v1/actions` lists them).
    #[command(subcommand)]
    Actions(ActionsCommand),
}

/// Which Vigie a state-changing CLI command talks to, and as whom.
#[derive(clap::Args)]
struct Caller {
    /// Vigie's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:9464")]
    url: String,
    /// File holding the API token (Vigie's api.token_file setting).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Who acts (default: $USER).
    #[arg(long)]
    by: Option<String>,
}

/// Which pending action `vigie actions` decides.
#[derive(clap::Args)]
struct Decision {
    /// The pending action's id (`GET /api/v1/actions`).
    id: String,
    #[command(flatten)]
    caller: Caller,
}

#[derive(Subcommand)]
enum ActionsCommand {
    /// Approve a pending action: it runs now.
    Approve(Decision),
    /// Deny a pending action: it does not run.
    Deny(Decision),
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Acknowledge an alert group: no more notifications about it until it
    /// resolves (the resolution is still sent). ID is a group key (as in
    /// notifications) or an alert fingerprint (every group it is in).
    Ack {
        /// Group key or alert fingerprint.
        id: String,
        #[command(flatten)]
        caller: Caller,
        /// Why, or what is being done.
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Run rule unit tests written for `promtool test rules`. Exit status 1
    /// when any test fails.
    Test {
        /// Unit-test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check rule files: every syntax and semantic error with file, line,
    /// group and rule. Exit status 1 on any error.
    Check {
        /// Rule files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Evaluate rule files over stored history and report when each alert
    /// would have gone pending, fired and resolved, how often and for how
    /// long, before the rules page anyone.
    Backtest {
        /// Rule files or directories.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Start: RFC 3339 (2026-11-28T10:00:00Z), Unix seconds, or -6h.
        #[arg(long, allow_hyphen_values = true)]
        from: String,
        /// End, same forms.
        #[arg(long, allow_hyphen_values = true, default_value = "now")]
        to: String,
        /// Vigie's HTTP address (any Prometheus-compatible API works).
        #[arg(long, default_value = "http://127.0.0.1:9464")]
        url: String,
        /// Evaluate every group at this step instead of its interval.
        #[arg(long, value_parser = humantime::parse_duration)]
        step: Option<std::time::Duration>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Score Vigie's anomaly detector on the Numenta Anomaly Benchmark.
    Nab {
        /// NAB data: `<category>/<file>.csv`, `combined_windows.json`, `profiles.json`.
        #[arg(long)]
        data: PathBuf,
        /// Write NAB's results format here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Score Vigie's log template miner on Loghub-2k.
    Loghub {
        /// Loghub data: `<System>/<System>_2k.log` and `_2k.log_structured.csv`.
        #[arg(long)]
        data: PathBuf,
        /// TOML file `System = "<header format>"` for other systems.
        #[arg(long)]
        formats: Option<PathBuf>,
        /// Write predicted `<System>_2k.log_structured.csv` files here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Precision and recall of Vigie's log alerting signals (new template,
    /// error level, rate anomaly) on Loghub's labelled BGL sample.
    Bgl {
        /// Loghub data: `BGL/BGL_2k.log`.
        #[arg(long)]
        data: PathBuf,
        /// Anomaly score above which a template's rate is an anomaly.
        #[arg(long, default_value_t = vigie_analyzer::eval::bgl::DEFAULT_THRESHOLD)]
        threshold: f64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn eval(command: EvalCommand) -> anyhow::Result<()> {
    use vigie_analyzer::eval::{bgl, loghub, nab};
    match command {
        EvalCommand::Nab { data, out, json } => {
            let report = nab::run(&nab::NabOptions { data, out })?;
            if json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
        }
        EvalCommand::Loghub {
            data,
            formats,
            out,
            json,
        } => {
            let report = loghub::run(&loghub::LoghubOptions { data, formats, out })?;
            if json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
        }
        EvalCommand::Bgl {
            data,
            threshold,
            json,
        } => {
            let report = bgl::run(&bgl::BglOptions { data, threshold })?;
            if json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
        }
    }
    Ok(())
}

/// `vigie rules ...`: Ok(true) when everything passed.
fn rules(command: RulesCommand) -> anyhow::Result<bool> {
    use vigie_analyzer::rules::{check_files, unittest};
    match command {
        RulesCommand::Test { files } => {
            block_on(async { Ok(unittest::run_and_print(&files).await) })
        }
        RulesCommand::Check { files } => Ok(check_files(&files)),
        RulesCommand::Backtest {
            files,
            from,
            to,
            url,
            step,
            json,
        } => {
            let options = backtest::Options {
                files,
                from,
                to,
                url,
                step,
                json,
            };
            block_on(backtest::run(options))?;
            Ok(true)
        }
    }
}

fn init_tracing() {
    let filter = EnvFilter::try_from_env("VIGIE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,datafusion=warn,rdkafka=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn default_config() -> Config {
    let mut c = Config::default();
    if std::path::Path::new("rules").is_dir() {
        c.rules.files = vec![PathBuf::from("rules")];
    }
    c
}

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    let config = config::load_checked(file)?;
    let groups = vigie_analyzer::rules::load_paths(&config.rules.files, config.rules.interval)?;
    let rules: usize = groups.iter().map(|g| g.rule_count()).sum();
    // With alertmanager_config, receivers and routes come from that file.
    let alerting = config.alerting.resolve()?;
    println!(
        "{}: OK ({} scrape job(s), {} rule group(s), {} rule(s), {} receiver(s), {} route(s))",
        file.display(),
        config.scrape.len(),
        groups.len(),
        rules,
        alerting.config.receivers.len(),
        alerting.routing.routes.len()
    );
    for warning in &alerting.warnings {
        println!("  note: alerting.alertmanager_config: {warning}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Eval(command) => eval(command),
        Command::Backtest(options) => block_on(replay::run(options)),
        Command::Sql { query, url, json } => block_on(sql::run(&url, &query, json)),
        Command::Alerts(AlertsCommand::Ack {
            id,
            caller,
            comment,
        }) => block_on(alerts::ack(
            &caller.url,
            &id,
            caller.token_file.as_deref(),
            caller.by,
            comment,
        )),
        Command::Actions(command) => {
            let (approve, d) = match command {
                ActionsCommand::Approve(d) => (true, d),
                ActionsCommand::Deny(d) => (false, d),
            };
            block_on(actions_cli::decide(
                &d.caller.url,
                &d.id,
                approve,
                d.caller.token_file.as_deref(),
                d.caller.by,
            ))
        }
        Command::Rules(command) => match rules(command) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Run { config, roles } => {
            init_tracing();
            let loaded = match &config {
                Some(path) => config::Config::load(path).map(|c| (c, path.display().to_string())),
                None => Ok((default_config(), "built-in defaults".to_string())),
            };
            loaded
                .and_then(|(mut c, origin)| {
                    if let Some(r) = roles {
                        c.roles = r;
                    }
                    config::check(&c, &origin)?;
                    Ok(c)
                })
                .and_then(|c| {
                    tokio::runtime::Builder::new_multi_thread()
                        .enable_all()
                        .build()?
                        .block_on(run::run(c))
                })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `f` to completion on a single-threaded runtime (the CLI's
/// client commands).
fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}
