//! `imdsguard simulate`: seed 002's Atomic Red Team test plan for T1552.005, run for real inside an
//! isolated lab (`imdsguard-lab`), with the live sensor watching, and a verdict per test.
//!
//! Flow: refuse unless root with `ip`, `curl` and `python3` (never touching the host's network) →
//! create the lab (mock namespace holding the metadata addresses, attacker namespace with `lo` and
//! a veth only, `metadata.google.internal` in its hosts file) → start `imdsguard imds-mock` there
//! with a response delay (every client keeps its connection open while the sensor's /proc
//! fallback looks up its owner, so attribution is deterministic) → for each test, one after the
//! other: start a fresh `imdsguard sensor --netns <attacker>` (fresh new_terms history, so a test's
//! expectations do not depend on which tests ran before), wait until it is ready, run the test's
//! commands in the attacker namespace, let the sensor settle, stop it by pid (SIGTERM flushes its
//! last batch), read its alerts and events → keep the alerts that belong to the test (from
//! traffic in the attacker namespace, which only this test uses, or naming a process the test
//! started; the process-start connector sees the whole host, so other hosts' processes are
//! ignored and counted) → compare the rules that fired with the test's expected rule ids, and check
//! the telemetry (every metadata request seen and attributed to the process that made it) → table
//! or JSON; exit 1 when any test failed, 2 when the lab could not be set up, 130 on Ctrl-C.
//! The lab is torn down on every path (Drop), unless `--keep`.

use crate::load::{load_rules, render_load_error};
use anyhow::{bail, Context, Result};
use imdsguard_lab::Lab;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seed 000: Suspicious Instance Metadata Service (IMDS) API Request (new_terms).
pub const SEED_000: &str = "ad02da2f-443d-454c-a12e-d9e6c65831ff";
/// Seed 001: Cloud Instance Metadata Credential Path HTTP Request.
pub const SEED_001: &str = "73dd1f2c-3c24-4e13-a64b-dfd510e9fd98";
/// Seed 002: Detect Cloud Instance Metadata API.
pub const SEED_002: &str = "4e1e6d2a-9b1c-4c2e-8a7b-1d52a005e001";
/// AWS IMDSv1 should not be used (the Datadog-style finding).
pub const IMDSV1: &str = "6f1c2a34-8d3e-4b5a-9c7e-1d2f3a4b5c60";
/// Metadata credential request on GCP, Azure, Alibaba or ECS.
pub const OTHER_CLOUDS: &str = "7a2d3b45-9e4f-4c6b-8d8f-2e3f4a5b6c71";

const STEP_TIMEOUT: Duration = Duration::from_secs(15);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// After a test's last command: the sensor's attribution wait (300 ms) plus a batch (200 ms).
const SETTLE: Duration = Duration::from_millis(700);
const SENSOR_STOP: Duration = Duration::from_secs(20);
const SSRF_PORT: u16 = 8080;
const ROLE_PATH: &str = "/latest/meta-data/iam/security-credentials/";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SimFormat {
    Table,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Run only this test (repeatable; names from --list).
    #[arg(long = "test", value_name = "NAME")]
    pub tests: Vec<String>,
    /// List the tests with what they do and the rule ids each expects, then exit.
    #[arg(long)]
    pub list: bool,
    /// Output: a table, or one JSON document listing per test the alerts with their rule ids.
    #[arg(long, value_enum, default_value_t = SimFormat::Table)]
    pub format: SimFormat,
    /// Leave the namespaces (and the run directory: each test's sensor alerts and events, the
    /// mock's request log) for inspection; the commands that remove them are printed.
    #[arg(long)]
    pub keep: bool,
    /// Rule file or directory for the sensor (repeatable); adds to the built-in pack, or replaces
    /// a built-in rule with the same rule_id.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Do not load the built-in rule pack (with --rules, to run a modified copy of it).
    #[arg(long)]
    pub no_builtin: bool,
    /// How long the mock holds each answer, in milliseconds: clients keep their connection open
    /// meanwhile, so the sensor's /proc fallback always finds them (see docs/simulate.md).
    #[arg(long, value_name = "MS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=5000))]
    pub response_delay_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Attack,
    Benign,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Attack => "attack",
            Kind::Benign => "benign",
        }
    }
}

/// One test of the plan.
struct Def {
    name: &'static str,
    title: &'static str,
    kind: Kind,
    /// Where it comes from (seed 002's Atomic Red Team plan, or the issue's benign look-alikes).
    source: &'static str,
    /// What it does, for the table.
    did: &'static str,
    expected: &'static [&'static str],
    /// Why an expectation is what it is, when not obvious.
    note: &'static str,
    run: fn(&mut Cx) -> Result<()>,
}

fn catalogue() -> Vec<Def> {
    vec![
        Def {
            name: "aws-imdsv1",
            title: "Query AWS instance metadata for IAM credentials (IMDSv1)",
            kind: Kind::Attack,
            source: "Atomic Red Team T1552.005 test 1 (seed 002)",
            did: "curl lists the instance role, then GETs its credentials, without a session token (IMDSv1)",
            expected: &[SEED_000, SEED_001, SEED_002, IMDSV1],
            note: "",
            run: test_aws_imdsv1,
        },
        Def {
            name: "aws-imdsv2",
            title: "Query AWS instance metadata for IAM credentials (IMDSv2)",
            kind: Kind::Attack,
            source: "Atomic Red Team T1552.005 test 1 (seed 002)",
            did: "curl PUTs /latest/api/token, then lists the role and GETs its credentials with the token",
            expected: &[SEED_000, SEED_001, SEED_002],
            note: "IMDSv2 is not the IMDSv1 finding's business; every request carries the token, so no hop-limit fallback either",
            run: test_aws_imdsv2,
        },
        Def {
            name: "azure-managed-identity",
            title: "Query Azure IMDS for a managed-identity token",
            kind: Kind::Attack,
            source: "Atomic Red Team T1552.005 test 2 (seed 002)",
            did: "curl -H Metadata:true GETs /metadata/identity/oauth2/token for https://management.azure.com/",
            expected: &[SEED_000, SEED_001, SEED_002, OTHER_CLOUDS],
            note: "",
            run: test_azure,
        },
        Def {
            name: "gcp-service-account",
            title: "Query GCP instance metadata for a service-account token",
            kind: Kind::Attack,
            source: "Atomic Red Team T1552.005 test 3 (seed 002)",
            did: "curl -H Metadata-Flavor:Google GETs the default service account's token from metadata.google.internal (resolved by the hosts file)",
            expected: &[SEED_000, SEED_002, OTHER_CLOUDS],
            note: "seed 001 matches `*service-accounts/*/oauth2/access_token*`, not GCP's real token path `.../service-accounts/default/token`: it does not fire here (a gap of the seed rule that the other-clouds rule covers)",
            run: test_gcp,
        },
        Def {
            name: "ssrf-web-service",
            title: "Steal cloud credentials through SSRF",
            kind: Kind::Attack,
            source: "Atomic Red Team T1552.005 test 4 (seed 002)",
            did: "a deliberately vulnerable python web service on 127.0.0.1:8080 fetches any ?url=; the attacker's curl (URL read from a file, as if remote) asks it for the role, then its credentials",
            expected: &[SEED_000, SEED_001, SEED_002, IMDSV1],
            note: "the metadata requests must come from the web service's process, never from the attacker's curl",
            run: test_ssrf,
        },
        Def {
            name: "benign-allowlisted-agent",
            title: "An allow-listed agent name reads its instance attributes",
            kind: Kind::Benign,
            source: "benign look-alike (issue 8)",
            did: "google_guest_agent (installed under /opt, like a vendor agent) GETs its instance attributes from metadata.google.internal",
            expected: &[],
            note: "seed 002 allows google_guest_agent; the path is not a credential path; neither its name nor its location is in seed 000's lists",
            run: test_benign_agent,
        },
        Def {
            name: "benign-non-metadata-address",
            title: "A request to a non-metadata address",
            kind: Kind::Benign,
            source: "benign look-alike (issue 8)",
            did: "curl GETs /latest/ from 169.254.169.253, the link-local neighbour of the metadata service (AWS's VPC resolver address)",
            expected: &[],
            note: "the rules match 169.254.169.254 exactly; the sensor must still have seen curl start",
            run: test_benign_non_metadata,
        },
        Def {
            name: "benign-imdsv2-allowed-process",
            title: "An IMDSv2 credentials request from a process the rules allow",
            kind: Kind::Benign,
            source: "benign look-alike (issue 8)",
            did: "amazon-ssm-agent (installed under /opt) takes an IMDSv2 token and reads its role's credentials with its SDK user agent",
            expected: &[],
            note: "seed 002 allows amazon-ssm-agent; IMDSv2; an SDK user agent is not one of seed 001's tool-like agents",
            run: test_benign_imdsv2,
        },
    ]
}

