//! Field types: which Elasticsearch type each field has, so queries can apply that type's semantics.
//!
//! The built-in table is generated from the Elastic Common Schema (see `scripts/gen_ecs_fields.py`);
//! users extend it with an Elasticsearch mapping for their own fields
//! ([`FieldTable::extend_from_mapping`] takes the JSON of `GET <index>/_mapping`).
//!
//! Besides the type, the table keeps what else in a mapping changes which documents a query
//! matches: field aliases ([`FieldTable::resolve_alias`]), `nested` parents
//! ([`FieldTable::nested_parent`]), `ignore_above` (longer keyword values are not indexed, so no
//! query sees them: [`FieldTable::ignore_above`]) and `index: false` ([`FieldTable::is_indexed`]).

use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// The Elastic Common Schema version [`FieldTable::ecs`] was generated from.
pub const ECS_VERSION: &str = crate::generated::ECS_VERSION;

/// Elasticsearch field types that change how a query matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Keyword,
    ConstantKeyword,
    Wildcard,
    Text,
    MatchOnlyText,
    Long,
    Integer,
    Short,
    Byte,
    UnsignedLong,
    Double,
    Float,
    HalfFloat,
    ScaledFloat,
    Date,
    DateNanos,
    Boolean,
    Ip,
    Object,
    Nested,
    Flattened,
    GeoPoint,
    Binary,
    /// `version`: semantic versions, ordered by their numeric parts.
    Version,
    /// Any other type (e.g. `histogram`): matched like a keyword.
    Other,
}

impl FieldType {
    /// Map an Elasticsearch type name (`"keyword"`, `"match_only_text"`, ...).
    pub fn from_es(name: &str) -> FieldType {
        match name {
            "keyword" => FieldType::Keyword,
            "constant_keyword" => FieldType::ConstantKeyword,
            "wildcard" => FieldType::Wildcard,
            "text" => FieldType::Text,
            "match_only_text" => FieldType::MatchOnlyText,
            "long" => FieldType::Long,
            "integer" => FieldType::Integer,
            "short" => FieldType::Short,
            "byte" => FieldType::Byte,
            "unsigned_long" => FieldType::UnsignedLong,
            "double" => FieldType::Double,
            "float" => FieldType::Float,
            "half_float" => FieldType::HalfFloat,
            "scaled_float" => FieldType::ScaledFloat,
            "date" => FieldType::Date,
            "date_nanos" => FieldType::DateNanos,
            "boolean" => FieldType::Boolean,
            "ip" => FieldType::Ip,
            "object" => FieldType::Object,
            "nested" => FieldType::Nested,
            "flattened" => FieldType::Flattened,
            "geo_point" => FieldType::GeoPoint,
            "binary" => FieldType::Binary,
            "version" => FieldType::Version,
            _ => FieldType::Other,
        }
    }

    pub fn is_integer(self) -> bool {
        matches!(
            self,
            FieldType::Long | FieldType::Integer | FieldType::Short | FieldType::Byte | FieldType::UnsignedLong
        )
    }

    pub fn is_numeric(self) -> bool {
        self.is_integer()
            || matches!(self, FieldType::Double | FieldType::Float | FieldType::HalfFloat | FieldType::ScaledFloat)
    }

    pub fn is_date(self) -> bool {
        matches!(self, FieldType::Date | FieldType::DateNanos)
    }

    /// Analysed text: matched token by token.
    pub fn is_text(self) -> bool {
        matches!(self, FieldType::Text | FieldType::MatchOnlyText)
    }
}

