//! `imdsguard serve`: Elasticsearch-compatible ingest with the rules running as events arrive,
//! alerts in the embedded store, and the alerts/rules API (see `imdsguard-server`).

use crate::load::{field_table, load_rules, render_load_error};
use crate::FieldOpts;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (an Elasticsearch output points here: `hosts: ["http://ADDR"]`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9200")]
    pub listen: SocketAddr,
    /// File of accepted API keys' SHA-256 (lower-case hex, one per line; `#` comments). Clients
    /// send `Authorization: ApiKey <key>`. Make a hash with `printf %s "$KEY" | sha256sum`.
    #[arg(long, value_name = "FILE")]
    pub api_key_hashes: Option<PathBuf>,
    /// Accept requests without an API key; only allowed when listening on loopback.
    #[arg(long)]
    pub no_auth: bool,
    /// Largest request body in bytes (larger ones get 413).
    #[arg(long, value_name = "BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Batches processed at once; beyond it requests get 429 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_inflight: usize,
    /// Alerts database (SQLite, WAL); alerts are written here before a request is acknowledged.
    #[arg(long, value_name = "FILE", default_value = "imdsguard-alerts.db")]
    pub alerts_db: String,
    /// new_terms history (SQLite); `:memory:` keeps nothing.
    #[arg(long, value_name = "FILE", default_value = "imdsguard-state.db")]
    pub state: String,
    /// Rule files or directories added to the built-in pack (reloaded by POST /api/rules/_reload).
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    #[arg(long)]
    pub no_builtin: bool,
    /// Serve HTTPS (rustls) with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub fields: FieldOpts,
}

fn db(s: &str) -> Option<PathBuf> {
    (s != ":memory:").then(|| PathBuf::from(s))
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let table = field_table(&args.fields)?;
    let (rules, errors) = load_rules(&args.rules, args.no_builtin);
    for e in &errors {
        eprint!("{}", render_load_error(e));
    }
    let api_key_hashes = match &args.api_key_hashes {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split_whitespace().next().unwrap_or(l).to_string())
            .collect(),
        None => Vec::new(),
    };
    let (paths, no_builtin) = (args.rules.clone(), args.no_builtin);
    let reload: imdsguard_server::Reloader = Arc::new(move || {
        let (rules, errors) = load_rules(&paths, no_builtin);
        let fatal: Vec<String> = errors.iter().filter(|e| e.is_error()).map(|e| e.render()).collect();
        if fatal.is_empty() {
            Ok(rules)
        } else {
            Err(format!("{} rule file(s) failed to load:\n{}", fatal.len(), fatal.join("")))
        }
    });
    let config = imdsguard_server::ServerConfig {
        listen: args.listen,
        api_key_hashes,
        no_auth: args.no_auth,
        max_body_bytes: args.max_body_bytes,
        max_inflight: args.max_inflight,
        table,
        rules,
        reload: Some(reload),
        alerts_db: db(&args.alerts_db),
        state_db: db(&args.state),
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(imdsguard_server::TlsFiles { cert, key }),
            _ => None,
        },
    };
    let tls = config.tls.is_some();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let shutdown = async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        return;
                    }
                };
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
        };
        let running = imdsguard_server::start(config, shutdown).await.map_err(|e| anyhow::anyhow!(e))?;
        for r in &running.not_run {
            eprintln!("rule not run: {r}");
        }
        let scheme = if tls { "https" } else { "http" };
        println!("listening on {scheme}://{}", running.addr);
        eprintln!("imdsguard serve: Elasticsearch-compatible ingest at {scheme}://{0} (POST /_bulk), alerts at {scheme}://{0}/api/alerts", running.addr);
        running.task.await.map_err(|e| anyhow::anyhow!("server task: {e}"))??;
        eprintln!("imdsguard serve: stopped (in-flight batches finished)");
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}