/// A short label for a rule in the table.
fn rule_label(id: &str, names: &BTreeMap<String, String>) -> String {
    match id {
        SEED_000 => "seed 000 Suspicious IMDS API Request".into(),
        SEED_001 => "seed 001 Credential Path HTTP Request".into(),
        SEED_002 => "seed 002 Detect Cloud Instance Metadata API".into(),
        IMDSV1 => "IMDSv1 should not be used".into(),
        OTHER_CLOUDS => "Credential Request GCP/Azure/Alibaba/ECS".into(),
        _ => names.get(id).cloned().unwrap_or_else(|| id.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Running commands in the lab

/// What a test expects to see in the sensor's telemetry.
#[derive(Debug, Clone)]
enum Expect {
    /// An HTTP request to a metadata endpoint with this method and path, attributed to this pid.
    Http { pid: u32, method: &'static str, path: String },
    /// No metadata request from this pid.
    NoHttpFrom { pid: u32, who: &'static str },
    /// A process start of this pid.
    Exec { pid: u32 },
    /// No metadata request at all during the test.
    NoHttp,
}

#[derive(Debug, Clone)]
struct Step {
    command: String,
    pid: u32,
    ok: bool,
    detail: String,
}

struct Env {
    exe: PathBuf,
    python: PathBuf,
    work: PathBuf,
    /// Where copies of python named like vendor agents live (under /opt).
    agents: PathBuf,
    interrupted: Arc<AtomicBool>,
}

struct Cx<'a> {
    lab: &'a mut Lab,
    env: &'a Env,
    dir: PathBuf,
    steps: Vec<Step>,
    /// Every process the test started (clients and services).
    pids: BTreeSet<u32>,
    expects: Vec<Expect>,
}

impl Cx<'_> {
    fn interrupted(&self) -> bool {
        self.env.interrupted.load(Ordering::Relaxed)
    }

    /// Run `program args` in the attacker namespace, bounded in time; the step fails unless it
    /// exits 0 and its output contains `want`. Returns its pid and output (kept in memory only: it
    /// may hold the mock's fake credentials).
    fn run(&mut self, program: &Path, args: &[&str], want: &str) -> Result<(u32, String)> {
        let mut cmd = self.lab.client(program);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let shown = imdsguard_ecs::redact::redacted(&shell_words(program, args)).into_owned();
        let mut child = cmd.spawn().with_context(|| format!("cannot start {shown}"))?;
        let pid = child.id();
        self.pids.insert(pid);
        let out = drain(child.stdout.take());
        let err = drain(child.stderr.take());
        let flag = self.env.interrupted.clone();
        let status = imdsguard_lab::wait_bounded(&mut child, STEP_TIMEOUT, &move || flag.load(Ordering::Relaxed));
        if self.interrupted() {
            bail!("interrupted");
        }
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        let (ok, detail) = match status {
            None => (false, format!("did not finish within {} s", STEP_TIMEOUT.as_secs())),
            Some(st) if !st.success() => (false, format!("exited with {st}: {}", imdsguard_ecs::redact::redacted(stderr.trim()))),
            Some(_) if !stdout.contains(want) => (false, format!("its output lacks {want:?}")),
            Some(_) => (true, if want.is_empty() { "exit 0".to_string() } else { format!("exit 0, output has {want:?}") }),
        };
        self.steps.push(Step { command: shown, pid, ok, detail });
        Ok((pid, stdout))
    }

    fn curl(&mut self, args: &[&str], want: &str) -> Result<(u32, String)> {
        self.run(Path::new("curl"), args, want)
    }

    fn expect(&mut self, e: Expect) {
        self.expects.push(e);
    }

    /// Write a file into this test's directory.
    fn file(&self, name: &str, text: &str) -> Result<PathBuf> {
        let p = self.dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
        Ok(p)
    }

    /// A copy of the python interpreter named like a vendor agent, under /opt (where vendor
    /// agents live; not /tmp, /run or a home directory, which seed 000 treats as suspicious).
    fn agent_binary(&self, name: &str) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.env.agents).with_context(|| format!("cannot create {}", self.env.agents.display()))?;
        let p = self.env.agents.join(name);
        if !p.exists() {
            std::fs::copy(&self.env.python, &p).with_context(|| format!("cannot copy {} to {}", self.env.python.display(), p.display()))?;
        }
        Ok(p)
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            // Bounded: a test's output is a few kilobytes.
            let _ = r.by_ref().take(1 << 20).read_to_string(&mut s);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        }
        s
    })
}

/// A command line for display, quoting what needs it.
fn shell_words(program: &Path, args: &[&str]) -> String {
    let mut out = program.display().to_string();
    for a in args {
        out.push(' ');
        if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=%@,+".contains(&b)) {
            out.push_str(a);
        } else {
            out.push('\'');
            out.push_str(&a.replace('\'', "'\\''"));
            out.push('\'');
        }
    }
    out
}

fn role_name(listing: &str) -> String {
    let r = listing.lines().next().unwrap_or("").trim();
    if !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b)) {
        r.to_string()
    } else {
        "imdsguard-demo-role".to_string()
    }
}

fn test_aws_imdsv1(cx: &mut Cx) -> Result<()> {
    let list = format!("http://169.254.169.254{ROLE_PATH}");
    let (p1, out) = cx.curl(&["-s", "-m", "10", &list], "")?;
    let role = role_name(&out);
    let (p2, _) = cx.curl(&["-s", "-m", "10", &format!("{list}{role}")], "AccessKeyId")?;
    cx.expect(Expect::Http { pid: p1, method: "GET", path: ROLE_PATH.into() });
    cx.expect(Expect::Http { pid: p2, method: "GET", path: format!("{ROLE_PATH}{role}") });
    cx.expect(Expect::Exec { pid: p2 });
    Ok(())
}

fn test_aws_imdsv2(cx: &mut Cx) -> Result<()> {
    let (p0, token) = cx.curl(&["-s", "-m", "10", "-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 21600", "http://169.254.169.254/latest/api/token"], "")?;
    let header = format!("X-aws-ec2-metadata-token: {}", token.trim());
    let list = format!("http://169.254.169.254{ROLE_PATH}");
    let (p1, out) = cx.curl(&["-s", "-m", "10", "-H", &header, &list], "")?;
    let role = role_name(&out);
    let (p2, _) = cx.curl(&["-s", "-m", "10", "-H", &header, &format!("{list}{role}")], "AccessKeyId")?;
    cx.expect(Expect::Http { pid: p0, method: "PUT", path: "/latest/api/token".into() });
    cx.expect(Expect::Http { pid: p1, method: "GET", path: ROLE_PATH.into() });
    cx.expect(Expect::Http { pid: p2, method: "GET", path: format!("{ROLE_PATH}{role}") });
    Ok(())
}