/// An error in a user-supplied mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("mapping has no `properties` object (expected the JSON of `GET <index>/_mapping`)")]
    NoProperties,
    #[error("mapping: expected an object at `{path}`, found {found}")]
    NotAnObject { path: String, found: &'static str },
    #[error("mapping: index `{index}` has no `mappings` (expected the JSON of `GET <index>/_mapping`)")]
    NoMappings { index: String },
    #[error("mapping: field `{field}` has a `type` that is not a string")]
    BadType { field: String },
    #[error("mapping: alias `{field}` has no string `path`")]
    AliasWithoutPath { field: String },
    #[error("mapping: alias `{field}` points to `{target}`, which is not a mapped field")]
    UnknownAliasTarget { field: String, target: String },
    #[error("mapping: alias `{field}` points to `{target}`, which is itself an alias")]
    AliasToAlias { field: String, target: String },
}

/// Field name -> type, plus aliases, `ignore_above` and non-indexed fields.
#[derive(Debug, Clone, Default)]
pub struct FieldTable {
    types: HashMap<String, FieldType>,
    /// alias name -> target path (the alias's type in `types` is the target's).
    aliases: HashMap<String, String>,
    ignore_above: HashMap<String, u32>,
    not_indexed: HashSet<String>,
}

/// imdsguard's custom `imds` field set (see `docs/imds-fields.md`), typed as its Elasticsearch
/// mapping types it, so that queries on these fields get the same semantics here as in an index
/// that carries that mapping. [`FieldTable::ecs`] includes it.
pub const IMDS_FIELDS: &[(&str, &str)] = &[
    ("imds", "object"),
    ("imds.cloud_provider", "keyword"),
    ("imds.credentials_request", "boolean"),
    ("imds.forwarded", "boolean"),
    ("imds.required_header_present", "boolean"),
    ("imds.aws", "object"),
    ("imds.aws.is_imds_v2", "boolean"),
    ("imds.aws.token_request", "boolean"),
    ("imds.aws.token_ttl_seconds", "long"),
    ("imds.credentials", "object"),
    ("imds.credentials.type", "keyword"),
    ("imds.credentials.expiration", "date"),
    ("imds.credentials.expires_in", "long"),
    ("imds.credentials.role", "keyword"),
    ("imds.credentials.returned", "boolean"),
];

impl FieldTable {
    /// An empty table: every field is untyped.
    pub fn empty() -> Self {
        FieldTable::default()
    }

    /// The Elastic Common Schema fields (about 2,700, multi-fields such as `process.name.text`
    /// included). Builds hash maps: call once per process and share.
    pub fn ecs() -> Self {
        let mut t = FieldTable::empty();
        t.types.reserve(crate::generated::ECS_FIELDS.len());
        for (name, ty) in crate::generated::ECS_FIELDS {
            t.types.insert((*name).to_string(), FieldType::from_es(ty));
        }
        for (name, n) in crate::generated::ECS_IGNORE_ABOVE {
            t.ignore_above.insert((*name).to_string(), *n);
        }
        for name in crate::generated::ECS_NOT_INDEXED {
            t.not_indexed.insert((*name).to_string());
        }
        for (name, ty) in IMDS_FIELDS {
            t.types.insert((*name).to_string(), FieldType::from_es(ty));
        }
        t
    }

    /// The type of `name` (for an alias: the type of its target).
    pub fn get(&self, name: &str) -> Option<FieldType> {
        self.types.get(name).copied()
    }

