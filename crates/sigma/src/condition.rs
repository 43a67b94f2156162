//! The Sigma condition language: `and`, `or`, `not`, parentheses, search identifiers and the
//! quantifiers `1 of x*`, `all of x*`, `1 of them`, `all of them`. A tokenizer and a recursive
//! descent parser (depth-limited) with byte spans in errors. Precedence, loosest first: `or`,
//! `and`, `not`. Keywords are case-insensitive.

/// Deepest parenthesis / `not` nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// A condition error: message and byte span in the condition text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CondError {
    pub message: String,
    pub start: usize,
    pub end: usize,
    /// A construct Sigma v1 or the correlation spec has but this engine does not run.
    pub unsupported: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quant {
    One,
    All,
}

/// The condition tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    /// A search identifier, with its span.
    Ident(String, usize, usize),
    /// `1 of pattern` / `all of pattern`; `None` pattern = `them`.
    Of(Quant, Option<String>, usize, usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Of,
    Them,
    All,
    One,
    Pipe,
    Word(String),
}

fn tokenize(s: &str) -> Result<Vec<(Tok, usize, usize)>, CondError> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        match c {
            b'(' => out.push((Tok::LParen, i, i + 1)),
            b')' => out.push((Tok::RParen, i, i + 1)),
            b'|' => {
                // Everything after a pipe is a v1 aggregation: reported by the parser.
                out.push((Tok::Pipe, i, i + 1));
                break;
            }
            _ => {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'(' | b')' | b'|') {
                    i += 1;
                }
                let word = s.get(start..i).unwrap_or("");
                let ok = word.chars().all(|ch| ch.is_alphanumeric() || matches!(ch, '_' | '-' | '*' | '.'));
                if !ok {
                    return Err(CondError {
                        message: format!("unexpected `{word}`: a search identifier has letters, digits, `_`, `-`, `.` and `*` only"),
                        start,
                        end: i,
                        unsupported: false,
                    });
                }
                let tok = match word.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "of" => Tok::Of,
                    "them" => Tok::Them,
                    "all" => Tok::All,
                    "1" | "any" => Tok::One,
                    _ => Tok::Word(word.to_string()),
                };
                out.push((tok, start, i));
                continue;
            }
        }
        i += 1;
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<(Tok, usize, usize)>,
    pos: usize,
    len: usize,
    depth: usize,
    _src: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&(Tok, usize, usize)> {
        self.toks.get(self.pos)
    }
    fn err(&self, message: String) -> CondError {
        let (start, end) = self.peek().map_or((self.len, self.len), |t| (t.1, t.2));
        CondError { message, start, end, unsupported: false }
    }
    fn or(&mut self) -> Result<Cond, CondError> {
        let mut left = self.and()?;
        while matches!(self.peek(), Some((Tok::Or, _, _))) {
            self.pos += 1;
            let right = self.and()?;
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Cond, CondError> {
        let mut left = self.not()?;
        while matches!(self.peek(), Some((Tok::And, _, _))) {
            self.pos += 1;
            let right = self.not()?;
            left = Cond::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn not(&mut self) -> Result<Cond, CondError> {
        if matches!(self.peek(), Some((Tok::Not, _, _))) {
            self.pos += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.err(format!("condition nested deeper than {MAX_DEPTH} levels")));
            }
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Cond::Not(Box::new(inner)));
        }
        self.primary()
    }
    fn primary(&mut self) -> Result<Cond, CondError> {
        let Some((tok, start, end)) = self.peek().cloned() else {
            return Err(self.err("the condition ends where a search identifier, `not`, `(` or `1 of`/`all of` is expected".into()));
        };
        match tok {
            Tok::LParen => {
                self.pos += 1;
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.err(format!("condition nested deeper than {MAX_DEPTH} levels")));
                }
                let inner = self.or()?;
                self.depth -= 1;
                match self.peek() {
                    Some((Tok::RParen, _, _)) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(CondError {
                        message: "this `(` is never closed".into(),
                        start,
                        end,
                        unsupported: false,
                    }),
                }
            }
            Tok::One | Tok::All => {
                self.pos += 1;
                let q = if tok == Tok::One { Quant::One } else { Quant::All };
                if !matches!(self.peek(), Some((Tok::Of, _, _))) {
                    return Err(self.err("expected `of` after a quantifier".into()));
                }
                self.pos += 1;
                match self.peek().cloned() {
                    Some((Tok::Them, _, e)) => {
                        self.pos += 1;
                        Ok(Cond::Of(q, None, start, e))
                    }
                    Some((Tok::Word(w), _, e)) => {
                        self.pos += 1;
                        Ok(Cond::Of(q, Some(w), start, e))
                    }
                    _ => Err(self.err("expected `them` or a search identifier pattern after `of`".into())),
                }
            }
            Tok::Word(w) => {
                self.pos += 1;
                if w.chars().all(|c| c.is_ascii_digit()) && matches!(self.peek(), Some((Tok::Of, _, _))) {
                    return Err(CondError {
                        message: format!("`{w} of` is not Sigma: only `1 of` and `all of` exist"),
                        start,
                        end,
                        unsupported: false,
                    });
                }
                if w.eq_ignore_ascii_case("near") {
                    return Err(CondError {
                        message: "`near` (Sigma v1 aggregation) is not supported: use a temporal correlation rule".into(),
                        start,
                        end,
                        unsupported: true,
                    });
                }
                Ok(Cond::Ident(w, start, end))
            }
            Tok::Pipe => Err(CondError {
                message: "aggregation expressions (`| count() ...`) are Sigma v1 and not supported: use a correlation rule"
                    .into(),
                start,
                end: self.len,
                unsupported: true,
            }),
            other => Err(self.err(format!("unexpected {}", describe(&other)))),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::And => "`and`".into(),
        Tok::Or => "`or`".into(),
        Tok::Not => "`not`".into(),
        Tok::Of => "`of`".into(),
        Tok::Them => "`them`".into(),
        Tok::All => "`all`".into(),
        Tok::One => "`1`".into(),
        Tok::Pipe => "`|`".into(),
        Tok::Word(w) => format!("`{w}`"),
    }
}