fn test_azure(cx: &mut Cx) -> Result<()> {
    let url = "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/";
    let (p, _) = cx.curl(&["-s", "-m", "10", "-H", "Metadata:true", url], "access_token")?;
    cx.expect(Expect::Http { pid: p, method: "GET", path: "/metadata/identity/oauth2/token".into() });
    cx.expect(Expect::Exec { pid: p });
    Ok(())
}

fn test_gcp(cx: &mut Cx) -> Result<()> {
    let url = "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token";
    let (p, _) = cx.curl(&["-s", "-m", "10", "-H", "Metadata-Flavor:Google", url], "access_token")?;
    cx.expect(Expect::Http { pid: p, method: "GET", path: "/computeMetadata/v1/instance/service-accounts/default/token".into() });
    cx.expect(Expect::Exec { pid: p });
    Ok(())
}

const VULNERABLE_APP: &str = r#""""A deliberately vulnerable web service started by `imdsguard simulate`: it fetches whatever
URL its ?url= parameter names and returns the body (server-side request forgery). It listens on
127.0.0.1 inside the lab's attacker namespace only."""
import http.server, sys, urllib.parse, urllib.request


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("url", [""])[0]
        if not url.startswith("http://"):
            self.send_error(400, "missing url")
            return
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body, code = r.read(), 200
        except Exception as e:
            body, code = str(e).encode(), 502
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("listening", flush=True)
server.serve_forever()
"#;

fn test_ssrf(cx: &mut Cx) -> Result<()> {
    let script = cx.file("vulnerable_app.py", VULNERABLE_APP)?;
    let mut cmd = cx.lab.client(&cx.env.python);
    cmd.arg(&script).arg(SSRF_PORT.to_string()).stdout(Stdio::piped()).stderr(Stdio::null());
    let web = cx.lab.spawn("vulnerable web service", cmd)?;
    cx.pids.insert(web);
    let out = cx.lab.child_mut(web).and_then(|c| c.stdout.take());
    let lines = watch_lines(out);
    wait_for_line(&lines, "listening", Duration::from_secs(10), &cx.env.interrupted).context("the vulnerable web service did not start")?;
    cx.steps.push(Step {
        command: shell_words(&cx.env.python, &[&script.display().to_string(), &SSRF_PORT.to_string()]),
        pid: web,
        ok: true,
        detail: format!("listening on 127.0.0.1:{SSRF_PORT}"),
    });
    // The attacker's requests: the URL is read from a curl config file, so the attacker's own
    // command line (which a remote attacker would not have on this host) names no metadata path.
    let target = |path: &str| format!("url = \"http://127.0.0.1:{SSRF_PORT}/fetch?url=http://169.254.169.254{path}\"\n");
    let k1 = cx.file("ssrf-list.curlrc", &target(ROLE_PATH))?;
    let (a1, out) = cx.curl(&["-s", "-m", "15", "-K", &k1.display().to_string()], "")?;
    let role = role_name(&out);
    let k2 = cx.file("ssrf-credentials.curlrc", &target(&format!("{ROLE_PATH}{role}")))?;
    let (a2, _) = cx.curl(&["-s", "-m", "15", "-K", &k2.display().to_string()], "AccessKeyId")?;
    cx.expect(Expect::Http { pid: web, method: "GET", path: ROLE_PATH.into() });
    cx.expect(Expect::Http { pid: web, method: "GET", path: format!("{ROLE_PATH}{role}") });
    cx.expect(Expect::NoHttpFrom { pid: a1, who: "the attacker's curl" });
    cx.expect(Expect::NoHttpFrom { pid: a2, who: "the attacker's curl" });
    cx.lab.stop(web, Duration::from_secs(3));
    Ok(())
}

const GUEST_AGENT: &str = r#"# Models google_guest_agent reading its instance attributes (no credentials).
import http.client, sys
c = http.client.HTTPConnection("metadata.google.internal", 80, timeout=10)
c.request("GET", "/computeMetadata/v1/instance/attributes/?recursive=true",
          headers={"Metadata-Flavor": "Google", "User-Agent": "Go-http-client/1.1"})
r = c.getresponse()
r.read()
if r.status != 200:
    sys.exit("HTTP %d" % r.status)
print("attributes received")
"#;

fn test_benign_agent(cx: &mut Cx) -> Result<()> {
    let agent = cx.agent_binary("google_guest_agent")?;
    let script = cx.file("guest_agent.py", GUEST_AGENT)?;
    let (p, _) = cx.run(&agent, &[&script.display().to_string()], "attributes received")?;
    cx.expect(Expect::Http { pid: p, method: "GET", path: "/computeMetadata/v1/instance/attributes/".into() });
    Ok(())
}

fn test_benign_non_metadata(cx: &mut Cx) -> Result<()> {
    let url = format!("http://{}/latest/", imdsguard_lab::LOOKALIKE_V4);
    let (p, _) = cx.curl(&["-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", &url], "200")?;
    cx.expect(Expect::Exec { pid: p });
    cx.expect(Expect::NoHttp);
    Ok(())
}

const SSM_AGENT: &str = r#"# Models amazon-ssm-agent refreshing its instance role credentials over IMDSv2.
import http.client, sys
UA = "aws-sdk-go/1.44.328 (go1.20.12; linux; amd64) amazon-ssm-agent/3.2.1705.0"

def request(method, path, headers):
    c = http.client.HTTPConnection("169.254.169.254", 80, timeout=10)
    c.request(method, path, headers=dict(headers, **{"User-Agent": UA}))
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    if r.status != 200:
        sys.exit("%s %s: HTTP %d" % (method, path, r.status))
    return body