    /// Define (or redefine) a concrete field: forgets any alias, `ignore_above` or `index: false`
    /// previously recorded under that name.
    pub fn insert(&mut self, name: impl Into<String>, ty: FieldType) {
        let name = name.into();
        self.aliases.remove(&name);
        self.ignore_above.remove(&name);
        self.not_indexed.remove(&name);
        self.types.insert(name, ty);
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Every known field (aliases included), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, FieldType)> {
        self.types.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// The path an alias points to; `name` itself when it is not an alias.
    pub fn resolve_alias<'a>(&'a self, name: &'a str) -> &'a str {
        match self.aliases.get(name) {
            Some(target) => target.as_str(),
            None => name,
        }
    }

    /// Whether `name` is a field alias.
    pub fn is_alias(&self, name: &str) -> bool {
        self.aliases.contains_key(name)
    }

    /// `ignore_above` of the field (through aliases): string values longer than this many
    /// characters are not indexed, so no query (not even `exists`) matches them.
    pub fn ignore_above(&self, name: &str) -> Option<u32> {
        self.ignore_above.get(self.resolve_alias(name)).copied()
    }

    /// Whether the field is searchable (`false` for fields mapped with `index: false`, such as
    /// `event.original`). Unknown fields are reported as indexed.
    pub fn is_indexed(&self, name: &str) -> bool {
        !self.not_indexed.contains(self.resolve_alias(name))
    }

    /// The parent a multi-field (`process.name.text`) is indexed from, when `name` is one: its
    /// documents have no key of their own, Elasticsearch indexes the parent's value.
    pub fn multi_field_parent<'a>(&self, name: &'a str) -> Option<&'a str> {
        let (parent, _) = name.rsplit_once('.')?;
        match self.get(parent)? {
            FieldType::Object | FieldType::Nested | FieldType::Flattened => None,
            _ => Some(parent),
        }
    }

    /// The closest proper ancestor of `name` (after alias resolution) typed `nested`, if any:
    /// for `dll.pe.sections.name`, `Some("dll.pe.sections")`.
    pub fn nested_parent(&self, name: &str) -> Option<&str> {
        let name = self.resolve_alias(name);
        let mut end = name.len();
        while let Some(dot) = name[..end].rfind('.') {
            let prefix = &name[..dot];
            if let Some((k, FieldType::Nested)) = self.types.get_key_value(prefix) {
                return Some(k.as_str());
            }
            end = dot;
        }
        None
    }

    /// Fields whose name matches the glob `pattern` (`*` matches any characters, dots included;
    /// everything else literally), sorted by name. Aliases are included with their target's type.
    pub fn matching(&self, pattern: &str) -> Vec<(&str, FieldType)> {
        if !pattern.contains('*') {
            return self.types.get_key_value(pattern).map(|(k, v)| (k.as_str(), *v)).into_iter().collect();
        }
        let mut out: Vec<(&str, FieldType)> =
            self.iter().filter(|(name, _)| glob_match(pattern.as_bytes(), name.as_bytes())).collect();
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Add the fields of an Elasticsearch mapping, overriding earlier definitions of the same name.
    ///
    /// Accepts the JSON of `GET <index>/_mapping` (`{"<index>": {"mappings": {...}}}`, one entry
    /// per index or data-stream backing index; when indices disagree the one listed last wins), a
    /// bare `{"mappings": {...}}` or a bare `{"properties": {...}}`. Records every field under its
    /// full dotted name: objects (only when explicitly typed), `nested` fields and their children,
    /// multi-fields (`fields.text` -> `name.text`), aliases (with their target's type; see
    /// [`FieldTable::resolve_alias`]), `passthrough` children (also reachable without the prefix),
    /// and the `runtime` section (which shadows mapped fields, as in Elasticsearch). Also records
    /// `ignore_above` and `index: false`.
    ///
    /// Returns how many names were added or changed. On error the table is left unchanged.
    pub fn extend_from_mapping(&mut self, mapping: &Value) -> Result<usize, MappingError> {
        let mut staged = Staged::default();
        for (ctx, body) in mapping_bodies(mapping)? {
            if let Some(props) = body.get("properties") {
                let props = as_object(props, &join(&ctx, "properties"))?;
                staged.walk_properties(props, "")?;
            }
            if let Some(runtime) = body.get("runtime") {
                let runtime = as_object(runtime, &join(&ctx, "runtime"))?;
                staged.walk_runtime(runtime)?;
            }
        }
        self.apply(staged)
    }

    fn apply(&mut self, staged: Staged) -> Result<usize, MappingError> {
        // Final concrete definitions (later wins).
        let mut concrete: HashMap<&str, &Entry> = HashMap::new();
        for e in &staged.entries {
            concrete.insert(e.name.as_str(), e);
        }
        let mut staged_aliases: HashMap<&str, &str> = HashMap::new();
        for (alias, target) in &staged.aliases {
            if concrete.contains_key(alias.as_str()) {
                continue; // redefined as a concrete field later on
            }
            staged_aliases.insert(alias.as_str(), target.as_str());
        }
        // Resolve every alias before changing anything.
        let mut resolved_aliases: Vec<(&str, &str, FieldType)> = Vec::new();
        for (alias, target) in &staged.aliases {
            if staged_aliases.get(alias.as_str()) != Some(&target.as_str()) {
                continue;
            }
            let ty = if let Some(e) = concrete.get(target.as_str()) {
                e.ty
            } else if staged_aliases.contains_key(target.as_str())
                || (self.aliases.contains_key(target.as_str()) && !concrete.contains_key(target.as_str()))
            {
                return Err(MappingError::AliasToAlias { field: alias.clone(), target: target.clone() });
            } else if let Some(ty) = self.types.get(target.as_str()) {
                *ty
            } else {
                return Err(MappingError::UnknownAliasTarget { field: alias.clone(), target: target.clone() });
            };
            resolved_aliases.push((alias.as_str(), target.as_str(), ty));
        }
        // Passthrough children reachable without their prefix, unless a real field has the name.
        let mut passthrough: Vec<(&str, &str, FieldType)> = Vec::new();
        for (short, full) in &staged.passthrough {
            if concrete.contains_key(short.as_str())
                || staged_aliases.contains_key(short.as_str())
                || (self.types.contains_key(short.as_str()) && !self.aliases.contains_key(short.as_str()))
            {
                continue;
            }
            if let Some(e) = concrete.get(full.as_str()) {
                passthrough.push((short.as_str(), full.as_str(), e.ty));
            }
        }

        let touched: HashSet<&str> = staged
            .entries
            .iter()
            .map(|e| e.name.as_str())
            .chain(resolved_aliases.iter().chain(&passthrough).map(|a| a.0))
            .collect();
        let before: Vec<(&str, FieldState)> = touched.iter().map(|n| (*n, self.state(n))).collect();
        for e in &staged.entries {
            self.insert(e.name.clone(), e.ty);
            if let Some(n) = e.ignore_above {
                self.ignore_above.insert(e.name.clone(), n);
            }
            if !e.indexed {
                self.not_indexed.insert(e.name.clone());
            }
        }
        for (alias, target, ty) in resolved_aliases.iter().chain(&passthrough) {
            self.insert(*alias, *ty);
            self.aliases.insert((*alias).to_string(), (*target).to_string());
        }
        Ok(before.into_iter().filter(|(n, st)| self.state(n) != *st).count())
    }

    fn state(&self, name: &str) -> FieldState {
        (
            self.types.get(name).copied(),
            self.aliases.get(name).cloned(),
            self.ignore_above.get(name).copied(),
            self.not_indexed.contains(name),
        )
    }
}

