//! Rendering alerts and events: table, NDJSON, JSON array, CSV.

use crate::Format;
use anyhow::Context;
use imdsguard_ecs::{Document, FieldPath};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::Path;

/// Where output goes: a file or stdout.
pub fn open_output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

/// The format to use when none was asked for: a table on a terminal, NDJSON otherwise.
pub fn default_format(requested: Option<Format>, to_file: bool) -> Format {
    requested.unwrap_or(if !to_file && std::io::stdout().is_terminal() { Format::Table } else { Format::Ndjson })
}

fn get(doc: &Value, field: &str) -> String {
    let mut out = Vec::new();
    doc.any_value(&FieldPath::new(field), &mut |v| {
        out.push(v.as_keyword().into_owned());
        false
    });
    out.join(",")
}

fn top(doc: &Value, key: &str) -> String {
    match doc.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

/// Columns of the alert table and CSV: (header, how to read it).
const ALERT_COLUMNS: &[(&str, &str)] = &[
    ("original_time", "kibana.alert.original_time"),
    ("severity", "kibana.alert.severity"),
    ("risk_score", "kibana.alert.risk_score"),
    ("rule_name", "kibana.alert.rule.name"),
    ("host", "host.name"),
    ("process", "process.name"),
    ("executable", "process.executable"),
    ("destination", "destination.ip"),
    ("url_path", "url.path"),
    ("new_terms", "kibana.alert.new_terms"),
    ("rule_id", "kibana.alert.rule.rule_id"),
    ("alert_id", "kibana.alert.uuid"),
    ("reason", "kibana.alert.reason"),
];

fn column(doc: &Value, field: &str) -> String {
    if field.starts_with("kibana.") {
        match doc.get(field) {
            Some(Value::Array(items)) => {
                items.iter().map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string())).collect::<Vec<_>>().join(",")
            }
            _ => top(doc, field),
        }
    } else {
        get(doc, field)
    }
}

fn csv_escape(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Write alert documents.
pub fn write_alerts(w: &mut dyn Write, alerts: &[Value], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Ndjson => {
            for a in alerts {
                serde_json::to_writer(&mut *w, a)?;
                w.write_all(b"\n")?;
            }
        }
        Format::Json => {
            serde_json::to_writer_pretty(&mut *w, alerts)?;
            w.write_all(b"\n")?;
        }
        Format::Csv => {
            let header: Vec<&str> = ALERT_COLUMNS.iter().map(|(h, _)| *h).collect();
            writeln!(w, "{},origin", header.join(","))?;
            for a in alerts {
                let mut row: Vec<String> = ALERT_COLUMNS.iter().map(|(_, f)| csv_escape(&column(a, f))).collect();
                row.push(csv_escape(&provenance(a)));
                writeln!(w, "{}", row.join(","))?;
            }
        }
        Format::Table => {
            if alerts.is_empty() {
                writeln!(w, "no alerts")?;
            }
            for (i, a) in alerts.iter().enumerate() {
                if i > 0 {
                    writeln!(w)?;
                }
                let sev = column(a, "kibana.alert.severity").to_uppercase();
                writeln!(w, "[{sev} {}] {}  {}", column(a, "kibana.alert.risk_score"), column(a, "kibana.alert.rule.name"), column(a, "kibana.alert.original_time"))?;
                writeln!(w, "  reason:    {}", column(a, "kibana.alert.reason"))?;
                for (label, field) in [
                    ("host", "host.name"),
                    ("process", "process.executable"),
                    ("command", "process.command_line"),
                    ("url", "url.full"),
                    ("user", "user.name"),
                ] {
                    let v = column(a, field);
                    if !v.is_empty() {
                        writeln!(w, "  {label:<10} {v}")?;
                    }
                }
                let nt = column(a, "kibana.alert.new_terms");
                if !nt.is_empty() {
                    writeln!(w, "  new terms: {nt}")?;
                }
                if let Some(t) = tactics(a) {
                    writeln!(w, "  mitre:     {t}")?;
                }
                writeln!(w, "  source:    {}", provenance(a))?;
                writeln!(w, "  guide:     imdsguard rules show {}", column(a, "kibana.alert.rule.rule_id"))?;
                writeln!(w, "  alert id:  {}", column(a, "kibana.alert.uuid"))?;
            }
        }
    }
    w.flush()?;
    Ok(())
}

fn provenance(a: &Value) -> String {
    match a.get("imdsguard.provenance") {
        Some(p) => format!("{}:{}", p.get("origin").and_then(Value::as_str).unwrap_or("?"), p.get("line").and_then(Value::as_u64).unwrap_or(0)),
        None => String::new(),
    }
}

fn tactics(a: &Value) -> Option<String> {
    let threat = a.get("kibana.alert.rule.threat")?.as_array()?;
    let mut parts = Vec::new();
    for t in threat {
        let tactic = t.pointer("/tactic/id").and_then(Value::as_str).unwrap_or("");
        let mut techs = Vec::new();
        for tech in t.get("technique").and_then(Value::as_array).into_iter().flatten() {
            let subs: Vec<&str> = tech
                .get("subtechnique")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| s.get("id").and_then(Value::as_str))
                .collect();
            if subs.is_empty() {
                techs.push(tech.get("id").and_then(Value::as_str).unwrap_or("").to_string());
            } else {
                techs.extend(subs.iter().map(|s| s.to_string()));
            }
        }
        parts.push(format!("{tactic} {}", techs.join(" ")).trim().to_string());
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("; "))
    }
}

/// Write one event (for `search`), redacting credentials first.
pub fn write_event(w: &mut dyn Write, event: &sonic_rs::Value, ids: Option<&str>, pretty: bool) -> anyhow::Result<()> {
    let mut doc: Value = serde_json::to_value(event)?;
    imdsguard_ecs::redact(&mut doc);
    let doc = &doc;
    match ids {
        Some(field) => {
            // One line per matching event; several values are joined with commas.
            writeln!(w, "{}", get(doc, field))?;
        }
        None => {
            if pretty {
                serde_json::to_writer_pretty(&mut *w, doc)?;
            } else {
                serde_json::to_writer(&mut *w, doc)?;
            }
            w.write_all(b"\n")?;
        }
    }
    Ok(())
}
