//! `imdsguard`: the command-line front end. It parses arguments, calls the libraries, renders
//! results and diagnostics, and maps failures to exit codes; it holds no detection logic.

mod baseline;
mod cmd_audit;
mod cmd_bench;
mod cmd_consume;
mod cmd_decode;
mod cmd_hunt;
mod cmd_imds_mock;
mod cmd_rules;
mod cmd_rules_test;
mod cmd_search;
mod cmd_serve;
mod cmd_sensor;
mod cmd_simulate;
mod exceptions;
mod load;
mod output;
mod signals;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "imdsguard", version, about = "Detect cloud instance metadata credential theft (MITRE T1552.005) with Elastic's detection rules, offline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run detection rules over ECS events and print the alerts.
    Hunt(cmd_hunt::HuntArgs),
    /// Decode packet captures (pcap, pcapng) into ECS events: HTTP to metadata services, IMDSv1/v2;
    /// and raw Linux audit logs into Auditbeat-shaped ECS events.
    Decode(cmd_decode::DecodeArgs),
    /// Print the events matching a query.
    Search(cmd_search::SearchArgs),
    /// Measure throughput of the pipeline's stages on an NDJSON file.
    Bench(cmd_bench::BenchArgs),
    /// Audit IMDSv2 posture: instances, launch templates, Auto Scaling groups, account defaults, Terraform and CloudFormation that still allow IMDSv1.
    Audit(cmd_audit::AuditArgs),
    /// Serve a faithful mock of the AWS (IMDSv1/v2, ECS), GCP and Azure metadata services on loopback.
    ImdsMock(cmd_imds_mock::ImdsMockArgs),
    /// Serve Elasticsearch-compatible ingest (rules run as events arrive) and the alerts API.
    Serve(cmd_serve::ServeArgs),
    /// Consume ECS events from Kafka as a consumer-group member; alerts written durably before offsets are committed.
    Consume(cmd_consume::ConsumeArgs),
    /// Live Linux sensor: metadata traffic from an AF_PACKET socket, attributed to processes, run
    /// through the rules in-process (root or CAP_NET_RAW + CAP_SYS_PTRACE).
    Sensor(cmd_sensor::SensorArgs),
    /// Prove the detections: seed 002's Atomic Red Team tests for T1552.005 (AWS IMDSv1/v2, Azure,
    /// GCP, SSRF) and benign look-alikes, run in isolated network namespaces against the mock with
    /// the live sensor watching; a verdict per test (root).
    Simulate(cmd_simulate::SimulateArgs),
    /// List, show and validate detection rules.
    Rules {
        #[command(subcommand)]
        command: cmd_rules::RulesCommand,
    },
}

/// Output format for alerts and events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Ndjson,
    Json,
    Csv,
}

/// Options shared by commands that read events.
#[derive(clap::Args, Clone, Debug)]
pub struct FieldOpts {
    /// Elasticsearch index mapping (`GET <index>/_mapping` JSON) typing fields beyond ECS. Repeatable.
    #[arg(long = "mapping", value_name = "FILE")]
    pub mappings: Vec<PathBuf>,
}

/// mimalloc instead of glibc's allocator: the capture decoder's many short-lived buffers made
/// glibc spend up to a fifth of the decode time consolidating free chunks (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IMDSGUARD_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .without_time()
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hunt(a) => cmd_hunt::run(a),
        Command::Search(a) => cmd_search::run(a),
        Command::Bench(a) => cmd_bench::run(a),
        Command::Decode(a) => cmd_decode::run(a),
        Command::Audit(a) => cmd_audit::run(a),
        Command::Rules { command } => cmd_rules::run(command),
        Command::Serve(a) => cmd_serve::run(a),
        Command::Consume(a) => cmd_consume::run(a),
        Command::ImdsMock(a) => cmd_imds_mock::run(a),
        Command::Sensor(a) => cmd_sensor::run(a),
        Command::Simulate(a) => cmd_simulate::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