/// Parse a condition.
pub fn parse(s: &str) -> Result<Cond, CondError> {
    let toks = tokenize(s)?;
    let mut p = Parser { toks, pos: 0, len: s.len(), depth: 0, _src: s };
    let c = p.or()?;
    if let Some((t, start, end)) = p.peek().cloned() {
        if t == Tok::Pipe {
            return Err(CondError {
                message: "aggregation expressions (`| count() ...`) are Sigma v1 and not supported: use a correlation rule"
                    .into(),
                start,
                end: s.len(),
                unsupported: true,
            });
        }
        return Err(CondError { message: format!("unexpected {} after a complete condition", describe(&t)), start, end, unsupported: false });
    }
    Ok(c)
}

/// Whether a search identifier matches an `x of` pattern (`*` matches any run of characters).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let toks = crate::query::parse_wildcards(pattern);
    let g = imdsguard_ir::Glob::new(
        toks.into_iter()
            .map(|t| match t {
                crate::query::Tok::Lit(s) => imdsguard_ir::glob::GlobToken::Lit(s),
                crate::query::Tok::Star => imdsguard_ir::glob::GlobToken::Star,
                crate::query::Tok::One => imdsguard_ir::glob::GlobToken::One,
            })
            .collect(),
        false,
    );
    g.matches(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(c: &Cond) -> String {
        match c {
            Cond::And(a, b) => format!("(and {} {})", show(a), show(b)),
            Cond::Or(a, b) => format!("(or {} {})", show(a), show(b)),
            Cond::Not(a) => format!("(not {})", show(a)),
            Cond::Ident(n, _, _) => n.clone(),
            Cond::Of(q, p, _, _) => format!("({} of {})", if *q == Quant::One { "1" } else { "all" }, p.as_deref().unwrap_or("them")),
        }
    }

    #[test]
    fn table() {
        let cases = [
            ("a", "a"),
            ("a and b or c", "(or (and a b) c)"),
            ("a or b and c", "(or a (and b c))"),
            ("not a and b", "(and (not a) b)"),
            ("not (a or b)", "(not (or a b))"),
            ("1 of sel* and not 1 of filter_*", "(and (1 of sel*) (not (1 of filter_*)))"),
            ("all of them", "(all of them)"),
            ("any of them", "(1 of them)"),
            ("A AND NOT B", "(and A (not B))"),
            ("selection and not (filter_main_1 or filter_optional)", "(and selection (not (or filter_main_1 filter_optional)))"),
        ];
        for (src, want) in cases {
            assert_eq!(parse(src).map(|c| show(&c)), Ok(want.to_string()), "{src}");
        }
    }

    #[test]
    fn errors_have_spans() {
        let cases = [
            ("a and", 5, false),
            ("(a or b", 0, false),
            ("a b", 2, false),
            ("2 of x", 0, false),
            ("sel | count() > 5", 4, true),
            ("a near b", 2, false),
            ("a $ b", 2, false),
            ("", 0, false),
        ];
        for (src, at, unsupported) in cases {
            let e = parse(src).err();
            assert_eq!(e.as_ref().map(|e| e.start), Some(at), "{src}: {e:?}");
            if unsupported {
                assert!(e.is_some_and(|e| e.unsupported), "{src}");
            }
        }
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("sel*", "selection_1"));
        assert!(!pattern_matches("sel*", "filter"));
        assert!(pattern_matches("*", "x"));
    }
}
