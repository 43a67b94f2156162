#!/usr/bin/env python3
"""Write the example ECS events under examples/events/ (deterministic; re-run to regenerate).

Scenarios for the seed rule "Suspicious Instance Metadata Service (IMDS) API Request" (new_terms on
host.id + process.executable), shaped as Elastic Defend network events:
  attacks:  curl / wget / python from a temp dir / an SSRF'd Java app / PowerShell / a dotted-key
            document / a repeated request (no second alert: the term is no longer new)
  benign:   cloud agents, the ECS task-metadata address, a wrong port, macOS node, VS Code server,
            signed editor helpers, process events, a non-metadata destination
  packetbeat: an HTTP event whose response body holds role credentials (redacted in all output)
  next day: the same curl on web-1 (already known: no alert) and a first-time host (alert)
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "events")

HOSTS = {
    "web-1": ("0d1c5a3e-5f6b-4b7a-9a51-2f3c1d0e9a01", "linux", "10.0.1.15"),
    "web-2": ("8b2e3f41-7c6d-4e5f-8a9b-0c1d2e3f4a02", "linux", "10.0.1.16"),
    "batch-7": ("5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a803", "linux", "10.0.2.7"),
    "win-app-3": ("c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e04", "windows", "10.0.3.3"),
    "mac-dev-9": ("f0e1d2c3-b4a5-4968-8776-5544332211a5", "macos", "192.168.7.9"),
}


def net_event(ts, host, pname, exe, dst_ip="169.254.169.254", dst_port=80, pid=4242, user="www-data",
              args=None, extra_process=None):
    hid, os_type, src_ip = HOSTS[host]
    proc = {"pid": pid, "name": pname, "executable": exe,
            "entity_id": "%s-%d" % (host, pid)}
    if args:
        proc["args"] = args
    if extra_process:
        proc.update(extra_process)
    return {
        "@timestamp": ts,
        "agent": {"type": "endpoint", "version": "8.15.0", "id": "agent-" + host},
        "data_stream": {"dataset": "endpoint.events.network", "namespace": "default", "type": "logs"},
        "ecs": {"version": "8.11.0"},
        "event": {"action": "connection_attempted", "category": ["network"], "type": ["start"],
                  "kind": "event", "module": "endpoint", "dataset": "endpoint.events.network",
                  "created": ts, "ingested": ts, "outcome": "unknown"},
        "host": {"id": hid, "name": host, "hostname": host,
                 "os": {"type": os_type, "family": {"linux": "debian", "windows": "windows", "macos": "darwin"}[os_type]}},
        "process": proc,
        "source": {"ip": src_ip, "port": 40000 + pid % 20000},
        "destination": {"ip": dst_ip, "port": dst_port},
        "network": {"transport": "tcp", "type": "ipv4", "direction": "egress"},
        "user": {"name": user, "id": "33" if user == "www-data" else "1000"},
    }


def dotted(doc, prefix=""):
    """Flatten a nested document into literal dotted keys (as some shippers write it)."""
    out = {}
    for k, v in doc.items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(dotted(v, key + "."))
        else:
            out[key] = v
    return out


def write(name, events):
    with open(os.path.join(OUT, name), "w") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")


attacks = [
    net_event("2026-05-01T09:14:03.120Z", "web-1", "curl", "/usr/bin/curl", pid=31337,
              args=["curl", "-s", "http://169.254.169.254/latest/meta-data/iam/security-credentials/web-app-role"]),
    # The same tool on the same host two minutes later: not a new term, no second alert.
    net_event("2026-05-01T09:16:10.500Z", "web-1", "curl", "/usr/bin/curl", pid=31390),
    net_event("2026-05-01T10:02:44.000Z", "batch-7", "python3.11", "/tmp/.cache/python3.11", pid=7001, user="batch"),
    # SSRF: the web application's JVM fetched the credentials URL for an attacker.
    net_event("2026-05-01T11:30:00.250Z", "web-2", "java", "/usr/lib/jvm/java-17-openjdk-amd64/bin/java", pid=1880,
              user="tomcat"),
    net_event("2026-05-01T12:05:09.000Z", "win-app-3", "powershell.exe",
              "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", pid=6120, user="svc-app"),
    # A shipper that writes literal dotted keys: the same field names, another shape.
    dotted(net_event("2026-05-01T13:45:00.000Z", "web-2", "wget", "/usr/bin/wget", pid=2222)),
]

benign = [
    net_event("2026-05-01T09:00:00.000Z", "web-1", "amazon-ssm-agent", "/usr/bin/amazon-ssm-agent", pid=812, user="root"),
    net_event("2026-05-01T09:01:00.000Z", "web-1", "curl", "/usr/bin/curl", dst_ip="169.254.170.2", pid=900),
    net_event("2026-05-01T09:02:00.000Z", "web-1", "curl", "/usr/bin/curl", dst_port=8080, pid=901),
    net_event("2026-05-01T09:03:00.000Z", "mac-dev-9", "node", "/usr/local/bin/node", pid=4100, user="dev"),
    net_event("2026-05-01T09:04:00.000Z", "web-2", "node",
              "/vscode/vscode-server/bin/linux-x64/0f0d87fa9e96c856c5212fc86db137ac0d783365/node", pid=4101, user="dev"),
    net_event("2026-05-01T09:05:00.000Z", "mac-dev-9", "Code Helper (Plugin)",
              "/Applications/Visual Studio Code.app/Contents/Frameworks/Code Helper (Plugin).app/Contents/MacOS/Code Helper (Plugin)",
              pid=4102, user="dev",
              extra_process={"code_signature": {"trusted": True, "signing_id": "com.microsoft.VSCode.helper"}}),
    net_event("2026-05-01T09:06:00.000Z", "web-1", "curl", "/usr/bin/curl", dst_ip="93.184.215.14", dst_port=80, pid=902),
    net_event("2026-05-01T09:07:00.000Z", "web-1", "nginx", "/usr/sbin/nginx", pid=903),
    {
        "@timestamp": "2026-05-01T09:08:00.000Z",
        "event": {"category": ["process"], "type": ["start"], "kind": "event", "module": "endpoint",
                  "ingested": "2026-05-01T09:08:00.000Z"},
        "host": {"id": HOSTS["web-1"][0], "name": "web-1", "os": {"type": "linux"}},
        "process": {"pid": 904, "name": "curl", "executable": "/usr/bin/curl",
                    "command_line": "curl -s http://169.254.169.254/latest/meta-data/instance-id",
                    "args": ["curl", "-s", "http://169.254.169.254/latest/meta-data/instance-id"]},
    },
]

# Packetbeat-style HTTP event with the credentials response body: the secrets must be redacted
# in everything imdsguard writes.
creds = {"Code": "Success", "LastUpdated": "2026-05-01T09:10:00Z", "Type": "AWS-HMAC",
         "AccessKeyId": "ASIAEXAMPLEEXAMPLE12", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
         "Token": "IQoJb3JpZ2luX2VjEXAMPLETOKENEXAMPLETOKENEXAMPLETOKEN==", "Expiration": "2026-05-01T15:30:00Z"}
packetbeat = net_event("2026-05-01T14:00:00.000Z", "web-2", "curl", "/usr/bin/curl", pid=2400)
packetbeat["event"].update({"dataset": "network_traffic.http", "module": "network_traffic",
                            "category": ["network"], "type": ["connection", "protocol"]})
packetbeat["agent"]["type"] = "packetbeat"
packetbeat["network"]["protocol"] = "http"
packetbeat["http"] = {"request": {"method": "GET"}, "response": {"status_code": 200,
                      "body": {"content": json.dumps(creds)}}}
packetbeat["url"] = {"path": "/latest/meta-data/iam/security-credentials/web-app-role", "domain": "169.254.169.254",
                     "full": "http://169.254.169.254/latest/meta-data/iam/security-credentials/web-app-role"}
packetbeat["user_agent"] = {"original": "curl/8.5.0"}

next_day = [
    net_event("2026-05-02T08:00:00.000Z", "web-1", "curl", "/usr/bin/curl", pid=32001),
    net_event("2026-05-02T08:30:00.000Z", "batch-7", "curl", "/usr/bin/curl", pid=32002, user="batch"),
]

os.makedirs(OUT, exist_ok=True)
write("2026-05-01-attacks.ndjson", attacks)
write("2026-05-01-benign.ndjson", benign)
write("2026-05-01-packetbeat.ndjson", [packetbeat])
write("2026-05-02.ndjson", next_day)
