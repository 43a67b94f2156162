//! Tokens of `EqlBase.g4`: longest match, keywords lower-case and case-sensitive, whitespace and
//! comments skipped (`//` to the end of the line, `/* */` nested).

use imdsguard_syntax::{Diagnostic, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kw {
    And,
    Any,
    By,
    False,
    In,
    InInsensitive,
    Join,
    Like,
    LikeInsensitive,
    Maxspan,
    Not,
    Null,
    Of,
    Or,
    Regex,
    RegexInsensitive,
    Sample,
    Sequence,
    True,
    Until,
    Where,
    With,
}

impl Kw {
    pub fn as_str(self) -> &'static str {
        match self {
            Kw::And => "and",
            Kw::Any => "any",
            Kw::By => "by",
            Kw::False => "false",
            Kw::In => "in",
            Kw::InInsensitive => "in~",
            Kw::Join => "join",
            Kw::Like => "like",
            Kw::LikeInsensitive => "like~",
            Kw::Maxspan => "maxspan",
            Kw::Not => "not",
            Kw::Null => "null",
            Kw::Of => "of",
            Kw::Or => "or",
            Kw::Regex => "regex",
            Kw::RegexInsensitive => "regex~",
            Kw::Sample => "sample",
            Kw::Sequence => "sequence",
            Kw::True => "true",
            Kw::Until => "until",
            Kw::Where => "where",
            Kw::With => "with",
        }
    }
}