token = request("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
h = {"X-aws-ec2-metadata-token": token}
role = request("GET", "/latest/meta-data/iam/security-credentials/", h).strip()
creds = request("GET", "/latest/meta-data/iam/security-credentials/" + role, h)
print("credentials received" if "AccessKeyId" in creds else "no credentials")
"#;

fn test_benign_imdsv2(cx: &mut Cx) -> Result<()> {
    let agent = cx.agent_binary("amazon-ssm-agent")?;
    let script = cx.file("ssm_agent.py", SSM_AGENT)?;
    let (p, _) = cx.run(&agent, &[&script.display().to_string()], "credentials received")?;
    cx.expect(Expect::Http { pid: p, method: "PUT", path: "/latest/api/token".into() });
    cx.expect(Expect::Http { pid: p, method: "GET", path: ROLE_PATH.into() });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sensor output: alerts and telemetry belonging to a test

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(path) {
        return Some(x);
    }
    path.split('.').try_fold(v, |cur, k| cur.get(k))
}

fn text(v: &Value, path: &str) -> String {
    match get(v, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn pid_of(v: &Value) -> Option<u32> {
    get(v, "process.pid").and_then(Value::as_u64).and_then(|p| u32::try_from(p).ok())
}

/// Whether an event (or the event an alert was raised on) has the category `cat`.
fn has_category(v: &Value, key: &str, cat: &str) -> bool {
    match get(v, key) {
        Some(Value::String(s)) => s == cat,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(cat)),
        _ => false,
    }
}

/// An alert kept for the report.
#[derive(Debug, Clone, PartialEq)]
struct AlertRow {
    rule_id: String,
    rule_name: String,
    severity: String,
    source_event: String,
    pid: Option<u32>,
    process_name: String,
    process_executable: String,
    url_path: String,
    reason: String,
}

/// Split a sensor's alerts into this test's and foreign ones. An alert naming a process belongs to
/// the test when the test started that process (the process-start connector, and on the eBPF path
/// the connect tracepoint, see every process on the host); an alert on traffic that no process was
/// attributed to belongs to it too (the attacker namespace carries only the test's traffic).
fn partition_alerts(alerts: &[Value], pids: &BTreeSet<u32>) -> (Vec<AlertRow>, usize) {
    let mut mine = Vec::new();
    let mut foreign = 0;
    for a in alerts {
        let network = has_category(a, "kibana.alert.original_event.category", "network");
        let pid = pid_of(a);
        let ours = match pid {
            Some(p) => pids.contains(&p),
            None => network,
        };
        if !ours {
            foreign += 1;
            continue;
        }
        mine.push(AlertRow {
            rule_id: text(a, "kibana.alert.rule.rule_id"),
            rule_name: text(a, "kibana.alert.rule.name"),
            severity: text(a, "kibana.alert.severity"),
            source_event: if network { "network".into() } else { "process".into() },
            pid,
            process_name: text(a, "process.name"),
            process_executable: text(a, "process.executable"),
            url_path: text(a, "url.path"),
            reason: text(a, "kibana.alert.reason"),
        });
    }
    (mine, foreign)
}

/// One piece of telemetry the sensor produced for the test.
#[derive(Debug, Clone, PartialEq)]
enum Tele {
    Exec { pid: u32, name: String, command_line: String },
    Connection { pid: Option<u32>, name: String, destination: String },
    Http { pid: Option<u32>, name: String, method: String, path: String, host: String, provider: String, version: String },
}

fn telemetry(events: &[Value], pids: &BTreeSet<u32>) -> Vec<Tele> {
    let mut out = Vec::new();
    for e in events {
        let dataset = text(e, "event.dataset");
        let pid = pid_of(e);
        let name = text(e, "process.name");
        if has_category(e, "event.category", "process") {
            if let Some(p) = pid.filter(|p| pids.contains(p)) {
                out.push(Tele::Exec { pid: p, name, command_line: text(e, "process.command_line") });
            }
        } else if dataset == "network_traffic.http" {
            let version = match get(e, "imds.aws.is_imds_v2") {
                Some(Value::Bool(true)) => "IMDSv2",
                Some(Value::Bool(false)) => "IMDSv1",
                _ => "",
            };
            let version = if get(e, "imds.aws.token_request") == Some(&Value::Bool(true)) { "token request" } else { version };
            out.push(Tele::Http {
                pid,
                name,
                method: text(e, "http.request.method"),
                path: text(e, "url.path"),
                host: text(e, "url.domain"),
                provider: text(e, "imds.cloud_provider"),
                version: version.to_string(),
            });
        } else if has_category(e, "event.category", "network") && !pid.is_some_and(|p| !pids.contains(&p)) {
            out.push(Tele::Connection {
                pid,
                name,
                destination: format!("{}:{}", text(e, "destination.ip"), text(e, "destination.port")),
            });
        }
    }
    out
}

fn tele_json(t: &Tele) -> Value {
    match t {
        Tele::Exec { pid, name, command_line } => json!({"type": "process_start", "process": {"pid": pid, "name": name, "command_line": command_line}}),
        Tele::Connection { pid, name, destination } => json!({"type": "connection", "process": {"pid": pid, "name": name}, "destination": destination}),
        Tele::Http { pid, name, method, path, host, provider, version } => json!({
            "type": "http", "process": {"pid": pid, "name": name}, "method": method, "url_path": path,
            "host": host, "provider": provider, "imds": version,
        }),
    }
}

/// Table lines summarising the telemetry.
fn tele_summary(t: &[Tele]) -> Vec<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut order = Vec::new();
    // Process starts, then connections, then requests (each in the order seen).
    let rank = |x: &Tele| match x {
        Tele::Exec { .. } => 0,
        Tele::Connection { .. } => 1,
        Tele::Http { .. } => 2,
    };
    // One process start per pid, the last one reported: `ip netns exec` is exec'd, then execs the
    // client in the same process, and the sensor may describe either (the JSON keeps both).
    let last_exec: BTreeMap<u32, usize> = t.iter().enumerate().filter_map(|(i, x)| if let Tele::Exec { pid, .. } = x { Some((*pid, i)) } else { None }).collect();
    let mut t: Vec<&Tele> = t.iter().enumerate().filter(|(i, x)| !matches!(x, Tele::Exec { pid, .. } if last_exec.get(pid) != Some(i))).map(|(_, x)| x).collect();
    t.sort_by_key(|x| rank(x));
    for x in t {
        let line = match x {
            Tele::Exec { name, .. } => format!("exec {name}"),
            Tele::Connection { name, destination, .. } => format!("connect {} -> {destination}", if name.is_empty() { "?" } else { name }),
            Tele::Http { name, method, path, provider, version, host, .. } => {
                let who = if name.is_empty() { "unattributed".to_string() } else { name.clone() };
                let what = [provider.as_str(), version.as_str()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" ");
                let host = if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() { String::new() } else { format!(" {host}") };
                format!("{method}{host} {} [{what}] by {who}", shorten(path, 40))
            }
        };
        if !counts.contains_key(&line) {
            order.push(line.clone());
        }
        *counts.entry(line).or_default() += 1;
    }
    let mut out: Vec<String> = order.into_iter().map(|l| match counts.get(&l) {
        Some(n) if *n > 1 => format!("{l} (x{n})"),
        _ => l,
    }).collect();
    if out.is_empty() {
        out.push("none".into());
    }
    out
}

/// `s` cut to `max` characters from the front (the end of a URL path is what tells requests
/// apart).
fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let tail: String = s.chars().skip(n + 1 - max.max(1)).collect();
    format!("…{tail}")
}

/// A check of the test's telemetry.
#[derive(Debug, Clone, PartialEq)]
struct Check {
    what: String,
    ok: bool,
}

fn check_expectations(expects: &[Expect], tele: &[Tele]) -> Vec<Check> {
    let http = |pid_f: &dyn Fn(Option<u32>) -> bool| {
        tele.iter().filter(move |t| matches!(t, Tele::Http { pid, .. } if pid_f(*pid))).cloned().collect::<Vec<_>>()
    };
    expects
        .iter()
        .map(|e| match e {
            Expect::Http { pid, method, path } => {
                let ok = http(&|p| p == Some(*pid)).iter().any(|t| matches!(t, Tele::Http { method: m, path: p, .. } if m == method && p.starts_with(path.as_str())));
                Check { what: format!("{method} {path} seen, attributed to pid {pid}"), ok }
            }
            Expect::NoHttpFrom { pid, who } => Check { what: format!("no metadata request from {who} (pid {pid})"), ok: http(&|p| p == Some(*pid)).is_empty() },
            Expect::Exec { pid } => Check {
                what: format!("process start of pid {pid} seen"),
                ok: tele.iter().any(|t| matches!(t, Tele::Exec { pid: p, .. } if p == pid)),
            },
            Expect::NoHttp => Check { what: "no metadata request seen".into(), ok: http(&|_| true).is_empty() },
        })
        .collect()
}