/// Everything recorded about one name: type, alias target, ignore_above, not indexed.
type FieldState = (Option<FieldType>, Option<String>, Option<u32>, bool);

/// One concrete field found in a mapping.
#[derive(Debug)]
struct Entry {
    name: String,
    ty: FieldType,
    ignore_above: Option<u32>,
    indexed: bool,
}

/// What a mapping defines, collected before the table is changed.
#[derive(Debug, Default)]
struct Staged {
    entries: Vec<Entry>,
    /// (alias, target)
    aliases: Vec<(String, String)>,
    /// (name without the passthrough prefix, full name)
    passthrough: Vec<(String, String)>,
}

impl Staged {
    fn walk_properties(&mut self, props: &Map<String, Value>, prefix: &str) -> Result<(), MappingError> {
        for (key, def) in props {
            let name = join(prefix, key);
            let def = as_object(def, &name)?;
            let ty = match def.get("type") {
                None => None,
                Some(Value::String(t)) => Some(t.as_str()),
                Some(_) => return Err(MappingError::BadType { field: name }),
            };
            match ty {
                None => {
                    // An object: record it only when it has no sub-fields (a dynamic container).
                    match def.get("properties") {
                        Some(p) => self.walk_properties(as_object(p, &join(&name, "properties"))?, &name)?,
                        None => self.push(name, FieldType::Object, def),
                    }
                }
                Some("alias") => match def.get("path") {
                    Some(Value::String(target)) => self.aliases.push((name, target.clone())),
                    _ => return Err(MappingError::AliasWithoutPath { field: name }),
                },
                Some(t @ ("object" | "nested" | "passthrough")) => {
                    let ty = if t == "nested" { FieldType::Nested } else { FieldType::Object };
                    self.push(name.clone(), ty, def);
                    if let Some(p) = def.get("properties") {
                        let p = as_object(p, &join(&name, "properties"))?;
                        let first = self.entries.len();
                        self.walk_properties(p, &name)?;
                        if t == "passthrough" {
                            let cut = name.len() + 1;
                            for e in &self.entries[first..] {
                                if let Some(short) = e.name.get(cut..) {
                                    self.passthrough.push((short.to_string(), e.name.clone()));
                                }
                            }
                        }
                    }
                }
                Some(t) => {
                    self.push(name.clone(), FieldType::from_es(t), def);
                    if let Some(fields) = def.get("fields") {
                        let fields = as_object(fields, &join(&name, "fields"))?;
                        for (sub, sdef) in fields {
                            let sname = join(&name, sub);
                            let sdef = as_object(sdef, &sname)?;
                            match sdef.get("type") {
                                Some(Value::String(st)) => self.push(sname, FieldType::from_es(st), sdef),
                                // A multi-field without a type defaults to `object` in ES, which
                                // is not allowed: report it.
                                _ => return Err(MappingError::BadType { field: sname }),
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn walk_runtime(&mut self, runtime: &Map<String, Value>) -> Result<(), MappingError> {
        for (name, def) in runtime {
            let def = as_object(def, name)?;
            match def.get("type") {
                Some(Value::String(t)) if t == "composite" => {
                    if let Some(fields) = def.get("fields") {
                        for (sub, sdef) in as_object(fields, &join(name, "fields"))? {
                            let sname = join(name, sub);
                            match as_object(sdef, &sname)?.get("type") {
                                Some(Value::String(st)) => self.push_plain(sname, FieldType::from_es(st)),
                                _ => return Err(MappingError::BadType { field: sname }),
                            }
                        }
                    }
                }
                Some(Value::String(t)) => self.push_plain(name.clone(), FieldType::from_es(t)),
                _ => return Err(MappingError::BadType { field: name.clone() }),
            }
        }
        Ok(())
    }

    fn push(&mut self, name: String, ty: FieldType, def: &Map<String, Value>) {
        let ignore_above =
            def.get("ignore_above").and_then(Value::as_u64).map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        let indexed = !matches!(def.get("index"), Some(Value::Bool(false)))
            && def.get("index").and_then(Value::as_str) != Some("false");
        self.entries.push(Entry { name, ty, ignore_above, indexed });
    }

    fn push_plain(&mut self, name: String, ty: FieldType) {
        self.entries.push(Entry { name, ty, ignore_above: None, indexed: true });
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn as_object<'v>(v: &'v Value, path: &str) -> Result<&'v Map<String, Value>, MappingError> {
    v.as_object().ok_or_else(|| MappingError::NotAnObject {
        path: if path.is_empty() { "(top level)".to_string() } else { path.to_string() },
        found: kind(v),
    })
}

fn has_fields(m: &Map<String, Value>) -> bool {
    m.contains_key("properties") || m.contains_key("runtime")
}

/// A mapping body and the path to it (for error messages).
type MappingBody<'v> = (String, &'v Map<String, Value>);

/// The mapping bodies (objects holding `properties`/`runtime`) of the accepted input shapes, each
/// with a path for error messages.
fn mapping_bodies(v: &Value) -> Result<Vec<MappingBody<'_>>, MappingError> {
    let top = as_object(v, "")?;
    let mut raw: Vec<MappingBody<'_>> = Vec::new();
    if let Some(m) = top.get("mappings") {
        raw.push(("mappings".to_string(), as_object(m, "mappings")?));
    } else if has_fields(top) {
        raw.push((String::new(), top));
    } else {
        for (index, body) in top {
            let body = as_object(body, index)?;
            let ctx = join(index, "mappings");
            match body.get("mappings") {
                Some(m) => raw.push((ctx.clone(), as_object(m, &ctx)?)),
                None => return Err(MappingError::NoMappings { index: index.clone() }),
            }
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    for (ctx, body) in raw {
        if has_fields(body) {
            out.push((ctx, body));
        } else if body.len() == 1 {
            // Pre-7.0 typed mapping: {"mappings": {"_doc": {"properties": ...}}}.
            if let Some((ty, Value::Object(inner))) = body.iter().next() {
                if has_fields(inner) {
                    out.push((join(&ctx, ty), inner));
                }
            }
        }
    }
    if out.is_empty() {
        return Err(MappingError::NoProperties);
    }
    Ok(out)
}

/// `*`-glob match over bytes (`*` matches any run, including dots).
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if p < pat.len() && pat[p] == s[i] {
            p += 1;
            i += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ecs_types() {
        let t = FieldTable::ecs();
        assert!(t.len() > 2500, "{}", t.len());
        for (name, ty) in [
            ("destination.ip", FieldType::Ip),
            ("destination.port", FieldType::Long),
            ("process.name", FieldType::Keyword),
            ("process.name.text", FieldType::MatchOnlyText),
            ("process.command_line", FieldType::Wildcard),
            ("message", FieldType::MatchOnlyText),
            ("@timestamp", FieldType::Date),
            ("process.code_signature.trusted", FieldType::Boolean),
            ("event.ingested", FieldType::Date),
            ("labels", FieldType::Object),
            ("dll.pe.sections", FieldType::Nested),
        ] {
            assert_eq!(t.get(name), Some(ty), "{name}");
        }
        assert_eq!(t.get("process.nope"), None);
        assert_eq!(t.ignore_above("process.name"), Some(1024));
        assert_eq!(t.ignore_above("process.command_line"), None);
        assert!(!t.is_indexed("event.original"));
        assert!(t.is_indexed("process.name"));
        assert_eq!(t.nested_parent("dll.pe.sections.entropy"), Some("dll.pe.sections"));
        assert_eq!(t.nested_parent("dll.pe.sections"), None);
        assert_eq!(t.nested_parent("process.name"), None);
        assert_eq!(t.resolve_alias("process.name"), "process.name");
        assert!(!ECS_VERSION.is_empty());
    }

    #[test]
    fn generated_table_is_sorted_and_unique() {
        let f = crate::generated::ECS_FIELDS;
        assert!(f.windows(2).all(|w| w[0].0 < w[1].0));
        // ECS plus imdsguard's own `imds` field set, which no ECS field collides with.
        assert!(IMDS_FIELDS.iter().all(|(n, _)| f.binary_search_by(|(e, _)| e.cmp(n)).is_err()));
        assert_eq!(FieldTable::ecs().len(), f.len() + IMDS_FIELDS.len());
    }

    #[test]
    fn glob_matching() {
        let t = FieldTable::ecs();
        let names: Vec<&str> = t.matching("destination.*").into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"destination.ip") && names.contains(&"destination.geo.location"));
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        let ips = t.matching("*.ip");
        assert!(ips.iter().all(|(n, _)| n.ends_with(".ip")));
        assert!(ips.iter().any(|(n, ty)| *n == "source.ip" && *ty == FieldType::Ip));
        assert_eq!(t.matching("message"), vec![("message", FieldType::MatchOnlyText)]);
        assert!(t.matching("nope*").is_empty());
        for (p, s, ok) in [
            ("*", "", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbYcd", false),
            ("*.ip", "source.ip", true),
            ("*.ip", "source.ipx", false),
            ("pro*ss.*", "process.pid", true),
            ("**", "x.y", true),
            ("a", "ab", false),
        ] {
            assert_eq!(glob_match(p.as_bytes(), s.as_bytes()), ok, "{p} ~ {s}");
        }
    }

    fn sample() -> Value {
        json!({
            ".ds-logs-imds-default-2024.05.01-000001": {"mappings": {
                "dynamic": "true",
                "_data_stream_timestamp": {"enabled": true},
                "properties": {
                    "@timestamp": {"type": "date"},
                    "host": {"properties": {
                        "name": {"type": "keyword", "ignore_above": 256,
                                 "fields": {"text": {"type": "match_only_text"}}},
                        "ip": {"type": "ip"}
                    }},
                    "users": {"type": "nested", "properties": {
                        "name": {"type": "keyword"},
                        "roles": {"type": "nested", "properties": {"id": {"type": "long"}}}
                    }},
                    "hostname": {"type": "alias", "path": "host.name"},
                    "custom": {"type": "flattened"},
                    "raw": {"type": "keyword", "index": false},
                    "attributes": {"type": "passthrough", "priority": 10, "properties": {
                        "cloud_provider": {"type": "keyword"}
                    }},
                    "labels": {"type": "object"},
                    "empty_obj": {}
                },
                "runtime": {
                    "day_of_week": {"type": "keyword", "script": {"source": "emit('x')"}},
                    "http": {"type": "composite", "script": "emit(...)", "fields": {"clientip": {"type": "ip"}}}
                }
            }},
            ".ds-logs-imds-default-2024.05.02-000002": {"mappings": {"properties": {
                "host": {"properties": {"ip": {"type": "keyword"}}}
            }}}
        })
    }

    #[test]
    fn mapping_fields() {
        let mut t = FieldTable::empty();
        let n = t.extend_from_mapping(&sample()).expect("valid mapping");
        assert_eq!(t.get("@timestamp"), Some(FieldType::Date));
        assert_eq!(t.get("host"), None, "untyped intermediate objects are not fields");
        assert_eq!(t.get("host.name"), Some(FieldType::Keyword));
        assert_eq!(t.get("host.name.text"), Some(FieldType::MatchOnlyText));
        assert_eq!(t.ignore_above("host.name"), Some(256));
        assert_eq!(t.get("host.ip"), Some(FieldType::Keyword), "later index wins");
        assert_eq!(t.get("users"), Some(FieldType::Nested));
        assert_eq!(t.get("users.roles.id"), Some(FieldType::Long));
        assert_eq!(t.nested_parent("users.name"), Some("users"));
        assert_eq!(t.nested_parent("users.roles.id"), Some("users.roles"));
        assert_eq!(t.nested_parent("users.roles"), Some("users"));
        assert_eq!(t.get("hostname"), Some(FieldType::Keyword));
        assert_eq!(t.resolve_alias("hostname"), "host.name");
        assert!(t.is_alias("hostname"));
        assert_eq!(t.ignore_above("hostname"), Some(256));
        assert_eq!(t.get("custom"), Some(FieldType::Flattened));
        assert!(!t.is_indexed("raw"));
        assert_eq!(t.get("attributes.cloud_provider"), Some(FieldType::Keyword));
        assert_eq!(t.resolve_alias("cloud_provider"), "attributes.cloud_provider");
        assert_eq!(t.get("labels"), Some(FieldType::Object));
        assert_eq!(t.get("empty_obj"), Some(FieldType::Object));
        assert_eq!(t.get("day_of_week"), Some(FieldType::Keyword));
        assert_eq!(t.get("http.clientip"), Some(FieldType::Ip));
        assert_eq!(t.get("http"), None);
        assert_eq!(n, t.len());
        // Re-applying the same mapping changes nothing.
        assert_eq!(t.extend_from_mapping(&sample()), Ok(0));
    }

    #[test]
    fn mapping_shapes_and_overrides() {
        let mut t = FieldTable::ecs();
        let bare = json!({"properties": {"process": {"properties": {"name": {"type": "wildcard"}}}}});
        assert_eq!(t.extend_from_mapping(&bare), Ok(1));
        assert_eq!(t.get("process.name"), Some(FieldType::Wildcard));
        assert_eq!(t.ignore_above("process.name"), None, "redefinition drops the ECS ignore_above");
        let wrapped = json!({"mappings": {"properties": {"process": {"properties": {"name": {"type": "keyword"}}}}}});
        assert_eq!(t.extend_from_mapping(&wrapped), Ok(1));
        let typed = json!({"old": {"mappings": {"_doc": {"properties": {"x": {"type": "long"}}}}}});
        assert_eq!(t.extend_from_mapping(&typed), Ok(1));
        assert_eq!(t.get("x"), Some(FieldType::Long));
        // Alias to an ECS field already in the table.
        let alias = json!({"properties": {"src": {"type": "alias", "path": "source.ip"}}});
        assert_eq!(t.extend_from_mapping(&alias), Ok(1));
        assert_eq!(t.get("src"), Some(FieldType::Ip));
        assert_eq!(t.resolve_alias("src"), "source.ip");
        assert_eq!(t.matching("sr*"), vec![("src", FieldType::Ip)]);
    }

    #[test]
    fn mapping_errors_leave_table_unchanged() {
        let cases: Vec<(Value, MappingError)> = vec![
            (json!([1]), MappingError::NotAnObject { path: "(top level)".into(), found: "an array" }),
            (json!({}), MappingError::NoProperties),
            (json!({"idx": {"settings": {}}}), MappingError::NoMappings { index: "idx".into() }),
            (json!({"idx": {"mappings": {"dynamic": "strict"}}}), MappingError::NoProperties),
            (json!({"properties": []}), MappingError::NotAnObject { path: "properties".into(), found: "an array" }),
            (
                json!({"properties": {"a": {"properties": {"b": "keyword"}}}}),
                MappingError::NotAnObject { path: "a.b".into(), found: "a string" },
            ),
            (json!({"properties": {"a": {"type": 3}}}), MappingError::BadType { field: "a".into() }),
            (json!({"properties": {"a": {"type": "alias"}}}), MappingError::AliasWithoutPath { field: "a".into() }),
            (
                json!({"properties": {"a": {"type": "alias", "path": "nope"}, "b": {"type": "long"}}}),
                MappingError::UnknownAliasTarget { field: "a".into(), target: "nope".into() },
            ),
            (
                json!({"properties": {"a": {"type": "alias", "path": "b"}, "b": {"type": "alias", "path": "c"}, "c": {"type": "ip"}}}),
                MappingError::AliasToAlias { field: "a".into(), target: "b".into() },
            ),
            (
                json!({"properties": {"a": {"type": "keyword", "fields": {"t": {}}}}}),
                MappingError::BadType { field: "a.t".into() },
            ),
        ];
        for (mapping, want) in cases {
            let mut t = FieldTable::empty();
            t.insert("kept", FieldType::Long);
            let err = t.extend_from_mapping(&mapping).expect_err("should fail");
            assert_eq!(err, want, "{mapping}");
            assert!(!err.to_string().is_empty());
            assert_eq!(t.len(), 1, "{mapping}");
        }
        assert_eq!(
            MappingError::UnknownAliasTarget { field: "a".into(), target: "nope".into() }.to_string(),
            "mapping: alias `a` points to `nope`, which is not a mapped field"
        );
    }
}
