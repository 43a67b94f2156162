//! A hand-written parser that follows Kibana's `grammar.peggy` rule by rule: ordered choice with
//! backtracking, the same lookaheads, the same named rules for error messages. Failures are
//! reported like peggy does: at the furthest position reached, listing what was expected there
//! (named rules such as `value` or `whitespace` hide their inner expectations).

use crate::ast::{Literal, LiteralValue, Node, Pattern, PatternPart, Query, RangeOp, ValueTree};
use imdsguard_syntax::{Diagnostic, Span};
use std::collections::BTreeSet;

/// Deepest nesting of parentheses (groups and value lists) and nested `field:{...}` queries accepted.
pub const MAX_DEPTH: usize = 128;
/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 1 << 20;

/// Parse a KQL query.
pub fn parse(src: &str) -> Result<Query, Diagnostic> {
    if src.len() > MAX_QUERY_BYTES {
        return Err(Diagnostic::error(
            "K002",
            format!("query is {} bytes long; the limit is {MAX_QUERY_BYTES}", src.len()),
        )
        .with_span(Span::new(MAX_QUERY_BYTES, src.len())));
    }
    let mut p = Parser::new(src);
    let mut pos = p.spaces(0);
    let root = match p.or_query(pos) {
        Some((n, next)) => {
            pos = next;
            Some(n)
        }
        None => None,
    };
    pos = p.spaces(pos);
    if p.too_deep {
        return Err(Diagnostic::error("K003", format!("query is nested more than {MAX_DEPTH} levels deep"))
            .with_span(Span::point(p.deep_at)));
    }
    if pos == p.chars.len() {
        return Ok(Query { root });
    }
    p.expect(pos, "end of input");
    Err(p.error())
}

struct Parser {
    chars: Vec<char>,
    /// Byte offset of each char, plus the total length at the end.
    offs: Vec<usize>,
    fail_pos: usize,
    expected: BTreeSet<&'static str>,
    silent: u32,
    depth: usize,
    too_deep: bool,
    deep_at: usize,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{a0}')
}