/// The verdict on the rules: expected ones that did not fire, and unexpected ones that did.
/// On an attack test a rule outside the built-in catalogue that also fires is additional, not
/// unexpected (a user's extra rule catching the attack is fine); on a benign test every alert is
/// unexpected.
fn rule_verdict(kind: Kind, expected: &[&str], fired: &BTreeSet<String>, known: &BTreeSet<String>) -> (Vec<String>, Vec<String>, Vec<String>) {
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    let missing: Vec<String> = expected.difference(fired).cloned().collect();
    let mut unexpected = Vec::new();
    let mut additional = Vec::new();
    for r in fired.difference(&expected) {
        if kind == Kind::Benign || known.contains(r) {
            unexpected.push(r.clone());
        } else {
            additional.push(r.clone());
        }
    }
    (missing, unexpected, additional)
}

fn read_ndjson(p: &Path) -> (Vec<Value>, usize) {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let mut bad = 0;
    let v = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str(l) {
            Ok(v) => Some(v),
            Err(_) => {
                bad += 1;
                None
            }
        })
        .collect();
    (v, bad)
}

/// Lines read from a child's pipe by a thread.
type Lines = Arc<Mutex<Vec<String>>>;

fn watch_lines<R: Read + Send + 'static>(r: Option<R>) -> Lines {
    watch_lines_until_eof(r).0
}

/// [`watch_lines`], also returning a flag set once the pipe is closed.
fn watch_lines_until_eof<R: Read + Send + 'static>(r: Option<R>) -> (Lines, Arc<AtomicBool>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let (l2, d2) = (lines.clone(), done.clone());
    std::thread::spawn(move || {
        if let Some(r) = r {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                if let Ok(mut v) = l2.lock() {
                    if v.len() < 10_000 {
                        v.push(line);
                    }
                }
            }
        }
        d2.store(true, Ordering::SeqCst);
    });
    (lines, done)
}

fn snapshot(lines: &Lines) -> Vec<String> {
    lines.lock().map(|v| v.clone()).unwrap_or_default()
}

fn wait_for_line(lines: &Lines, needle: &str, timeout: Duration, stop: &AtomicBool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if snapshot(lines).iter().any(|l| l.contains(needle)) {
            return Ok(());
        }
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("no {needle:?} within {} s; output: {:?}", timeout.as_secs(), snapshot(lines))
}

