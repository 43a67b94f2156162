//! `imdsguard imds-mock`: serve the metadata-service mock (imdsguard-mock) until interrupted.

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use imdsguard_mock::{HttpEndpoint, HttpTokens, Limits, MockConfig, Providers, RequestLog, Secrets, Server, Settings, State, SystemClock};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const CONFIG_HELP: &str = "\
CONFIG FILE (--config, TOML; every key is optional and defaults to a fake demo instance):
  [aws]    instance_id, ami_id, instance_type, region, availability_zone, availability_zone_id,
           account_id, hostname, local_ipv4, public_ipv4 (\"\" = no public address),
           public_hostname, mac, interface_id, vpc_id, vpc_cidr, subnet_id, subnet_cidr,
           security_group, security_group_id, reservation_id,
           role_name (\"\" = no instance profile), instance_profile_id, user_data (\"\" = none)
  [ecs]    credentials_id (the <id> of /v2/credentials/<id>), task_role_arn
  [gcp]    project_id, numeric_project_id, instance_id, instance_name, zone, machine_type,
           hostname, internal_ip, service_account_email (\"\" = <number>-compute@...),
           scopes (list), [gcp.instance_attributes], [gcp.project_attributes] (key = value)
  [azure]  subscription_id, resource_group, vm_id, vm_name, location, vm_size, private_ip, mac,
           tenant_id, client_id (the managed identity)

PATHS (routed by path on every listen address):
  AWS    /latest/api/token (PUT), /latest/meta-data/..., /latest/user-data, /latest/dynamic/...
  ECS    /v2/credentials/<credentials_id>
  GCP    /computeMetadata/v1/...            (needs Metadata-Flavor: Google)
  Azure  /metadata/instance, /metadata/identity/oauth2/token  (need Metadata: true, api-version)

Credentials and tokens are fake (ASIAEXAMPLE..., ya29.EXAMPLE..., unsigned JWTs) and generated per
run. Nothing is ever proxied. Every request is logged as one JSON line (stderr or --log FILE).

EXAMPLE:
  imdsguard imds-mock &
  TOKEN=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://127.0.0.1:1338/latest/api/token)
  curl -s -H \"X-aws-ec2-metadata-token: $TOKEN\" http://127.0.0.1:1338/latest/meta-data/iam/security-credentials/";

/// Serve a faithful mock of the AWS (IMDSv1/v2, ECS), GCP and Azure metadata services.
#[derive(clap::Args, Debug)]
#[command(after_long_help = CONFIG_HELP)]
pub struct ImdsMockArgs {
    /// Address to listen on, repeatable (IPv4 or IPv6, e.g. [::1]:1338; port 0 picks a free port).
    /// The bound addresses are printed on stdout at startup. [default: 127.0.0.1:1338]
    #[arg(long = "listen", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// Permit non-loopback listen addresses (e.g. 169.254.169.254 or fd00:ec2::254 assigned to an
    /// interface). Anyone who can reach such an address gets the mock's fake credentials; a warning is printed.
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// HttpTokens: `optional` answers IMDSv1 and IMDSv2; `required` answers 401 to requests without a
    /// valid session token (IMDSv2 only).
    #[arg(long, value_enum, default_value_t = TokensArg::Optional)]
    pub http_tokens: TokensArg,
    /// HttpEndpoint: `disabled` answers 403 to every AWS IMDS request (GCP, Azure and ECS are unaffected).
    #[arg(long, value_enum, default_value_t = EndpointArg::Enabled)]
    pub http_endpoint: EndpointArg,
    /// HttpPutResponseHopLimit: the IP TTL (IPv6 hop limit) the token PUT response is sent with, 1-64.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub hop_limit: u8,
    /// Which services to answer for; with `all`, requests are routed by path.
    #[arg(long, value_enum, default_value_t = ProviderArg::All)]
    pub provider: ProviderArg,
    /// Instance data (TOML; see the CONFIG FILE section of --help).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write the request log (one JSON line per request) to FILE (appended) instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Connections served at once; more clients wait in the listen backlog.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_connections: usize,
    /// Seconds a client has to send a complete request (and to read the response).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
    /// Worker threads of the server.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub threads: usize,
    /// Wait this many milliseconds before answering each request (0-60000; default 0), like a
    /// slow service: clients keep their connection open meanwhile (`imdsguard simulate` uses it
    /// so the sensor's /proc fallback always finds the client process).
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub response_delay_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokensArg {
    Optional,
    Required,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EndpointArg {
    Enabled,
    Disabled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProviderArg {
    Aws,
    Gcp,
    Azure,
    All,
}

pub fn run(args: ImdsMockArgs) -> Result<ExitCode> {
    let listen: Vec<SocketAddr> =
        if args.listen.is_empty() { vec![imdsguard_mock::DEFAULT_LISTEN.parse().context("default listen address")?] } else { args.listen.clone() };
    let outside: Vec<&SocketAddr> = listen.iter().filter(|a| !a.ip().is_loopback()).collect();
    if !outside.is_empty() {
        let list = outside.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
        if !args.allow_non_loopback {
            bail!("refusing to listen on non-loopback address {list}: pass --allow-non-loopback to do it anyway");
        }
        eprintln!("warning: listening on non-loopback address {list}: any host that can reach it gets the mock's (fake) credentials");
    }
    let config = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            MockConfig::from_toml(&text, &p.display().to_string())?
        }
        None => MockConfig::default(),
    };
    let settings = Settings {
        http_tokens: match args.http_tokens {
            TokensArg::Optional => HttpTokens::Optional,
            TokensArg::Required => HttpTokens::Required,
        },
        http_endpoint: match args.http_endpoint {
            EndpointArg::Enabled => HttpEndpoint::Enabled,
            EndpointArg::Disabled => HttpEndpoint::Disabled,
        },
        hop_limit: args.hop_limit,
    };
    let providers = match args.provider {
        ProviderArg::Aws => Providers { aws: true, gcp: false, azure: false },
        ProviderArg::Gcp => Providers { aws: false, gcp: true, azure: false },
        ProviderArg::Azure => Providers { aws: false, gcp: false, azure: true },
        ProviderArg::All => Providers::ALL,
    };
    let log = match &args.log {
        Some(p) => {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(p).with_context(|| format!("opening log {}", p.display()))?;
            RequestLog::new(Box::new(f))
        }
        None => RequestLog::stderr(),
    };
    let secrets = Secrets::generate().map_err(|e| anyhow::anyhow!("no system randomness for the per-run secrets: {e}"))?;
    let ecs_id = config.ecs.credentials_id.clone();
    let state = Arc::new(State::new(config, settings, providers, secrets, Box::new(SystemClock)));
    let limits = Limits {
        max_connections: args.max_connections.max(1),
        read_timeout: Duration::from_secs(args.timeout.max(1)),
        write_timeout: Duration::from_secs(args.timeout.max(1)),
        response_delay: Duration::from_millis(args.response_delay_ms),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads.max(1)).enable_all().build().context("starting the runtime")?;
    rt.block_on(async move {
        let server = Server::bind(&listen, state, log, limits)?;
        let mut out = std::io::stdout().lock();
        for a in server.local_addrs() {
            writeln!(out, "imds-mock listening on http://{a}")?;
        }
        let names: Vec<&str> = [(providers.aws, "aws"), (providers.aws, "ecs"), (providers.gcp, "gcp"), (providers.azure, "azure")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        writeln!(
            out,
            "imds-mock providers: {} · HttpTokens={:?} HttpEndpoint={:?} HttpPutResponseHopLimit={}{}",
            names.join(","),
            settings.http_tokens,
            settings.http_endpoint,
            settings.hop_limit,
            if providers.aws { format!(" · ECS: /v2/credentials/{ecs_id}") } else { String::new() }
        )?;
        out.flush()?;
        drop(out);
        server.run(shutdown_signal()).await;
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