/// Whitespace as JavaScript's `String.prototype.trim` sees it: Unicode `White_Space` minus U+0085
/// (NEL), plus U+FEFF (BOM).
fn is_js_space(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

fn is_special(c: char) -> bool {
    matches!(c, '\\' | '(' | ')' | ':' | '<' | '>' | '"' | '*' | '{' | '}')
}

/// What a piece of an unquoted literal was.
enum Piece {
    Char(char),
    /// Source chars `[from, to)` taken literally.
    Source(usize, usize),
    Wildcard,
}

impl Parser {
    fn new(src: &str) -> Parser {
        let mut chars = Vec::with_capacity(src.len());
        let mut offs = Vec::with_capacity(src.len() + 1);
        for (i, c) in src.char_indices() {
            chars.push(c);
            offs.push(i);
        }
        offs.push(src.len());
        Parser { chars, offs, fail_pos: 0, expected: BTreeSet::new(), silent: 0, depth: 0, too_deep: false, deep_at: 0 }
    }

    fn span(&self, from: usize, to: usize) -> Span {
        Span::new(self.offs[from.min(self.chars.len())], self.offs[to.min(self.chars.len())])
    }

    fn at(&self, pos: usize) -> Option<char> {
        self.chars.get(pos).copied()
    }

    fn expect(&mut self, pos: usize, what: &'static str) {
        if self.silent > 0 {
            return;
        }
        if pos > self.fail_pos {
            self.fail_pos = pos;
            self.expected.clear();
        }
        if pos == self.fail_pos {
            self.expected.insert(what);
        }
    }

    fn error(&self) -> Diagnostic {
        let pos = self.fail_pos;
        let found = match self.at(pos) {
            Some(c) => format!("{:?}", c.to_string()),
            None => "end of input".to_string(),
        };
        // Sorted by peggy's raw description (as JavaScript's sort would), then translated the way
        // Kibana's `KQLSyntaxError` does and joined with ", ".
        let list: Vec<&str> = self.expected.iter().map(|d| if *d == "fieldName" { "field name" } else { *d }).collect();
        let expected = if list.is_empty() { "a valid query".to_string() } else { list.join(", ") };
        let span = match self.at(pos) {
            Some(c) => Span::new(self.offs[pos], self.offs[pos] + c.len_utf8()),
            None => Span::point(self.offs[self.chars.len()]),
        };
        let d = Diagnostic::error("K001", format!("expected {expected} but found {found}"))
            .with_span(span)
            .with_label(format!("expected {expected}"));
        if self.not_kw_probe(pos).is_some() && pos > 0 && !self.at(pos - 1).is_some_and(is_space) {
            // `message:cannot x`: Kibana's grammar ends an unquoted value before `not ` (even
            // inside a word), then cannot go on.
            return d.with_help(
                "`not` followed by whitespace is a keyword and ends an unquoted value, even inside a word; \
                 quote the value (\"...\") or escape the `n` as \\u006e",
            );
        }
        if self.not_kw_probe(pos).is_some() {
            return d.with_help("`not` goes before a clause: write `a and not b`, or `a:(x and not y)` for values");
        }
        d
    }

    /// Run a named rule: inner failures are silenced and the rule's name is expected instead.
    fn named<T>(&mut self, pos: usize, name: &'static str, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        self.silent += 1;
        let r = f(self);
        self.silent -= 1;
        if r.is_none() {
            self.expect(pos, name);
        }
        r
    }

    fn lit(&mut self, pos: usize, s: &'static str, display: &'static str) -> Option<usize> {
        let mut p = pos;
        for c in s.chars() {
            if self.at(p) != Some(c) {
                self.expect(pos, display);
                return None;
            }
            p += 1;
        }
        Some(p)
    }

    /// Case-insensitive ASCII word.
    fn word_ci(&self, pos: usize, w: &str) -> Option<usize> {
        let mut p = pos;
        for c in w.chars() {
            match self.at(p) {
                Some(x) if x.eq_ignore_ascii_case(&c) => p += 1,
                _ => return None,
            }
        }
        Some(p)
    }

    /// `Space*`
    fn spaces(&mut self, mut pos: usize) -> usize {
        while self.at(pos).is_some_and(is_space) {
            pos += 1;
        }
        // `Space*` can always match more whitespace: peggy records the expectation.
        self.expect(pos, "whitespace");
        pos
    }

    /// `Space+ 'kw'i Space+` (Or, And) — silent probe used by lookaheads too.
    fn keyword_between_spaces(&mut self, pos: usize, kw: &str) -> Option<usize> {
        let mut p = pos;
        if !self.at(p).is_some_and(is_space) {
            return None;
        }
        while self.at(p).is_some_and(is_space) {
            p += 1;
        }
        let p = self.word_ci(p, kw)?;
        if !self.at(p).is_some_and(is_space) {
            return None;
        }
        let mut q = p;
        while self.at(q).is_some_and(is_space) {
            q += 1;
        }
        Some(q)
    }

    fn or_kw(&mut self, pos: usize) -> Option<usize> {
        let r = self.keyword_between_spaces(pos, "or");
        if r.is_none() {
            self.expect(pos, "OR");
        }
        r
    }

    fn and_kw(&mut self, pos: usize) -> Option<usize> {
        let r = self.keyword_between_spaces(pos, "and");
        if r.is_none() {
            self.expect(pos, "AND");
        }
        r
    }

    /// `'not'i Space+`
    fn not_kw_probe(&self, pos: usize) -> Option<usize> {
        let p = self.word_ci(pos, "not")?;
        if !self.at(p).is_some_and(is_space) {
            return None;
        }
        let mut q = p;
        while self.at(q).is_some_and(is_space) {
            q += 1;
        }
        Some(q)
    }

    fn not_kw(&mut self, pos: usize) -> Option<usize> {
        let r = self.not_kw_probe(pos);
        if r.is_none() {
            self.expect(pos, "NOT");
        }
        r
    }

    fn is_keyword_at(&mut self, pos: usize) -> bool {
        self.keyword_between_spaces(pos, "or").is_some()
            || self.keyword_between_spaces(pos, "and").is_some()
            || self.not_kw_probe(pos).is_some()
    }

    fn enter(&mut self, pos: usize) -> bool {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            if !self.too_deep {
                self.too_deep = true;
                self.deep_at = self.offs[pos.min(self.chars.len())];
            }
            return false;
        }
        true
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // OrQuery = AndQuery (Or AndQuery)+ / AndQuery
    fn or_query(&mut self, pos: usize) -> Option<(Node, usize)> {
        if !self.enter(pos) {
            self.leave();
            return None;
        }
        let r = self.or_query_inner(pos);
        self.leave();
        r
    }

    fn or_query_inner(&mut self, pos: usize) -> Option<(Node, usize)> {
        let (first, mut end) = self.and_query(pos)?;
        let mut items = vec![first];
        while let Some((n, e)) = self.or_kw(end).and_then(|after| self.and_query(after)) {
            items.push(n);
            end = e;
        }
        if items.len() == 1 {
            items.pop().map(|n| (n, end))
        } else {
            Some((Node::Or(items, self.span(pos, end)), end))
        }
    }

    // AndQuery = NotQuery (And NotQuery)+ / NotQuery
    fn and_query(&mut self, pos: usize) -> Option<(Node, usize)> {
        let (first, mut end) = self.not_query(pos)?;
        let mut items = vec![first];
        while let Some((n, e)) = self.and_kw(end).and_then(|after| self.not_query(after)) {
            items.push(n);
            end = e;
        }
        if items.len() == 1 {
            items.pop().map(|n| (n, end))
        } else {
            Some((Node::And(items, self.span(pos, end)), end))
        }
    }

    // NotQuery = Not SubQuery / SubQuery
    fn not_query(&mut self, pos: usize) -> Option<(Node, usize)> {
        if let Some(after) = self.not_kw(pos) {
            if let Some((n, end)) = self.sub_query(after) {
                return Some((Node::Not(Box::new(n), self.span(pos, end)), end));
            }
        }
        self.sub_query(pos)
    }

    // SubQuery = '(' Space* OrQuery OptionalSpace ')' / NestedQuery
    fn sub_query(&mut self, pos: usize) -> Option<(Node, usize)> {
        if let Some(p) = self.lit(pos, "(", "\"(\"") {
            let p = self.spaces(p);
            if let Some((n, e)) = self.or_query(p) {
                let e = self.spaces(e);
                if let Some(end) = self.lit(e, ")", "\")\"") {
                    return Some((n, end));
                }
            }
        }
        self.nested_query(pos)
    }

    // NestedQuery = Field Space* ':' Space* '{' Space* OrQuery OptionalSpace '}' / Expression
    fn nested_query(&mut self, pos: usize) -> Option<(Node, usize)> {
        if let Some((field, p)) = self.field(pos) {
            let p = self.spaces(p);
            if let Some(p) = self.lit(p, ":", "\":\"") {
                let p = self.spaces(p);
                if let Some(p) = self.lit(p, "{", "\"{\"") {
                    let p = self.spaces(p);
                    if let Some((q, e)) = self.or_query(p) {
                        let e = self.spaces(e);
                        if let Some(end) = self.lit(e, "}", "\"}\"") {
                            return Some((Node::Nested { field, query: Box::new(q), span: self.span(pos, end) }, end));
                        }
                    }
                }
            }
        }
        self.expression(pos)
    }

    // Expression = FieldRangeExpression / FieldValueExpression / ValueExpression
    fn expression(&mut self, pos: usize) -> Option<(Node, usize)> {
        if let Some(r) = self.field_range(pos) {
            return Some(r);
        }
        if let Some(r) = self.field_value(pos) {
            return Some(r);
        }
        let (lit, end) = self.value(pos)?;
        Some((Node::Value(lit), end))
    }

    fn field(&mut self, pos: usize) -> Option<(Literal, usize)> {
        self.named(pos, "fieldName", |p| p.literal_inner(pos))
    }

    // FieldRangeExpression = Field Space* RangeOperator Space* Literal
    fn field_range(&mut self, pos: usize) -> Option<(Node, usize)> {
        let (field, p) = self.field(pos)?;
        let p = self.spaces(p);
        let (op, p) = if let Some(p) = self.lit(p, "<=", "\"<=\"") {
            (RangeOp::Lte, p)
        } else if let Some(p) = self.lit(p, ">=", "\">=\"") {
            (RangeOp::Gte, p)
        } else if let Some(p) = self.lit(p, "<", "\"<\"") {
            (RangeOp::Lt, p)
        } else if let Some(p) = self.lit(p, ">", "\">\"") {
            (RangeOp::Gt, p)
        } else {
            return None;
        };
        let p = self.spaces(p);
        let (value, end) = self.named(p, "literal", |s| s.literal_inner(p))?;
        Some((Node::Range { field, op, value, span: self.span(pos, end) }, end))
    }

    // FieldValueExpression = Field Space* ':' Space* ListOfValues
    fn field_value(&mut self, pos: usize) -> Option<(Node, usize)> {
        let (field, p) = self.field(pos)?;
        let p = self.spaces(p);
        let p = self.lit(p, ":", "\":\"")?;
        let p = self.spaces(p);
        let (values, end) = self.list_of_values(p)?;
        Some((Node::Field { field, values, span: self.span(pos, end) }, end))
    }

    // ListOfValues = '(' Space* OrListOfValues OptionalSpace ')' / Value
    fn list_of_values(&mut self, pos: usize) -> Option<(ValueTree, usize)> {
        if let Some(p) = self.lit(pos, "(", "\"(\"") {
            if self.enter(pos) {
                let p = self.spaces(p);
                let r = self.or_list(p);
                if let Some((t, e)) = r {
                    let e = self.spaces(e);
                    if let Some(end) = self.lit(e, ")", "\")\"") {
                        self.leave();
                        return Some((t, end));
                    }
                }
            }
            self.leave();
        }
        let (v, end) = self.value(pos)?;
        Some((ValueTree::Value(v), end))
    }

    fn or_list(&mut self, pos: usize) -> Option<(ValueTree, usize)> {
        let (first, mut end) = self.and_list(pos)?;
        let mut items = vec![first];
        while let Some((n, e)) = self.or_kw(end).and_then(|after| self.and_list(after)) {
            items.push(n);
            end = e;
        }
        if items.len() == 1 {
            items.pop().map(|n| (n, end))
        } else {
            Some((ValueTree::Or(items, self.span(pos, end)), end))
        }
    }

    fn and_list(&mut self, pos: usize) -> Option<(ValueTree, usize)> {
        let (first, mut end) = self.not_list(pos)?;
        let mut items = vec![first];
        while let Some((n, e)) = self.and_kw(end).and_then(|after| self.not_list(after)) {
            items.push(n);
            end = e;
        }
        if items.len() == 1 {
            items.pop().map(|n| (n, end))
        } else {
            Some((ValueTree::And(items, self.span(pos, end)), end))
        }
    }

    // NotListOfValues = Not ListOfValues / ListOfValues
    fn not_list(&mut self, pos: usize) -> Option<(ValueTree, usize)> {
        if let Some(after) = self.not_kw(pos) {
            if let Some((t, end)) = self.list_of_values(after) {
                return Some((ValueTree::Not(Box::new(t), self.span(pos, end)), end));
            }
        }
        self.list_of_values(pos)
    }

    // Value "value" = QuotedString / UnquotedLiteral
    fn value(&mut self, pos: usize) -> Option<(Literal, usize)> {
        self.named(pos, "value", |p| p.literal_inner(pos))
    }

    // Literal = QuotedString / UnquotedLiteral
    fn literal_inner(&mut self, pos: usize) -> Option<(Literal, usize)> {
        if let Some(r) = self.quoted(pos) {
            return Some(r);
        }
        self.unquoted(pos)
    }

    /// `\t`, `\r`, `\n` (backslash + letter).
    fn escaped_whitespace(&self, pos: usize) -> Option<(char, usize)> {
        if self.at(pos) != Some('\\') {
            return None;
        }
        match self.at(pos + 1) {
            Some('t') => Some(('\t', pos + 2)),
            Some('r') => Some(('\r', pos + 2)),
            Some('n') => Some(('\n', pos + 2)),
            _ => None,
        }
    }

    /// `\uXXXX`: one UTF-16 code unit.
    fn code_unit(&self, pos: usize) -> Option<u32> {
        if self.at(pos) != Some('\\') || self.at(pos + 1) != Some('u') {
            return None;
        }
        let mut v: u32 = 0;
        for i in 0..4 {
            let d = self.at(pos + 2 + i)?.to_digit(16)?;
            v = v * 16 + d;
        }
        Some(v)
    }

    /// `\uXXXX` -> that UTF-16 code unit. JavaScript joins a high and a low surrogate written as two
    /// escapes into one character, and so do we; a lone surrogate cannot live in a Rust string and
    /// becomes U+FFFD (where Kibana would keep the unpaired code unit).
    fn escaped_unicode(&self, pos: usize) -> Option<(char, usize)> {
        let v = self.code_unit(pos)?;
        if (0xD800..0xDC00).contains(&v) {
            if let Some(lo) = self.code_unit(pos + 6).filter(|lo| (0xDC00..0xE000).contains(lo)) {
                let c = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                return Some((char::from_u32(c).unwrap_or('\u{fffd}'), pos + 12));
            }
        }
        Some((char::from_u32(v).unwrap_or('\u{fffd}'), pos + 6))
    }

    // QuotedString = '"' QuotedCharacter* '"'
    fn quoted(&mut self, pos: usize) -> Option<(Literal, usize)> {
        if self.at(pos) != Some('"') {
            self.expect(pos, "\"\\\"\"");
            return None;
        }
        let mut p = pos + 1;
        let mut s = String::new();
        loop {
            if let Some((c, n)) = self.escaped_whitespace(p) {
                s.push(c);
                p = n;
                continue;
            }
            if let Some((c, n)) = self.escaped_unicode(p) {
                s.push(c);
                p = n;
                continue;
            }
            match (self.at(p), self.at(p + 1)) {
                (Some('\\'), Some(c @ ('\\' | '"'))) => {
                    s.push(c);
                    p += 2;
                }
                (Some('"'), _) => {
                    let end = p + 1;
                    return Some((Literal { value: LiteralValue::Quoted(s), span: self.span(pos, end) }, end));
                }
                (Some(c), _) => {
                    s.push(c);
                    p += 1;
                }
                (None, _) => {
                    self.expect(p, "\"\\\"\"");
                    return None;
                }
            }
        }
    }

    /// One `UnquotedCharacter`.
    fn unquoted_char(&mut self, pos: usize) -> Option<(Piece, usize)> {
        if let Some((c, n)) = self.escaped_whitespace(pos) {
            return Some((Piece::Char(c), n));
        }
        if self.at(pos) == Some('\\') {
            if let Some(c) = self.at(pos + 1).filter(|c| is_special(*c)) {
                return Some((Piece::Char(c), pos + 2));
            }
        }
        if let Some((c, n)) = self.escaped_unicode(pos) {
            return Some((Piece::Char(c), n));
        }
        if self.at(pos) == Some('\\') {
            for kw in ["or", "and", "not"] {
                if let Some(n) = self.word_ci(pos + 1, kw) {
                    // EscapedKeyword: the keyword as written, without the backslash.
                    return Some((Piece::Source(pos + 1, n), n));
                }
            }
        }
        match self.at(pos) {
            Some('*') => Some((Piece::Wildcard, pos + 1)),
            Some(c) if !is_special(c) => {
                if self.is_keyword_at(pos) {
                    None
                } else {
                    Some((Piece::Char(c), pos + 1))
                }
            }
            _ => None,
        }
    }

    // UnquotedLiteral = UnquotedCharacter+
    fn unquoted(&mut self, pos: usize) -> Option<(Literal, usize)> {
        let mut p = pos;
        let mut parts: Vec<PatternPart> = Vec::new();
        let mut text = String::new();
        let mut keep: Option<usize> = None;
        let mut keep_end = pos;
        loop {
            // A run of whitespace: `!Keyword` gives the same answer at every position of the run
            // (`Space+` is greedy), so decide once for the whole run instead of once per char.
            if self.at(p).is_some_and(is_space) {
                let mut q = p;
                while self.at(q).is_some_and(is_space) {
                    q += 1;
                }
                let keyword_follows = ["or", "and"]
                    .iter()
                    .any(|kw| self.word_ci(q, kw).is_some_and(|e| self.at(e).is_some_and(is_space)));
                if keyword_follows {
                    break;
                }
                text.extend(self.chars.get(p..q).unwrap_or(&[]));
                p = q;
                continue;
            }
            let Some((piece, n)) = self.unquoted_char(p) else { break };
            // Track the source of the text that survives trimming (escaped whitespace such as
            // `\t` or `\u0020` is trimmed too, so this cannot be done on the source alone).
            if !matches!(piece, Piece::Char(c) if is_js_space(c)) {
                keep.get_or_insert(p);
                keep_end = n;
            }
            match piece {
                Piece::Source(from, to) => text.extend(self.chars.get(from..to).unwrap_or(&[])),
                Piece::Char(c) => text.push(c),
                Piece::Wildcard => {
                    if !text.is_empty() {
                        parts.push(PatternPart::Text(std::mem::take(&mut text)));
                    }
                    parts.push(PatternPart::Wildcard);
                }
            }
            p = n;
        }
        if p == pos {
            return None;
        }
        if !text.is_empty() {
            parts.push(PatternPart::Text(text));
        }
        trim_parts(&mut parts);
        // The span covers the trimmed source text (a point where the literal began when nothing
        // is left, as for `a:\t`).
        let (a, b) = match keep {
            Some(a) => (a, keep_end),
            None => (pos, pos),
        };
        let pattern = Pattern { parts };
        let value = match pattern.as_text().as_deref() {
            Some("null") => LiteralValue::Null,
            Some("true") => LiteralValue::Bool(true),
            Some("false") => LiteralValue::Bool(false),
            _ => LiteralValue::Unquoted(pattern),
        };
        Some((Literal { value, span: self.span(a, b) }, p))
    }
}

/// JavaScript `String.prototype.trim` on the joined pattern: whitespace at both ends goes,
/// whether it was written literally or as an escape.
fn trim_parts(parts: &mut Vec<PatternPart>) {
    let js_space = is_js_space;
    while let Some(PatternPart::Text(t)) = parts.first_mut() {
        let trimmed = t.trim_start_matches(js_space).to_string();
        if trimmed.is_empty() {
            parts.remove(0);
        } else {
            *t = trimmed;
            break;
        }
    }
    while let Some(PatternPart::Text(t)) = parts.last_mut() {
        let trimmed = t.trim_end_matches(js_space).to_string();
        if trimmed.is_empty() {
            parts.pop();
        } else {
            *t = trimmed;
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(q: &str) -> Diagnostic {
        match parse(q) {
            Ok(ast) => panic!("{q:?} parsed: {ast:?}"),
            Err(d) => d,
        }
    }

    fn only_value(q: &str) -> Literal {
        match parse(q).map(|ast| ast.root) {
            Ok(Some(Node::Field { values: ValueTree::Value(v), .. })) => v,
            other => panic!("{q:?}: {other:?}"),
        }
    }

    #[test]
    fn messages_list_expectations_like_kibana() {
        assert_eq!(err("a:").message, r#"expected "(", "{", value, whitespace but found end of input"#);
        assert_eq!(err("a:)").message, r#"expected "(", "{", value, whitespace but found ")""#);
        assert_eq!(err("a:(b").message, r#"expected ")", AND, OR, whitespace but found end of input"#);
        assert_eq!(err(")").message, r#"expected "(", NOT, end of input, field name, value, whitespace but found ")""#);
        let d = err("a < ");
        assert_eq!(d.message, "expected literal, whitespace but found end of input");
        assert_eq!(d.span, Some(Span::point(4)));
        assert_eq!(d.code, "K001");
    }

    #[test]
    fn error_span_covers_one_multibyte_char() {
        let d = err("é:(b é");
        // `b é` is one value; the list then lacks its `)`.
        assert_eq!(d.span, Some(Span::point("é:(b é".len())));
        let d = err("a:(b)é");
        assert_eq!(d.span, Some(Span::new(5, 7)));
        assert!(d.message.ends_with("but found \"é\""), "{}", d.message);
    }

    #[test]
    fn not_inside_a_word_gets_a_help_line() {
        let d = err("message:cannot open");
        assert_eq!(d.span, Some(Span::new(11, 12)));
        assert!(d.help.as_deref().is_some_and(|h| h.contains("keyword")), "{d:?}");
        assert!(err("a:b not c:d").help.is_some());
    }

    #[test]
    fn trimmed_literal_spans_skip_escaped_whitespace() {
        let q = r"a:\t x \u0020";
        let v = only_value(q);
        assert_eq!(&q[v.span.start..v.span.end], "x");
        assert_eq!(v.value, LiteralValue::Unquoted(Pattern { parts: vec![PatternPart::Text("x".into())] }));
        let v = only_value(r"a:\t");
        assert_eq!(v.value, LiteralValue::Unquoted(Pattern::default()));
        assert!(v.span.is_empty());
    }

    #[test]
    fn unicode_escapes() {
        let v = only_value(r"a:\ud83d\ude00");
        assert_eq!(v.as_text().as_deref(), Some("😀"));
        // A lone surrogate cannot be a Rust char: U+FFFD stands in for it.
        let v = only_value(r#"a:"\ud83dx""#);
        assert_eq!(v.as_text().as_deref(), Some("\u{fffd}x"));
        // Escapes are resolved before the null/true/false check, as in Kibana.
        assert_eq!(only_value(r"a:\u006eull").value, LiteralValue::Null);
        // `\uZZ` is no escape; the lone backslash ends the value.
        assert!(parse(r"a:\uZZ").is_err());
        // `\not` is `\n` (a newline) then `ot`: EscapedWhitespace comes first.
        assert_eq!(only_value(r"a:x\not").as_text().as_deref(), Some("x\not"));
        assert_eq!(only_value(r"a:\NOT").as_text().as_deref(), Some("NOT"));
    }

    #[test]
    fn js_trim_whitespace_set() {
        assert!(is_js_space('\u{feff}') && is_js_space('\u{3000}') && is_js_space('\u{2028}'));
        assert!(!is_js_space('\u{85}') && !is_js_space('x'));
        assert_eq!(only_value("a:x\u{3000}").as_text().as_deref(), Some("x"));
    }

    #[test]
    fn long_whitespace_runs_are_linear() {
        let q = format!("a:b{}c", " ".repeat(400_000));
        let start = std::time::Instant::now();
        let v = only_value(&q);
        assert_eq!(v.as_text().map(|t| t.len()), Some(400_002));
        let q = format!("a:b{}", " or c".repeat(100_000));
        assert!(parse(&q).is_ok());
        assert!(start.elapsed().as_secs() < 10, "took {:?}", start.elapsed());
    }

    #[test]
    fn depth_limit_applies_to_lists_and_nested_queries() {
        let ok = format!("a:{}b{}", "(".repeat(MAX_DEPTH - 1), ")".repeat(MAX_DEPTH - 1));
        assert!(parse(&ok).is_ok());
        let deep = format!("a:{}b{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert_eq!(err(&deep).code, "K003");
        let nested = format!("{}x:y{}", "a:{".repeat(MAX_DEPTH + 1), "}".repeat(MAX_DEPTH + 1));
        assert_eq!(err(&nested).code, "K003");
        let nots = "not (".repeat(MAX_DEPTH + 1);
        assert_eq!(err(&nots).code, "K003");
    }
}