/// The keyword spelled exactly `word` (keywords are case-sensitive).
pub fn keyword(word: &str) -> Option<Kw> {
    Some(match word {
        "and" => Kw::And,
        "any" => Kw::Any,
        "by" => Kw::By,
        "false" => Kw::False,
        "in" => Kw::In,
        "in~" => Kw::InInsensitive,
        "join" => Kw::Join,
        "like" => Kw::Like,
        "like~" => Kw::LikeInsensitive,
        "maxspan" => Kw::Maxspan,
        "not" => Kw::Not,
        "null" => Kw::Null,
        "of" => Kw::Of,
        "or" => Kw::Or,
        "regex" => Kw::Regex,
        "regex~" => Kw::RegexInsensitive,
        "sample" => Kw::Sample,
        "sequence" => Kw::Sequence,
        "true" => Kw::True,
        "until" => Kw::Until,
        "where" => Kw::Where,
        "with" => Kw::With,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Punct {
    /// `:`
    Seq,
    /// `=`
    Asgn,
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Dot,
    Comma,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Pipe,
    /// `?` (optional field)
    Question,
    /// `![` (missing event)
    MissingOpen,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// `IDENTIFIER` that is not a keyword.
    Ident(String),
    /// `` `quoted identifier` `` with doubled back-quotes resolved.
    QuotedIdent(String),
    /// `name~` (the name without the tilde).
    TildeIdent(String),
    Kw(Kw),
    /// A string, escapes resolved.
    Str(String),
    /// `INTEGER_VALUE` (the digits).
    Int(String),
    /// `DECIMAL_VALUE` (the text).
    Decimal(String),
    Punct(Punct),
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

pub fn q001(message: impl Into<String>, span: Span, label: impl Into<String>) -> Diagnostic {
    Diagnostic::error("Q001", message).with_span(span).with_label(label)
}

pub fn q004(message: impl Into<String>, span: Span, help: impl Into<String>) -> Diagnostic {
    Diagnostic::error("Q004", message).with_span(span).with_label("not supported by Elasticsearch EQL").with_help(help)
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// Split `src` into tokens; the last one is [`Tok::Eof`].
pub fn tokenize(src: &str) -> Result<Vec<Token>, Diagnostic> {
    let mut lx = Lexer { src, bytes: src.as_bytes(), pos: 0 };
    let mut out = Vec::new();
    loop {
        lx.skip_trivia()?;
        let start = lx.pos;
        let Some(&b) = lx.bytes.get(start) else {
            out.push(Token { tok: Tok::Eof, span: Span::point(src.len()) });
            return Ok(out);
        };
        let tok = lx.token(b)?;
        out.push(Token { tok, span: Span::new(start, lx.pos) });
    }
}

fn is_letter(b: u8) -> bool {
    b.is_ascii_alphabetic()
}

fn is_ident_cont(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Lexer<'_> {
    fn at(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    fn skip_trivia(&mut self) -> Result<(), Diagnostic> {
        loop {
            match (self.at(self.pos), self.at(self.pos + 1)) {
                (Some(b' ' | b'\t' | b'\r' | b'\n'), _) => self.pos += 1,
                (Some(b'/'), Some(b'/')) => {
                    while self.at(self.pos).is_some_and(|b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                (Some(b'/'), Some(b'*')) => self.block_comment()?,
                _ => return Ok(()),
            }
        }
    }

    /// `/* ... */`, nested.
    fn block_comment(&mut self) -> Result<(), Diagnostic> {
        let start = self.pos;
        let mut depth = 0usize;
        loop {
            match (self.at(self.pos), self.at(self.pos + 1)) {
                (Some(b'/'), Some(b'*')) => {
                    depth += 1;
                    self.pos += 2;
                }
                (Some(b'*'), Some(b'/')) => {
                    depth -= 1;
                    self.pos += 2;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                (Some(_), _) => self.pos += 1,
                (None, _) => {
                    return Err(q001(
                        "unterminated block comment: `/*` without its `*/`",
                        Span::new(start, start + 2),
                        "comment starts here",
                    ))
                }
            }
        }
    }

    fn char_at(&self, pos: usize) -> char {
        self.src.get(pos..).and_then(|s| s.chars().next()).unwrap_or('\u{fffd}')
    }

    fn token(&mut self, b: u8) -> Result<Tok, Diagnostic> {
        let start = self.pos;
        let next = self.at(start + 1);
        let punct = |p: Punct, len: usize, lx: &mut Self| {
            lx.pos += len;
            Ok(Tok::Punct(p))
        };
        match b {
            b'"' => self.string(),
            b'\'' => {
                let end = self.line_end_after(start + 1, b'\'');
                Err(q004(
                    "single-quoted strings are not supported by Elasticsearch EQL (a Python-EQL feature)",
                    Span::new(start, end),
                    "enclose strings in double quotes: \"...\"",
                ))
            }
            b'?' if matches!(next, Some(b'"' | b'\'')) => {
                let q = next.unwrap_or(b'"');
                let end = self.line_end_after(start + 2, q);
                Err(q004(
                    format!(
                        "`?{}...{}` raw strings are not supported by Elasticsearch EQL (a Python-EQL feature)",
                        q as char, q as char
                    ),
                    Span::new(start, end),
                    "write raw strings in three double quotes: \"\"\"...\"\"\"",
                ))
            }
            b'`' => self.quoted_ident(),
            b'0'..=b'9' => Ok(self.number()),
            b'.' if next.is_some_and(|c| c.is_ascii_digit()) => Ok(self.number()),
            b'@' | b'_' => Ok(self.ident()),
            c if is_letter(c) => Ok(self.ident()),
            b':' => punct(Punct::Seq, 1, self),
            b'=' if next == Some(b'=') => punct(Punct::Eq, 2, self),
            b'=' => punct(Punct::Asgn, 1, self),
            b'!' if next == Some(b'=') => punct(Punct::Neq, 2, self),
            b'!' if next == Some(b'[') => punct(Punct::MissingOpen, 2, self),
            b'<' if next == Some(b'=') => punct(Punct::Lte, 2, self),
            b'<' => punct(Punct::Lt, 1, self),
            b'>' if next == Some(b'=') => punct(Punct::Gte, 2, self),
            b'>' => punct(Punct::Gt, 1, self),
            b'+' => punct(Punct::Plus, 1, self),
            b'-' => punct(Punct::Minus, 1, self),
            b'*' => punct(Punct::Star, 1, self),
            b'/' => punct(Punct::Slash, 1, self),
            b'%' => punct(Punct::Percent, 1, self),
            b'.' => punct(Punct::Dot, 1, self),
            b',' => punct(Punct::Comma, 1, self),
            b'[' => punct(Punct::LBracket, 1, self),
            b']' => punct(Punct::RBracket, 1, self),
            b'(' => punct(Punct::LParen, 1, self),
            b')' => punct(Punct::RParen, 1, self),
            b'|' => punct(Punct::Pipe, 1, self),
            b'?' => punct(Punct::Question, 1, self),
            _ => {
                let c = self.char_at(start);
                let span = Span::new(start, start + c.len_utf8());
                let d = q001(format!("unexpected character {:?}", c.to_string()), span, "not part of EQL");
                Err(match c {
                    '!' => d.with_help("`!` only appears in `!=` and in `![` (a missing event in a sequence)"),
                    '~' => {
                        d.with_help("`~` follows a function name or `in`, `like`, `regex` directly, without a space")
                    }
                    '&' | '|' => d.with_help("write `and` / `or`"),
                    _ => d,
                })
            }
        }
    }

    /// End of a quoted run that stops at `quote` or at the end of the line (for error spans).
    fn line_end_after(&self, mut i: usize, quote: u8) -> usize {
        while let Some(b) = self.at(i) {
            if b == b'\\' {
                i += 2;
                continue;
            }
            if b == b'\n' || b == b'\r' {
                return i;
            }
            i += 1;
            if b == quote {
                return i;
            }
        }
        self.bytes.len()
    }

    fn ident(&mut self) -> Tok {
        let start = self.pos;
        let first = self.bytes[start];
        self.pos += 1;
        while self.at(self.pos).is_some_and(is_ident_cont) {
            self.pos += 1;
        }
        let word = &self.src[start..self.pos];
        // TILDE_IDENTIFIER is one character longer than IDENTIFIER, so it wins (only when the
        // name starts with a letter); `in~`, `like~`, `regex~` are keywords of the same length,
        // listed first in the grammar.
        if is_letter(first) && self.at(self.pos) == Some(b'~') {
            self.pos += 1;
            let with_tilde = &self.src[start..self.pos];
            return match keyword(with_tilde) {
                Some(k) => Tok::Kw(k),
                None => Tok::TildeIdent(word.to_string()),
            };
        }
        match keyword(word) {
            Some(k) => Tok::Kw(k),
            None => Tok::Ident(word.to_string()),
        }
    }

    fn digits(&mut self) -> usize {
        let s = self.pos;
        while self.at(self.pos).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - s
    }

    /// INTEGER_VALUE or DECIMAL_VALUE, longest match.
    fn number(&mut self) -> Tok {
        let start = self.pos;
        let int_digits = self.digits();
        let mut decimal = false;
        if self.at(self.pos) == Some(b'.') {
            // `DIGIT+ '.' DIGIT*` or `'.' DIGIT+`
            let frac_start = self.pos + 1;
            let frac = self.bytes[frac_start..].iter().take_while(|b| b.is_ascii_digit()).count();
            if int_digits > 0 || frac > 0 {
                self.pos = frac_start + frac;
                decimal = true;
            }
        }
        // EXPONENT: [Ee] [+-]? DIGIT+
        if matches!(self.at(self.pos), Some(b'e' | b'E')) {
            let mut i = self.pos + 1;
            if matches!(self.at(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let exp = self.bytes.get(i..).unwrap_or(&[]).iter().take_while(|b| b.is_ascii_digit()).count();
            if exp > 0 {
                self.pos = i + exp;
                decimal = true;
            }
        }
        let text = self.src[start..self.pos].to_string();
        if decimal {
            Tok::Decimal(text)
        } else {
            Tok::Int(text)
        }
    }

    fn quoted_ident(&mut self) -> Result<Tok, Diagnostic> {
        let start = self.pos;
        let mut i = start + 1;
        let mut name = String::new();
        loop {
            match (self.at(i), self.at(i + 1)) {
                (Some(b'`'), Some(b'`')) => {
                    name.push('`');
                    i += 2;
                }
                (Some(b'`'), _) => {
                    self.pos = i + 1;
                    return Ok(Tok::QuotedIdent(name));
                }
                (Some(_), _) => {
                    let c = self.char_at(i);
                    name.push(c);
                    i += c.len_utf8();
                }
                (None, _) => {
                    return Err(q001(
                        "unterminated quoted field name: '`' without its closing '`'",
                        Span::new(start, start + 1),
                        "field name starts here",
                    ))
                }
            }
        }
    }

    fn string(&mut self) -> Result<Tok, Diagnostic> {
        let start = self.pos;
        if self.bytes[start..].starts_with(b"\"\"\"") {
            return self.raw_string();
        }
        let mut i = start + 1;
        let mut s = String::new();
        loop {
            let Some(b) = self.at(i) else {
                return Err(q001(
                    "unterminated string: '\"' without its closing '\"'",
                    Span::new(start, start + 1),
                    "string starts here",
                ));
            };
            match b {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(Tok::Str(s));
                }
                b'\r' | b'\n' => {
                    return Err(q001(
                        "unterminated string: a string cannot span lines (write \\n for a newline)",
                        Span::new(start, start + 1),
                        "string starts here",
                    )
                    .with_help(
                        "strings end on the line they start; use \\n, \\r or a \"\"\"raw string\"\"\" on one line",
                    ));
                }
                b'\\' if self.at(i + 1).is_none() => {
                    return Err(q001(
                        "unterminated string: '\"' without its closing '\"'",
                        Span::new(start, start + 1),
                        "string starts here",
                    ));
                }
                b'\\' => {
                    let (c, n) = self.escape(i)?;
                    s.push(c);
                    i = n;
                }
                _ => {
                    let c = self.char_at(i);
                    s.push(c);
                    i += c.len_utf8();
                }
            }
        }
    }

    /// One escape sequence starting at the backslash at `i`: the character and where it ends.
    fn escape(&self, i: usize) -> Result<(char, usize), Diagnostic> {
        let simple = |c: char| Ok((c, i + 2));
        match self.at(i + 1) {
            Some(b'n') => simple('\n'),
            Some(b'r') => simple('\r'),
            Some(b't') => simple('\t'),
            Some(b'b') => simple('\u{8}'),
            Some(b'f') => simple('\u{c}'),
            Some(b'"') => simple('"'),
            Some(b'\'') => simple('\''),
            Some(b'\\') => simple('\\'),
            Some(b'u') if self.at(i + 2) == Some(b'{') => {
                let digits_start = i + 3;
                let n = self.bytes[digits_start..].iter().take_while(|b| b.is_ascii_hexdigit()).count();
                if self.at(digits_start + n) != Some(b'}') || n == 0 {
                    let end = digits_start + n;
                    return Err(q001(
                        "invalid unicode escape: expected hex digits and '}' after '\\u{'",
                        Span::new(i, end.max(i + 3)),
                        "write \\u{XXXX} with 2 to 8 hex digits",
                    ));
                }
                let span = Span::new(i, digits_start + n + 1);
                if !(2..=8).contains(&n) {
                    return Err(q001(
                        format!("unicode escape should use 2 to 8 hex digits, found {n}"),
                        span,
                        "2 to 8 hex digits",
                    ));
                }
                let hex = &self.src[digits_start..digits_start + n];
                let v = u32::from_str_radix(hex, 16).unwrap_or(u32::MAX);
                match char::from_u32(v) {
                    Some(c) => Ok((c, digits_start + n + 1)),
                    None if (0xD800..0xE000).contains(&v) => {
                        Err(q001(format!("invalid unicode escape: {hex} is a surrogate code point"), span, "surrogate"))
                    }
                    None => Err(q001(
                        format!("invalid unicode escape: {hex} is beyond U+10FFFF"),
                        span,
                        "no such character",
                    )),
                }
            }
            _ => {
                let c = if i + 1 < self.bytes.len() { self.char_at(i + 1) } else { ' ' };
                let end = (i + 1 + c.len_utf8()).min(self.bytes.len());
                Err(q001(
                    format!("invalid escape sequence {:?} in a string", format!("\\{c}").trim_end()),
                    Span::new(i, end.max(i + 1)),
                    "unknown escape",
                )
                .with_help(
                    "escapes are \\n \\r \\t \\b \\f \\\" \\' \\\\ and \\u{XXXX}; for a literal backslash write \\\\ \
                     or use a \"\"\"raw string\"\"\"",
                ))
            }
        }
    }

    /// `"""` (~[\r\n])*? `"""` `"`? `"`?
    fn raw_string(&mut self) -> Result<Tok, Diagnostic> {
        let start = self.pos;
        let body = start + 3;
        let mut i = body;
        loop {
            match self.at(i) {
                None | Some(b'\r' | b'\n') => {
                    return Err(q001(
                        "unterminated raw string: '\"\"\"' without its closing '\"\"\"' on the same line",
                        Span::new(start, start + 3),
                        "raw string starts here",
                    ))
                }
                Some(b'"') if self.bytes[i..].starts_with(b"\"\"\"") => {
                    let mut end = i + 3;
                    for _ in 0..2 {
                        if self.at(end) == Some(b'"') {
                            end += 1;
                        }
                    }
                    self.pos = end;
                    return Ok(Tok::Str(self.src[body..end - 3].to_string()));
                }
                Some(_) => i += self.char_at(i).len_utf8(),
            }
        }
    }
}