/// Wait (bounded) until a child started in the lab prints `needle`; fail at once, with what it
/// printed, if it exits first.
fn wait_ready(lab: &mut Lab, pid: u32, lines: &Lines, errors: &Lines, needle: &str, stop: &AtomicBool) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if snapshot(lines).iter().any(|l| l.contains(needle)) {
            return Ok(());
        }
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        if let Some(Ok(Some(st))) = lab.child_mut(pid).map(|c| c.try_wait()) {
            std::thread::sleep(Duration::from_millis(100));
            bail!("it exited with {st} before it was ready: {}", snapshot(errors).join(" | "));
        }
        if Instant::now() >= deadline {
            bail!("no {needle:?} within {} s: {}", READY_TIMEOUT.as_secs(), snapshot(errors).join(" | "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sleep_interruptible(d: Duration, stop: &AtomicBool) -> Result<()> {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// One test

struct Outcome {
    def_index: usize,
    steps: Vec<Step>,
    tele: Vec<Tele>,
    alerts: Vec<AlertRow>,
    foreign_alerts: usize,
    fired: BTreeSet<String>,
    missing: Vec<String>,
    unexpected: Vec<String>,
    additional: Vec<String>,
    checks: Vec<Check>,
    sensor_status: String,
    error: Option<String>,
    elapsed_ms: u128,
}

impl Outcome {
    fn pass(&self) -> bool {
        self.error.is_none() && self.missing.is_empty() && self.unexpected.is_empty() && self.checks.iter().all(|c| c.ok) && self.steps.iter().all(|s| s.ok)
    }
}

fn run_one(i: usize, def: &Def, lab: &mut Lab, env: &Env, args: &SimulateArgs, known: &BTreeSet<String>) -> Result<Outcome> {
    let t0 = Instant::now();
    let dir = env.work.join(def.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let alerts_path = dir.join("alerts.ndjson");
    let events_path = dir.join("events.ndjson");
    let mut cmd = Command::new(&env.exe);
    cmd.args(["sensor", "--format", "ndjson", "--netns", &lab.client_ns, "--batch-ms", "200", "--poll-interval-ms", "100", "--duration", "300"])
        .arg("--output")
        .arg(&alerts_path)
        .arg("--events")
        .arg(&events_path);
    for r in &args.rules {
        cmd.arg("--rules").arg(r);
    }
    if args.no_builtin {
        cmd.arg("--no-builtin");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let sensor = lab.spawn("sensor", cmd)?;
    let (status, status_done) = watch_lines_until_eof(lab.child_mut(sensor).and_then(|c| c.stderr.take()));
    wait_ready(lab, sensor, &status, &status, "imdsguard sensor:", &env.interrupted).context("the sensor did not start")?;

    let mut cx = Cx { lab, env, dir, steps: Vec::new(), pids: BTreeSet::new(), expects: Vec::new() };
    let result = (def.run)(&mut cx);
    if env.interrupted.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    let error = result.err().map(|e| format!("{e:#}"));
    let Cx { lab, steps, pids, expects, .. } = cx;
    sleep_interruptible(SETTLE, &env.interrupted)?;
    let exit = lab.stop(sensor, SENSOR_STOP);
    // The stderr reader ends with the process: wait (bounded) until it has read the last line.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !status_done.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let lines = snapshot(&status);
    let sensor_status = lines.iter().rev().find(|l| l.starts_with("sensor status:")).cloned().unwrap_or_default();
    let error = match (error, exit) {
        (Some(e), _) => Some(e),
        (None, Some(st)) if st.success() => None,
        (None, Some(st)) => Some(format!("the sensor exited with {st}: {}", lines.join(" | "))),
        (None, None) => Some(format!("the sensor did not stop within {} s of SIGTERM and was killed", SENSOR_STOP.as_secs())),
    };
    let (raw_alerts, bad_alerts) = read_ndjson(&alerts_path);
    let (events, bad_events) = read_ndjson(&events_path);
    let error = error.or_else(|| (bad_alerts + bad_events > 0).then(|| format!("{bad_alerts} alert and {bad_events} event line(s) of the sensor were not JSON")));
    let (alerts, foreign_alerts) = partition_alerts(&raw_alerts, &pids);
    let tele = telemetry(&events, &pids);
    let fired: BTreeSet<String> = alerts.iter().map(|a| a.rule_id.clone()).collect();
    let (missing, unexpected, additional) = rule_verdict(def.kind, def.expected, &fired, known);
    let checks = check_expectations(&expects, &tele);
    Ok(Outcome {
        def_index: i,
        steps,
        tele,
        alerts,
        foreign_alerts,
        fired,
        missing,
        unexpected,
        additional,
        checks,
        sensor_status,
        error,
        elapsed_ms: t0.elapsed().as_millis(),
    })
}

// ---------------------------------------------------------------------------------------------
// The command

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// The real python interpreter (not a wrapper such as a pyenv shim), so its pid and executable
/// are the interpreter's own.
fn find_python() -> Option<PathBuf> {
    for p in ["/usr/bin/python3", "/usr/local/bin/python3"] {
        if let Ok(real) = std::fs::canonicalize(p) {
            return Some(real);
        }
    }
    let out = Command::new("python3").args(["-c", "import os, sys; print(os.path.realpath(sys.executable))"]).stdin(Stdio::null()).output().ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && p.is_file()).then_some(p)
}

fn unique_dir(parent: &Path, prefix: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    for k in 0..100u32 {
        let p = parent.join(format!("{prefix}-{}-{:x}", std::process::id(), nanos.wrapping_add(k)));
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", p.display())),
        }
    }
    bail!("cannot create a unique directory under {}", parent.display())
}

/// Exit status when the lab cannot be set up (not root, no `ip`, no namespaces, missing tools).
pub const EXIT_REFUSED: u8 = 2;

/// How long a simulation waits for another one on the same host to finish.
const HOST_LOCK_WAIT: Duration = Duration::from_secs(600);

/// Take the host-wide simulation lock (an exclusive `flock` on a file in /run/lock, or the
/// temporary directory), waiting a bounded time for another run to finish.
fn host_lock(interrupted: &AtomicBool) -> Result<std::fs::File> {
    let dir = if Path::new("/run/lock").is_dir() { PathBuf::from("/run/lock") } else { std::env::temp_dir() };
    let path = dir.join("imdsguard-simulate.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the simulation lock {}", path.display()))?;
    let start = std::time::Instant::now();
    let mut told = false;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                if !told {
                    eprintln!("imdsguard simulate: another simulation is running on this host; waiting for it (lock {})", path.display());
                    told = true;
                }
                if interrupted.load(Ordering::SeqCst) {
                    anyhow::bail!("interrupted while waiting for another simulation");
                }
                if start.elapsed() > HOST_LOCK_WAIT {
                    anyhow::bail!("another simulation held {} for more than {} s", path.display(), HOST_LOCK_WAIT.as_secs());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(anyhow::anyhow!("cannot lock {}: {e}", path.display())),
        }
    }
}

pub fn run(args: SimulateArgs) -> Result<ExitCode> {
    let defs = catalogue();
    let builtin = imdsguard_rules::builtin();
    let names: BTreeMap<String, String> = builtin.rules.iter().map(|r| (r.rule_id.clone(), r.name.clone())).collect();
    if args.list {
        print_list(&defs, &names, args.format)?;
        return Ok(ExitCode::SUCCESS);
    }
    let selected: Vec<usize> = if args.tests.is_empty() {
        (0..defs.len()).collect()
    } else {
        let mut v = Vec::new();
        for t in &args.tests {
            match defs.iter().position(|d| d.name == t) {
                Some(i) if !v.contains(&i) => v.push(i),
                Some(_) => {}
                None => bail!("no test named {t:?}; the tests are: {}", defs.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")),
            }
        }
        v
    };
    // The rules the sensor will run: loaded here too, so bad rule files are reported before the
    // lab is built, and so a removed rule can be named.
    let (rules, errors) = load_rules(&args.rules, args.no_builtin);
    for e in &errors {
        eprint!("{}", render_load_error(e));
    }
    if errors.iter().any(|e| e.is_error()) {
        bail!("the rules do not load (see above)");
    }
    let loaded: BTreeSet<String> = rules.iter().map(|(r, _)| r.rule_id.clone()).collect();
    let mut names = names;
    for (r, _) in &rules {
        names.entry(r.rule_id.clone()).or_insert_with(|| r.name.clone());
    }
    let known: BTreeSet<String> = builtin.rules.iter().map(|r| r.rule_id.clone()).collect();

    // Preconditions: refuse (never fall back to the host's network).
    if let Err(e) = imdsguard_lab::preflight() {
        eprintln!("imdsguard simulate: {e}");
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    let Some(python) = find_python() else {
        eprintln!("imdsguard simulate: refusing to run: `python3` was not found (the SSRF test's web service and the agent look-alikes run on it)");
        return Ok(ExitCode::from(EXIT_REFUSED));
    };
    if which("curl").is_none() {
        eprintln!("imdsguard simulate: refusing to run: `curl` was not found in PATH (the attack tests run it)");
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    let exe = std::env::current_exe().context("cannot locate the imdsguard binary")?;
    let interrupted = Arc::new(AtomicBool::new(false));
    crate::signals::spawn_signal_thread(interrupted.clone())?;

    // One simulation at a time on a host: the eBPF sensor sees the launches and metadata
    // connects of every network namespace, so a second simulation's curl would be "seen before"
    // by this one's new_terms rule (seed 000) and its verdicts would depend on the other's timing.
    let _host_lock = match host_lock(&interrupted) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("imdsguard simulate: {e}");
            return Ok(ExitCode::from(EXIT_REFUSED));
        }
    };

    let mut lab = match Lab::create("sim") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("imdsguard simulate: {e}");
            return Ok(ExitCode::from(EXIT_REFUSED));
        }
    };
    let work = unique_dir(&std::env::temp_dir(), "imdsguard-simulate")?;
    let agents = unique_dir(Path::new("/opt"), "imdsguard-simulate").or_else(|_| unique_dir(Path::new("/usr/local/lib"), "imdsguard-simulate"))?;
    lab.remove_on_drop(agents.clone());
    if !args.keep {
        lab.remove_on_drop(work.clone());
    }
    let env = Env { exe: exe.clone(), python, work: work.clone(), agents, interrupted: interrupted.clone() };

    // The mock at the metadata addresses (and the look-alike neighbour), in its own namespace.
    let mock_log = work.join("mock-requests.ndjson");
    let mut mock = lab.mock(&exe);
    let delay = args.response_delay_ms.to_string();
    let listens = [
        format!("{}:80", imdsguard_lab::METADATA_V4),
        format!("[{}]:80", imdsguard_lab::METADATA_V6),
        format!("{}:80", imdsguard_lab::LOOKALIKE_V4),
    ];
    mock.arg("imds-mock");
    for l in &listens {
        mock.args(["--listen", l]);
    }
    mock.args(["--allow-non-loopback", "--response-delay-ms", &delay]).arg("--log").arg(&mock_log);
    mock.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mock_pid = lab.spawn("imds-mock", mock)?;
    let mock_out = watch_lines(lab.child_mut(mock_pid).and_then(|c| c.stdout.take()));
    let mock_err = watch_lines(lab.child_mut(mock_pid).and_then(|c| c.stderr.take()));
    if let Err(e) = wait_ready(&mut lab, mock_pid, &mock_out, &mock_err, "imds-mock providers:", &interrupted) {
        if interrupted.load(Ordering::Relaxed) {
            eprintln!("imdsguard simulate: interrupted; tearing the lab down");
            return Ok(ExitCode::from(130));
        }
        return Err(e.context("the mock metadata service did not start"));
    }

    let mut outcomes = Vec::new();
    for &i in &selected {
        let def = &defs[i];
        if args.format == SimFormat::Table {
            eprintln!("imdsguard simulate: running {} ...", def.name);
        }
        match run_one(i, def, &mut lab, &env, &args, &known) {
            Ok(o) => outcomes.push(o),
            Err(e) if interrupted.load(Ordering::Relaxed) => {
                let during = format!("{e:#}");
                eprintln!("imdsguard simulate: interrupted{}; tearing the lab down", if during == "interrupted" { String::new() } else { format!(" ({during})") });
                drop(lab);
                return Ok(ExitCode::from(130));
            }
            Err(e) => return Err(e.context(format!("test {}", def.name))),
        }
    }
    lab.stop(mock_pid, Duration::from_secs(5));
    let mut kept = if args.keep { lab.keep() } else { Vec::new() };
    if args.keep {
        kept.push(format!("rm -r {}", work.display()));
    }
    let lab_info = json!({
        "mock_namespace": lab.mock_ns,
        "attacker_namespace": lab.client_ns,
        "metadata_addresses": [imdsguard_lab::METADATA_V4.to_string(), imdsguard_lab::METADATA_V6.to_string()],
        "lookalike_address": imdsguard_lab::LOOKALIKE_V4.to_string(),
        "attacker_address": imdsguard_lab::CLIENT_V4.to_string(),
        "response_delay_ms": args.response_delay_ms,
        "kept": args.keep,
        "run_directory": if args.keep { Value::from(work.display().to_string()) } else { Value::Null },
    });
    let failed = outcomes.iter().filter(|o| !o.pass()).count();
    match args.format {
        SimFormat::Json => {
            let doc = report_json(&defs, &outcomes, &names, &loaded, lab_info);
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        SimFormat::Table => print!("{}", report_table(&defs, &outcomes, &names, &loaded)),
    }
    if args.keep {
        eprintln!("imdsguard simulate: kept the lab: namespaces {} and {}, run directory {}; remove with: {}", lab.mock_ns, lab.client_ns, work.display(), kept.join("; "));
        eprintln!("  inspect with: ip netns exec {} sh", lab.client_ns);
    }
    drop(lab);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_list(defs: &[Def], names: &BTreeMap<String, String>, format: SimFormat) -> Result<()> {
    match format {
        SimFormat::Json => {
            let v: Vec<Value> = defs
                .iter()
                .map(|d| json!({"name": d.name, "title": d.title, "kind": d.kind.as_str(), "source": d.source, "does": d.did, "expected_rule_ids": d.expected, "note": d.note}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&json!({"tests": v}))?);
        }
        SimFormat::Table => {
            let rows: Vec<Vec<Vec<String>>> = defs
                .iter()
                .map(|d| {
                    let exp: Vec<String> = if d.expected.is_empty() { vec!["none (must not alert)".into()] } else { d.expected.iter().map(|r| format!("{} ({})", rule_label(r, names), r.get(..8).unwrap_or(r))).collect() };
                    vec![vec![d.name.to_string(), format!("({})", d.kind.as_str())], wrap(&format!("{}. {}", d.title, d.did), 60), exp]
                })
                .collect();
            print!("{}", render_table(&["TEST", "WHAT IT DOES", "EXPECTED DETECTIONS"], &[29, 60, 52], &rows));
        }
    }
    Ok(())
}

fn report_json(defs: &[Def], outcomes: &[Outcome], names: &BTreeMap<String, String>, loaded: &BTreeSet<String>, lab: Value) -> Value {
    let tests: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let d = &defs[o.def_index];
            json!({
                "name": d.name,
                "title": d.title,
                "kind": d.kind.as_str(),
                "source": d.source,
                "did": d.did,
                "commands": o.steps.iter().map(|s| json!({"command": s.command, "pid": s.pid, "ok": s.ok, "detail": s.detail})).collect::<Vec<_>>(),
                "telemetry": o.tele.iter().map(tele_json).collect::<Vec<_>>(),
                "expected_rule_ids": d.expected,
                "fired_rule_ids": o.fired,
                "missing_rule_ids": o.missing,
                "unexpected_rule_ids": o.unexpected,
                "additional_rule_ids": o.additional,
                "missing_not_loaded": o.missing.iter().filter(|r| !loaded.contains(*r)).collect::<Vec<_>>(),
                "alerts": o.alerts.iter().map(|a| json!({
                    "rule_id": a.rule_id,
                    "rule_name": if a.rule_name.is_empty() { names.get(&a.rule_id).cloned().unwrap_or_default() } else { a.rule_name.clone() },
                    "severity": a.severity,
                    "source_event": a.source_event,
                    "process": {"pid": a.pid, "name": a.process_name, "executable": a.process_executable},
                    "url_path": a.url_path,
                    "reason": a.reason,
                })).collect::<Vec<_>>(),
                "foreign_alerts_ignored": o.foreign_alerts,
                "checks": o.checks.iter().map(|c| json!({"check": c.what, "ok": c.ok})).collect::<Vec<_>>(),
                "note": d.note,
                "sensor_status": o.sensor_status,
                "error": o.error,
                "elapsed_ms": o.elapsed_ms as u64,
                "verdict": if o.pass() { "pass" } else { "fail" },
            })
        })
        .collect();
    let passed = outcomes.iter().filter(|o| o.pass()).count();
    json!({
        "lab": lab,
        "tests": tests,
        "summary": {"tests": outcomes.len(), "passed": passed, "failed": outcomes.len() - passed},
        "verdict": if passed == outcomes.len() { "pass" } else { "fail" },
    })
}

fn report_table(defs: &[Def], outcomes: &[Outcome], names: &BTreeMap<String, String>, loaded: &BTreeSet<String>) -> String {
    let widths = [29, 36, 48, 46, 7];
    let rows: Vec<Vec<Vec<String>>> = outcomes
        .iter()
        .map(|o| {
            let d = &defs[o.def_index];
            let mut rules = Vec::new();
            for r in d.expected {
                if o.fired.contains(*r) {
                    rules.push(format!("+ {}", rule_label(r, names)));
                }
            }
            for r in &o.missing {
                let why = if loaded.contains(r) { "" } else { " (not loaded)" };
                rules.push(format!("MISSING {}{why}", rule_label(r, names)));
            }
            for r in &o.unexpected {
                rules.push(format!("UNEXPECTED {}", rule_label(r, names)));
            }
            for r in &o.additional {
                rules.push(format!("also {}", rule_label(r, names)));
            }
            if rules.is_empty() {
                rules.push("none".into());
            }
            let mut did = wrap(d.did, widths[1]);
            for s in o.steps.iter().filter(|s| !s.ok) {
                did.extend(wrap(&format!("FAILED: {} ({})", s.command, s.detail), widths[1]));
            }
            if let Some(e) = &o.error {
                did.extend(wrap(&format!("ERROR: {e}"), widths[1]));
            }
            let mut tele: Vec<String> = tele_summary(&o.tele).iter().flat_map(|l| wrap(l, widths[2])).collect();
            for c in o.checks.iter().filter(|c| !c.ok) {
                tele.extend(wrap(&format!("NOT SEEN: {}", c.what), widths[2]));
            }
            let rules: Vec<String> = rules.iter().flat_map(|l| wrap(l, widths[3])).collect();
            vec![wrap(d.name, widths[0]), did, tele, rules, vec![if o.pass() { "pass".into() } else { "FAIL".into() }]]
        })
        .collect();
    let mut out = render_table(&["TEST", "WHAT IT DID", "TELEMETRY OBSERVED", "RULES THAT FIRED", "VERDICT"], &widths, &rows);
    let passed = outcomes.iter().filter(|o| o.pass()).count();
    out.push_str(&format!("{passed} of {} tests passed\n", outcomes.len()));
    out
}

/// Word-wrap `s` to `width` characters (long words are cut).
fn wrap(s: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in s.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > width {
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(head);
        }
        if cur.is_empty() {
            cur = word;
        } else if cur.chars().count() + 1 + word.chars().count() <= width {
            cur.push(' ');
            cur.push_str(&word);
        } else {
            lines.push(std::mem::replace(&mut cur, word));
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// A table whose cells hold several lines; columns padded to `widths`, rows separated by a rule.
fn render_table(headers: &[&str], widths: &[usize], rows: &[Vec<Vec<String>>]) -> String {
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    let line = |cells: Vec<String>| cells.join("  ").trim_end().to_string() + "\n";
    let mut out = line(headers.iter().zip(widths).map(|(h, w)| pad(h, *w)).collect());
    let rule = line(widths.iter().map(|w| "-".repeat(*w)).collect());
    out.push_str(&rule);
    for row in rows {
        let height = row.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            out.push_str(&line(row.iter().zip(widths).map(|(cell, w)| pad(cell.get(k).map(String::as_str).unwrap_or(""), *w)).collect()));
        }
        out.push_str(&rule);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(rule: &str, category: &str, pid: Option<u32>) -> Value {
        let mut a = json!({"kibana.alert.rule.rule_id": rule, "kibana.alert.rule.name": "n", "kibana.alert.original_event.category": [category]});
        if let Some(p) = pid {
            a["process"] = json!({"pid": p, "name": "curl"});
        }
        a
    }

    #[test]
    fn alerts_belong_to_the_test_by_traffic_or_by_pid() {
        let pids: BTreeSet<u32> = [10, 11].into_iter().collect();
        let alerts = vec![
            alert(SEED_001, "network", Some(10)),
            alert(SEED_000, "network", None),
            alert(SEED_002, "process", Some(11)),
            alert(SEED_002, "process", Some(999)),
            alert(SEED_002, "process", None),
            // A connection from another namespace (the eBPF path traces every connect).
            alert(SEED_002, "network", Some(4242)),
        ];
        let (mine, foreign) = partition_alerts(&alerts, &pids);
        assert_eq!(mine.iter().map(|a| a.rule_id.as_str()).collect::<Vec<_>>(), vec![SEED_001, SEED_000, SEED_002]);
        assert_eq!(foreign, 3);
        assert_eq!(mine[2].source_event, "process");
    }

    #[test]
    fn verdicts_on_rules() {
        let known: BTreeSet<String> = [SEED_000, SEED_001, SEED_002, IMDSV1].iter().map(|s| s.to_string()).collect();
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<String>>();
        // (kind, expected, fired) -> (missing, unexpected, additional)
        type Case<'a> = (Kind, Vec<&'a str>, BTreeSet<String>, (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>));
        let cases: Vec<Case> = vec![
            (Kind::Attack, vec![SEED_000, SEED_001], set(&[SEED_000, SEED_001]), (vec![], vec![], vec![])),
            (Kind::Attack, vec![SEED_000, SEED_001], set(&[SEED_000]), (vec![SEED_001], vec![], vec![])),
            (Kind::Attack, vec![SEED_000], set(&[SEED_000, IMDSV1]), (vec![], vec![IMDSV1], vec![])),
            (Kind::Attack, vec![SEED_000], set(&[SEED_000, "my-own-rule"]), (vec![], vec![], vec!["my-own-rule"])),
            (Kind::Benign, vec![], set(&["my-own-rule"]), (vec![], vec!["my-own-rule"], vec![])),
            (Kind::Benign, vec![], set(&[]), (vec![], vec![], vec![])),
        ];
        for (kind, expected, fired, (m, u, a)) in cases {
            let (mm, uu, aa) = rule_verdict(kind, &expected, &fired, &known);
            assert_eq!((mm, uu, aa), (m.iter().map(|s| s.to_string()).collect(), u.iter().map(|s| s.to_string()).collect(), a.iter().map(|s| s.to_string()).collect()), "{kind:?} {expected:?} {fired:?}");
        }
    }

    #[test]
    fn expectations_on_telemetry() {
        let tele = vec![
            Tele::Exec { pid: 5, name: "curl".into(), command_line: "curl x".into() },
            Tele::Http { pid: Some(7), name: "python3.11".into(), method: "GET".into(), path: "/latest/meta-data/iam/security-credentials/r".into(), host: "169.254.169.254".into(), provider: "aws".into(), version: "IMDSv1".into() },
        ];
        let checks = check_expectations(
            &[
                Expect::Http { pid: 7, method: "GET", path: "/latest/meta-data/iam/security-credentials/".into() },
                Expect::Http { pid: 5, method: "GET", path: "/".into() },
                Expect::NoHttpFrom { pid: 5, who: "x" },
                Expect::NoHttpFrom { pid: 7, who: "y" },
                Expect::Exec { pid: 5 },
                Expect::Exec { pid: 7 },
                Expect::NoHttp,
            ],
            &tele,
        );
        assert_eq!(checks.iter().map(|c| c.ok).collect::<Vec<_>>(), vec![true, false, true, false, true, false, false]);
        assert!(check_expectations(&[Expect::NoHttp], &tele[..1])[0].ok);
    }

    #[test]
    fn telemetry_keeps_the_tests_processes_and_all_traffic() {
        let pids: BTreeSet<u32> = [5].into_iter().collect();
        let events = vec![
            json!({"event": {"category": ["process"], "dataset": "imdsguard_sensor.process"}, "process": {"pid": 5, "name": "curl", "command_line": "curl http://169.254.169.254/"}}),
            json!({"event": {"category": ["process"]}, "process": {"pid": 6, "name": "cargo"}}),
            json!({"event": {"category": ["network"], "dataset": "imdsguard_sensor.network"}, "process": {"pid": 5, "name": "curl"}, "destination": {"ip": "169.254.169.254", "port": 80}}),
            json!({"event": {"category": ["network"], "dataset": "imdsguard_sensor.network"}, "process": {"pid": 77, "name": "curl"}, "destination": {"ip": "169.254.169.254", "port": 80}}),
            json!({"event": {"category": ["network"], "dataset": "network_traffic.http"}, "http": {"request": {"method": "PUT"}}, "url": {"path": "/latest/api/token", "domain": "169.254.169.254"}, "imds": {"cloud_provider": "aws", "aws": {"token_request": true, "is_imds_v2": true}}}),
        ];
        let mut events = events;
        events.insert(0, json!({"event": {"category": ["process"]}, "process": {"pid": 5, "name": "ip", "command_line": "ip netns exec x curl http://169.254.169.254/"}}));
        let t = telemetry(&events, &pids);
        assert_eq!(t.len(), 4, "both execs of pid 5 are kept");
        assert_eq!(
            tele_summary(&t),
            vec!["exec curl".to_string(), "connect curl -> 169.254.169.254:80".into(), "PUT /latest/api/token [aws token request] by unattributed".into()]
        );
        assert_eq!(tele_summary(&[]), vec!["none".to_string()]);
    }

    #[test]
    fn the_catalogue_is_consistent_with_the_builtin_pack() {
        let defs = catalogue();
        let names: BTreeSet<&str> = defs.iter().map(|d| d.name).collect();
        assert_eq!(names.len(), defs.len(), "test names are unique");
        let builtin: BTreeSet<String> = imdsguard_rules::builtin().rules.iter().map(|r| r.rule_id.clone()).collect();
        for d in &defs {
            for r in d.expected {
                assert!(builtin.contains(*r), "{}: {r} is a built-in rule", d.name);
            }
            assert_eq!(d.kind == Kind::Benign, d.expected.is_empty(), "{}", d.name);
        }
        for kind in [Kind::Attack, Kind::Benign] {
            assert!(defs.iter().filter(|d| d.kind == kind).count() >= 3);
        }
    }

    #[test]
    fn wrapping_and_tables() {
        assert_eq!(wrap("a bb ccc dddd", 8), vec!["a bb ccc".to_string(), "dddd".into()]);
        assert_eq!(wrap("abcdefghijkl", 8), vec!["abcdefgh".to_string(), "ijkl".into()]);
        assert_eq!(wrap("", 8), vec![String::new()]);
        let t = render_table(&["A", "B"], &[3, 2], &[vec![vec!["x".into(), "y".into()], vec!["z".into()]]]);
        assert_eq!(t, "A    B\n---  --\nx    z\ny\n---  --\n");
        assert_eq!(shell_words(Path::new("curl"), &["-H", "Metadata:true", "a b"]), "curl -H Metadata:true 'a b'");
        assert_eq!(role_name("imdsguard-demo-role\n"), "imdsguard-demo-role");
        assert_eq!(role_name("<html>"), "imdsguard-demo-role");
        assert_eq!(shorten("/latest/meta-data/iam/security-credentials/role", 10), "…ials/role");
        assert_eq!(shorten("/short", 10), "/short");
    }
}
