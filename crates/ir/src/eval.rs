//! Evaluation of an [`Expr`] against a document.

use crate::expr::{Bound, Expr, IpPred, Pred, TypedPreds};
use crate::text;
use imdsguard_ecs::{Document, ValueRef};
use std::net::IpAddr;

/// IPv4 addresses are compared as IPv4-mapped IPv6, as Elasticsearch stores them.
pub(crate) fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse::<IpAddr>().ok()
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

impl Pred {
    /// Whether one document value satisfies the predicate.
    pub fn test(&self, v: ValueRef<'_>) -> bool {
        match self {
            Pred::StrEq { value, case_insensitive } => {
                let k = v.as_keyword();
                if *case_insensitive {
                    k.to_lowercase() == value.to_lowercase()
                } else {
                    k == value.as_str()
                }
            }
            Pred::StrGlob(g) => g.matches(&v.as_keyword()),
            Pred::StrRange(b) => {
                let k = v.as_keyword();
                let k = k.as_ref();
                let lower_ok = match &b.lower {
                    Bound::Unbounded => true,
                    Bound::Included(l) => k >= l.as_str(),
                    Bound::Excluded(l) => k > l.as_str(),
                };
                let upper_ok = match &b.upper {
                    Bound::Unbounded => true,
                    Bound::Included(u) => k <= u.as_str(),
                    Bound::Excluded(u) => k < u.as_str(),
                };
                lower_ok && upper_ok
            }
            Pred::NumEq { value, integer } => v.as_f64().map(|x| if *integer { x.trunc() } else { x }).is_some_and(|x| x == *value),
            Pred::NumRange(b) => v
                .as_f64()
                .map(|x| if b.integer { x.trunc() } else { x })
                .is_some_and(|x| b.lower.below_ok(&x) && b.upper.above_ok(&x)),
            Pred::BoolEq(false) if v == ValueRef::Str("") => true,
            Pred::BoolEq(want) => match v {
                ValueRef::Bool(b) => b == *want,
                ValueRef::Str("true") => *want,
                ValueRef::Str("false") => !*want,
                _ => false,
            },
            Pred::Ip(p) => {
                let Some(ip) = v.as_str().and_then(parse_ip) else { return false };
                match p {
                    IpPred::Eq(want) => canonical(ip) == canonical(*want),
                    IpPred::Cidr(net) => {
                        let ip = canonical(ip);
                        match (net, ip) {
                            (ipnet::IpNet::V4(n), IpAddr::V4(a)) => n.contains(&a),
                            (ipnet::IpNet::V6(n), IpAddr::V6(a)) => n.contains(&a),
                            (ipnet::IpNet::V6(n), IpAddr::V4(a)) => n.contains(&a.to_ipv6_mapped()),
                            (ipnet::IpNet::V4(_), IpAddr::V6(_)) => false,
                        }
                    }
                    IpPred::Range { lower, upper } => {
                        let k = ip_key(ip);
                        lower.below_ok(&k) && upper.above_ok(&k)
                    }
                }
            }
            Pred::DateRange { lower, upper } => imdsguard_ecs::time::value_to_millis(v)
                .is_some_and(|ms| lower.below_ok(&ms) && upper.above_ok(&ms)),
            Pred::TextAny(want) => {
                let Some(s) = text_of(v) else { return false };
                let toks = text::tokens(&s);
                want.iter().any(|w| toks.iter().any(|t| t == w))
            }
            Pred::TextPhrase(want) => {
                let Some(s) = text_of(v) else { return false };
                if want.is_empty() {
                    return false;
                }
                let toks = text::tokens(&s);
                toks.windows(want.len()).any(|w| w == want.as_slice())
            }
            Pred::TextGlob(g) => {
                let Some(s) = text_of(v) else { return false };
                text::tokens(&s).iter().any(|t| g.matches(t))
            }
            Pred::AnyOf(preds) => preds.iter().any(|p| p.test(v)),
            Pred::VersionRange(b) => {
                let k = version_key(&v.as_keyword());
                let lower_ok = match &b.lower {
                    Bound::Unbounded => true,
                    Bound::Included(l) => k >= version_key(l),
                    Bound::Excluded(l) => k > version_key(l),
                };
                let upper_ok = match &b.upper {
                    Bound::Unbounded => true,
                    Bound::Included(u) => k <= version_key(u),
                    Bound::Excluded(u) => k < version_key(u),
                };
                lower_ok && upper_ok
            }
        }
    }
}

/// Semantic-version order: numeric dot-separated parts compared as numbers; a pre-release
/// (`1.0.0-beta`) sorts before its release; anything non-numeric compares as text.
fn version_key(s: &str) -> (Vec<u64>, u8, String) {
    let (main, pre) = match s.split_once('-') {
        Some((m, p)) => (m, Some(p)),
        None => (s.split('+').next().unwrap_or(s), None),
    };
    let nums = main.split('.').map(|p| p.parse::<u64>().unwrap_or(u64::MAX)).collect();
    match pre {
        Some(p) => (nums, 0, p.to_string()),
        None => (nums, 1, String::new()),
    }
}

fn text_of(v: ValueRef<'_>) -> Option<String> {
    Some(v.as_keyword().into_owned())
}

fn typed_any(doc: &dyn Document, typed: &TypedPreds, name_ok: &dyn Fn(&str) -> bool) -> bool {
    let mut hit = false;
    doc.for_each_leaf(&mut |name, v| {
        if hit || !name_ok(name) {
            return;
        }
        if typed.exists {
            hit = true;
            return;
        }
        if let Some(p) = typed.pred_for(name) {
            if p.test(v) {
                hit = true;
            }
        }
    });
    hit
}

impl Expr {
    /// Whether the document matches.
    pub fn matches(&self, doc: &dyn Document) -> bool {
        match self {
            Expr::Const(b) => *b,
            Expr::And(items) => items.iter().all(|e| e.matches(doc)),
            Expr::Or(items) => items.iter().any(|e| e.matches(doc)),
            Expr::Not(e) => !e.matches(doc),
            Expr::Exists(path) => doc.exists(path),
            Expr::Match(path, pred) => doc.any_value(path, &mut |v| pred.test(v)),
            Expr::MatchGlob { fields, typed } => typed_any(doc, typed, &|name| fields.matches(name)),
            Expr::Nested(path, inner) => doc.any_object(path, &mut |obj| inner.matches(obj)),
            Expr::AnyField(typed) => typed_any(doc, typed, &|_| true),
        }
    }
}
