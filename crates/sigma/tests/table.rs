//! Data-driven test of every value modifier and condition form: (detection YAML, event, expected).

use imdsguard_ecs::FieldTable;
use imdsguard_sigma::{apply, lower, parse_rule, Pipeline};

fn rule_text(detection: &str) -> String {
    let body: String = detection.lines().map(|l| format!("    {l}\n")).collect();
    format!("title: t\nlogsource:\n    product: test\ndetection:\n{body}")
}

fn run(detection: &str, event: &str, pipelines: &[Pipeline]) -> Result<bool, String> {
    let rule = parse_rule(&rule_text(detection)).map_err(|e| e.to_string())?;
    let resolved = apply(&rule, pipelines)?;
    let m = lower(&resolved.query, &FieldTable::ecs())?;
    let doc: serde_json::Value = serde_json::from_str(event).map_err(|e| e.to_string())?;
    Ok(m.matches(&doc))
}

#[rustfmt::skip]
const CASES: &[(&str, &str, &str, bool)] = &[
    // (name, detection, event, expected)
    ("plain equals, case-insensitive", "sel:\n  f: Curl\ncondition: sel", r#"{"f":"curl"}"#, true),
    ("plain equals, other value", "sel:\n  f: curl\ncondition: sel", r#"{"f":"wget"}"#, false),
    ("plain equals is whole value", "sel:\n  f: curl\ncondition: sel", r#"{"f":"curl -s"}"#, false),
    ("list is OR", "sel:\n  f: [a, b]\ncondition: sel", r#"{"f":"b"}"#, true),
    ("map is AND", "sel:\n  f: a\n  g: b\ncondition: sel", r#"{"f":"a","g":"c"}"#, false),
    ("map is AND (both)", "sel:\n  f: a\n  g: b\ncondition: sel", r#"{"f":"a","g":"b"}"#, true),
    ("list of maps is OR", "sel:\n  - f: a\n  - g: b\ncondition: sel", r#"{"g":"b"}"#, true),
    ("wildcard *", "sel:\n  f: 'c*l'\ncondition: sel", r#"{"f":"CURL"}"#, true),
    ("wildcard ?", "sel:\n  f: 'c?rl'\ncondition: sel", r#"{"f":"curl"}"#, true),
    ("wildcard ? is one char", "sel:\n  f: 'c?rl'\ncondition: sel", r#"{"f":"cuurl"}"#, false),
    ("escaped * is literal", "sel:\n  f: 'a\\*b'\ncondition: sel", r#"{"f":"a*b"}"#, true),
    ("escaped * does not wildcard", "sel:\n  f: 'a\\*b'\ncondition: sel", r#"{"f":"axxb"}"#, false),
    ("escaped ? is literal", "sel:\n  f: 'a\\?'\ncondition: sel", r#"{"f":"a?"}"#, true),
    ("escaped backslash", "sel:\n  f: 'C:\\\\*'\ncondition: sel", r#"{"f":"C:\\x"}"#, true),
    ("lone backslash literal", "sel:\n  f: 'C:\\Windows\\'\ncondition: sel", r#"{"f":"c:\\windows\\"}"#, true),
    ("contains", "sel:\n  f|contains: 169.254\ncondition: sel", r#"{"f":"http://169.254.169.254/"}"#, true),
    ("contains miss", "sel:\n  f|contains: 169.254\ncondition: sel", r#"{"f":"http://10.0.0.1/"}"#, false),
    ("startswith", "sel:\n  f|startswith: /usr\ncondition: sel", r#"{"f":"/USR/bin/curl"}"#, true),
    ("startswith miss", "sel:\n  f|startswith: /usr\ncondition: sel", r#"{"f":"/bin/usr"}"#, false),
    ("endswith", "sel:\n  f|endswith: /curl\ncondition: sel", r#"{"f":"/usr/bin/curl"}"#, true),
    ("endswith miss", "sel:\n  f|endswith: /curl\ncondition: sel", r#"{"f":"/usr/bin/curl2"}"#, false),
    ("contains list (one automaton)", "sel:\n  f|contains: [Meta-Data, IAM]\ncondition: sel", r#"{"f":"/latest/META-data/x"}"#, true),
    ("contains list miss", "sel:\n  f|contains: [meta-data, iam]\ncondition: sel", r#"{"f":"/latest/dynamic"}"#, false),
    ("contains list non-ASCII", "sel:\n  f|contains: [ÉTÉ, x1]\ncondition: sel", r#"{"f":"un été"}"#, true),
    ("contains list cased", "sel:\n  f|contains|cased: [AWS, GCP]\ncondition: sel", r#"{"f":"aws gcp"}"#, false),
    ("contains list with wildcard", "sel:\n  f|contains: ['a*b', c]\ncondition: sel", r#"{"f":"xaYYbx"}"#, true),
    ("keyword list, mixed kinds", "keywords:\n  - 'foo*bar'\n  - baz\ncondition: keywords", r#"{"a":"xFOOzBARx"}"#, true),
    ("contains|all", "sel:\n  f|contains|all: [a, b]\ncondition: sel", r#"{"f":"xaxbx"}"#, true),
    ("contains|all miss", "sel:\n  f|contains|all: [a, b]\ncondition: sel", r#"{"f":"xax"}"#, false),
    ("cased", "sel:\n  f|cased: Curl\ncondition: sel", r#"{"f":"curl"}"#, false),
    ("cased hit", "sel:\n  f|cased: Curl\ncondition: sel", r#"{"f":"Curl"}"#, true),
    ("contains|cased", "sel:\n  f|contains|cased: AWS\ncondition: sel", r#"{"f":"my aws"}"#, false),
    ("re search", "sel:\n  f|re: 'latest/meta-data/iam/.*'\ncondition: sel", r#"{"f":"/latest/meta-data/iam/x"}"#, true),
    ("re is case-sensitive", "sel:\n  f|re: 'Meta'\ncondition: sel", r#"{"f":"meta"}"#, false),
    ("re|i", "sel:\n  f|re|i: 'Meta'\ncondition: sel", r#"{"f":"meta"}"#, true),
    ("re|m", "sel:\n  f|re|m: '^b$'\ncondition: sel", r#"{"f":"a\nb\nc"}"#, true),
    ("re without m", "sel:\n  f|re: '^b$'\ncondition: sel", r#"{"f":"a\nb\nc"}"#, false),
    ("re|s", "sel:\n  f|re|s: 'a.c'\ncondition: sel", r#"{"f":"a\nc"}"#, true),
    ("re without s", "sel:\n  f|re: 'a.c'\ncondition: sel", r#"{"f":"a\nc"}"#, false),
    ("cidr v4", "sel:\n  f|cidr: 169.254.0.0/16\ncondition: sel", r#"{"f":"169.254.169.254"}"#, true),
    ("cidr v4 miss", "sel:\n  f|cidr: 169.254.0.0/16\ncondition: sel", r#"{"f":"10.1.2.3"}"#, false),
    ("cidr v6", "sel:\n  f|cidr: 'fd00:ec2::/32'\ncondition: sel", r#"{"f":"fd00:ec2::254"}"#, true),
    ("cidr list", "sel:\n  f|cidr: [10.0.0.0/8, 192.168.0.0/16]\ncondition: sel", r#"{"f":"192.168.1.1"}"#, true),
    ("base64", "sel:\n  f|base64: 'http://'\ncondition: sel", r#"{"f":"aHR0cDovLw=="}"#, true),
    ("base64|contains", "sel:\n  f|base64|contains: 'http://'\ncondition: sel", r#"{"f":"xxaHR0cDovLw==yy"}"#, true),
    ("base64 is cased", "sel:\n  f|base64: 'http://'\ncondition: sel", r#"{"f":"AHR0CDOVLW=="}"#, false),
    ("base64offset|contains 0", "sel:\n  f|base64offset|contains: /bin/bash\ncondition: sel", r#"{"f":"L2Jpbi9iYXNoIC1p"}"#, true),
    ("base64offset|contains 1", "sel:\n  f|base64offset|contains: /bin/bash\ncondition: sel", r#"{"f":"eC9iaW4vYmFzaA=="}"#, true),
    ("base64offset|contains 2", "sel:\n  f|base64offset|contains: /bin/bash\ncondition: sel", r#"{"f":"eHgvYmluL2Jhc2g="}"#, true),
    ("base64offset miss", "sel:\n  f|base64offset|contains: /bin/bash\ncondition: sel", r#"{"f":"Y3VybA=="}"#, false),
    ("utf16le|base64offset", "sel:\n  f|utf16le|base64offset|contains: cmd\ncondition: sel", r#"{"f":"YwBtAGQA"}"#, true),
    ("wide|base64offset", "sel:\n  f|wide|base64offset|contains: cmd\ncondition: sel", r#"{"f":"YwBtAGQA"}"#, true),
    ("utf16be|base64", "sel:\n  f|utf16be|base64: cmd\ncondition: sel", r#"{"f":"AGMAbQBk"}"#, true),
    ("utf16|base64", "sel:\n  f|utf16|base64: cmd\ncondition: sel", r#"{"f":"//5jAG0AZAA="}"#, true),
    ("windash -", "sel:\n  f|windash|contains: ' -enc '\ncondition: sel", r#"{"f":"powershell /enc x"}"#, true),
    ("windash en dash", "sel:\n  f|windash|contains: ' -enc '\ncondition: sel", "{\"f\":\"powershell \u{2013}enc x\"}", true),
    ("windash miss", "sel:\n  f|windash|contains: ' -enc '\ncondition: sel", r#"{"f":"powershell enc x"}"#, false),
    ("exists true", "sel:\n  f|exists: true\ncondition: sel", r#"{"f":"x"}"#, true),
    ("exists true miss", "sel:\n  f|exists: true\ncondition: sel", r#"{"g":"x"}"#, false),
    ("exists false", "sel:\n  f|exists: false\ncondition: sel", r#"{"g":"x"}"#, true),
    ("null = missing", "sel:\n  f: null\ncondition: sel", r#"{"g":"x"}"#, true),
    ("null = json null", "sel:\n  f: null\ncondition: sel", r#"{"f":null}"#, true),
    ("null miss", "sel:\n  f: null\ncondition: sel", r#"{"f":"x"}"#, false),
    ("empty string", "sel:\n  f: ''\ncondition: sel", r#"{"f":""}"#, true),
    ("fieldref equal", "sel:\n  f|fieldref: g\ncondition: sel", r#"{"f":"Root","g":"root"}"#, true),
    ("fieldref differ", "sel:\n  f|fieldref: g\ncondition: sel", r#"{"f":"a","g":"b"}"#, false),
    ("fieldref contains", "sel:\n  f|fieldref|contains: g\ncondition: sel", r#"{"f":"xay","g":"a"}"#, true),
    ("fieldref missing other", "sel:\n  f|fieldref: g\ncondition: sel", r#"{"f":"a"}"#, false),
    ("gt", "sel:\n  f|gt: 10\ncondition: sel", r#"{"f":11}"#, true),
    ("gt equal", "sel:\n  f|gt: 10\ncondition: sel", r#"{"f":10}"#, false),
    ("gte", "sel:\n  f|gte: 10\ncondition: sel", r#"{"f":10}"#, true),
    ("lt", "sel:\n  f|lt: 10\ncondition: sel", r#"{"f":"9"}"#, true),
    ("lte", "sel:\n  f|lte: 10\ncondition: sel", r#"{"f":10.5}"#, false),
    ("neq", "sel:\n  f|neq: a\ncondition: sel", r#"{"f":"b"}"#, true),
    ("neq same", "sel:\n  f|neq: a\ncondition: sel", r#"{"f":"A"}"#, false),
    ("number equals", "sel:\n  f: 80\ncondition: sel", r#"{"f":80}"#, true),
    ("number equals string", "sel:\n  f: 80\ncondition: sel", r#"{"f":"80"}"#, true),
    ("number equals other", "sel:\n  f: 80\ncondition: sel", r#"{"f":8080}"#, false),
    ("numeric field, string value", "sel:\n  destination.port: '80'\ncondition: sel", r#"{"destination":{"port":80.0}}"#, true),
    ("bool value", "sel:\n  f: true\ncondition: sel", r#"{"f":true}"#, true),
    ("minute", "sel:\n  t|minute: 45\ncondition: sel", r#"{"t":"2024-12-30T13:45:10Z"}"#, true),
    ("hour", "sel:\n  t|hour: 13\ncondition: sel", r#"{"t":"2024-12-30T13:45:10Z"}"#, true),
    ("hour miss", "sel:\n  t|hour: 12\ncondition: sel", r#"{"t":"2024-12-30T13:45:10Z"}"#, false),
    ("day", "sel:\n  t|day: 30\ncondition: sel", r#"{"t":"2024-12-30T13:45:10Z"}"#, true),
    ("week", "sel:\n  t|week: 1\ncondition: sel", r#"{"t":"2024-12-30T13:45:10Z"}"#, true),
    ("month", "sel:\n  t|month: 12\ncondition: sel", r#"{"t":"2024-12-30T13:45:10Z"}"#, true),
    ("year", "sel:\n  t|year: 2024\ncondition: sel", r#"{"t":"2024-12-30T13:45:10Z"}"#, true),
    ("hour|gte", "sel:\n  t|hour|gte: 20\ncondition: sel", r#"{"t":"2024-12-30T13:45:10Z"}"#, false),
    ("keyword contains", "keywords:\n  - 'meta-data/iam'\ncondition: keywords", r#"{"a":{"b":"GET /latest/meta-data/iam/x"}}"#, true),
    ("keyword miss", "keywords:\n  - 'meta-data/iam'\ncondition: keywords", r#"{"a":"nothing"}"#, false),
    ("keyword list OR", "keywords:\n  - foo\n  - bar\ncondition: keywords", r#"{"a":"xbarx"}"#, true),
    ("keywords |all", "keywords:\n  '|all':\n    - foo\n    - bar\ncondition: keywords", r#"{"a":"foo","b":"bar"}"#, true),
    ("keywords |all miss", "keywords:\n  '|all':\n    - foo\n    - bar\ncondition: keywords", r#"{"a":"foo"}"#, false),
    ("array value", "sel:\n  f: b\ncondition: sel", r#"{"f":["a","b"]}"#, true),
    ("nested object path", "sel:\n  process.name: curl\ncondition: sel", r#"{"process":{"name":"curl"}}"#, true),
    // Conditions.
    ("and", "a:\n  f: 1\nb:\n  g: 2\ncondition: a and b", r#"{"f":1,"g":2}"#, true),
    ("and miss", "a:\n  f: 1\nb:\n  g: 2\ncondition: a and b", r#"{"f":1}"#, false),
    ("or", "a:\n  f: 1\nb:\n  g: 2\ncondition: a or b", r#"{"g":2}"#, true),
    ("not", "a:\n  f: 1\ncondition: not a", r#"{"f":2}"#, true),
    ("and not", "a:\n  f: 1\nfilter:\n  g: 2\ncondition: a and not filter", r#"{"f":1,"g":2}"#, false),
    ("parentheses", "a:\n  f: 1\nb:\n  g: 2\nc:\n  h: 3\ncondition: a and (b or c)", r#"{"f":1,"h":3}"#, true),
    ("precedence and over or", "a:\n  f: 1\nb:\n  g: 2\nc:\n  h: 3\ncondition: a or b and c", r#"{"f":1}"#, true),
    ("precedence and over or 2", "a:\n  f: 1\nb:\n  g: 2\nc:\n  h: 3\ncondition: a or b and c", r#"{"g":2}"#, false),
    ("1 of pattern", "sel_a:\n  f: 1\nsel_b:\n  g: 2\ncondition: 1 of sel_*", r#"{"g":2}"#, true),
    ("all of pattern", "sel_a:\n  f: 1\nsel_b:\n  g: 2\ncondition: all of sel_*", r#"{"g":2}"#, false),
    ("all of pattern hit", "sel_a:\n  f: 1\nsel_b:\n  g: 2\ncondition: all of sel_*", r#"{"f":1,"g":2}"#, true),
    ("1 of them", "a:\n  f: 1\nb:\n  g: 2\ncondition: 1 of them", r#"{"g":2}"#, true),
    ("all of them", "a:\n  f: 1\nb:\n  g: 2\ncondition: all of them", r#"{"g":2}"#, false),
    ("them skips _ names", "a:\n  f: 1\n_b:\n  g: 2\ncondition: all of them", r#"{"f":1}"#, true),
    ("not 1 of", "sel:\n  f: 1\nfilter_a:\n  g: 2\nfilter_b:\n  h: 3\ncondition: sel and not 1 of filter_*", r#"{"f":1,"h":3}"#, false),
    ("condition list is OR", "a:\n  f: 1\nb:\n  g: 2\ncondition:\n  - a\n  - b", r#"{"g":2}"#, true),
];

#[test]
fn every_modifier_and_condition_form() {
    let mut failures = Vec::new();
    for (name, det, event, want) in CASES {
        match run(det, event, &[]) {
            Ok(got) if got == *want => {}
            Ok(got) => failures.push(format!("{name}: expected {want}, got {got}")),
            Err(e) => failures.push(format!("{name}: error {e}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

#[test]
fn expand_uses_pipeline_vars() {
    let p = Pipeline::parse(
        "name: t\nvars:\n  admins: [root, admin]\ntransformations:\n  - type: value_placeholders\n",
        "t.yml",
    )
    .map_err(|e| e.to_string());
    let p = match p {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let det = "sel:\n  user|expand: '%admins%'\ncondition: sel";
    assert_eq!(run(det, r#"{"user":"Admin"}"#, std::slice::from_ref(&p)), Ok(true));
    assert_eq!(run(det, r#"{"user":"bob"}"#, std::slice::from_ref(&p)), Ok(false));
    // Without values the rule does not load, with a reason.
    let err = run(det, r#"{"user":"x"}"#, &[]).err().unwrap_or_default();
    assert!(err.contains("placeholder"), "{err}");
}

#[test]
fn invalid_and_unsupported_reasons() {
    let cases = [
        ("sel:\n  f|nosuch: a\ncondition: sel", "unknown value modifier `nosuch`"),
        ("sel:\n  f: a\ncondition: sel and x", "no search identifier named `x`"),
        ("sel:\n  f: a\ncondition: 1 of nothing*", "matches no search identifier"),
        ("sel:\n  f: a\ncondition: sel | count() > 4", "aggregation"),
        ("sel:\n  f|re: '(?<=a)b'\ncondition: sel", "regular expression"),
        ("sel:\n  f|utf16le: a\ncondition: sel", "only apply together with base64"),
        ("sel:\n  f|exists: maybe\ncondition: sel", "`exists` takes true or false"),
        ("sel:\n  f|gt: abc\ncondition: sel", "needs a number"),
        ("sel:\n  f|cidr: 10.0.0.0/99\ncondition: sel", "not a CIDR block"),
        ("sel:\n  f: []\ncondition: sel", "empty list"),
        ("sel:\n  f: a\n", "no `condition`"),
    ];
    for (det, want) in cases {
        let err = run(det, "{}", &[]).err().unwrap_or_default();
        assert!(err.contains(want), "{det}: expected {want:?} in {err:?}");
    }
}

#[test]
fn builtin_pipelines_map_linux_process_creation() {
    let text = "title: t\nlogsource:\n  product: linux\n  category: process_creation\ndetection:\n  sel:\n    Image|endswith: /curl\n    CommandLine|contains: 169.254.169.254\n  condition: sel\n";
    let rule = parse_rule(text).map_err(|e| e.to_string());
    let rule = match rule {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let resolved = apply(&rule, &imdsguard_sigma::builtin_pipelines());
    let m = resolved.and_then(|r| lower(&r.query, &FieldTable::ecs()));
    let m = match m {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let hit: serde_json::Value = serde_json::json!({"event":{"category":["process"],"type":["start"]},"host":{"os":{"type":"linux"}},
        "process":{"executable":"/usr/bin/curl","command_line":"curl http://169.254.169.254/latest/meta-data/"}});
    let wrong_kind: serde_json::Value = serde_json::json!({"event":{"category":["network"]},"host":{"os":{"type":"linux"}},
        "process":{"executable":"/usr/bin/curl","command_line":"curl http://169.254.169.254/latest/meta-data/"}});
    assert!(m.matches(&hit));
    assert!(!m.matches(&wrong_kind));
}

#[test]
fn initiated_maps_to_network_direction() {
    let text = "title: t\nlogsource:\n  product: linux\n  category: network_connection\ndetection:\n  sel:\n    Initiated: 'true'\n    DestinationIp: 169.254.169.254\n  condition: sel\n";
    let rule = parse_rule(text).map_err(|e| e.to_string());
    let Ok(rule) = rule else { panic!("{rule:?}") };
    let m = apply(&rule, &imdsguard_sigma::builtin_pipelines()).and_then(|r| lower(&r.query, &FieldTable::ecs()));
    let Ok(m) = m else { panic!("{m:?}") };
    for (dir, want) in [("egress", true), ("outbound", true), ("ingress", false)] {
        let ev = serde_json::json!({"event":{"category":"network"},"host":{"os":{"type":"linux"}},"network":{"direction":dir},"destination":{"ip":"169.254.169.254"}});
        assert_eq!(m.matches(&ev), want, "{dir}");
    }
}
