//! Wildcard patterns with Elasticsearch `wildcard` query semantics: `*` matches any sequence of
//! characters (including none), `?` any single character, everything else literally; the whole
//! value must match. Patterns are built from tokens, so each language decides its own escaping.

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobToken {
    Lit(String),
    /// `*`
    Star,
    /// `?`
    One,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Any,
    General,
}

/// A compiled wildcard pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    tokens: Vec<GlobToken>,
    case_insensitive: bool,
    shape: Shape,
    source: String,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.tokens == other.tokens && self.case_insensitive == other.case_insensitive
    }
}

impl Glob {
    /// Build from tokens. With `case_insensitive`, literals are compared after Unicode lower-casing.
    pub fn new(tokens: Vec<GlobToken>, case_insensitive: bool) -> Glob {
        let mut norm: Vec<GlobToken> = Vec::with_capacity(tokens.len());
        for t in tokens {
            let t = match t {
                GlobToken::Lit(s) if case_insensitive => GlobToken::Lit(s.to_lowercase()),
                other => other,
            };
            match (norm.last_mut(), t) {
                (Some(GlobToken::Star), GlobToken::Star) => {}
                (Some(GlobToken::Lit(prev)), GlobToken::Lit(s)) => prev.push_str(&s),
                (_, GlobToken::Lit(s)) if s.is_empty() => {}
                (_, t) => norm.push(t),
            }
        }
        let source = norm
            .iter()
            .map(|t| match t {
                GlobToken::Lit(s) => s.replace('\\', "\\\\").replace('*', "\\*").replace('?', "\\?"),
                GlobToken::Star => "*".into(),
                GlobToken::One => "?".into(),
            })
            .collect();
        let shape = match norm.as_slice() {
            [] => Shape::Exact(String::new()),
            [GlobToken::Lit(s)] => Shape::Exact(s.clone()),
            [GlobToken::Star] => Shape::Any,
            [GlobToken::Lit(s), GlobToken::Star] => Shape::Prefix(s.clone()),
            [GlobToken::Star, GlobToken::Lit(s)] => Shape::Suffix(s.clone()),
            [GlobToken::Star, GlobToken::Lit(s), GlobToken::Star] => Shape::Contains(s.clone()),
            _ => Shape::General,
        };
        Glob { tokens: norm, case_insensitive, shape, source }
    }

    /// Parse a pattern where `*` and (if `question_mark`) `?` are wildcards and `\` escapes the
    /// next character (Elasticsearch `wildcard` query syntax).
    pub fn parse(pattern: &str, question_mark: bool, case_insensitive: bool) -> Glob {
        let mut tokens = Vec::new();
        let mut lit = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(n) => lit.push(n),
                    None => lit.push('\\'),
                },
                '*' => {
                    if !lit.is_empty() {
                        tokens.push(GlobToken::Lit(std::mem::take(&mut lit)));
                    }
                    tokens.push(GlobToken::Star);
                }
                '?' if question_mark => {
                    if !lit.is_empty() {
                        tokens.push(GlobToken::Lit(std::mem::take(&mut lit)));
                    }
                    tokens.push(GlobToken::One);
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            tokens.push(GlobToken::Lit(lit));
        }
        Glob::new(tokens, case_insensitive)
    }

    /// The pattern in `wildcard` query syntax (`*`, `?`, `\` escapes).
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn tokens(&self) -> &[GlobToken] {
        &self.tokens
    }

    pub fn is_case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// Whether the pattern matches the whole of `s`.
    pub fn matches(&self, s: &str) -> bool {
        if self.case_insensitive {
            let lower;
            let s = if s.chars().any(|c| c.is_uppercase()) {
                lower = s.to_lowercase();
                lower.as_str()
            } else {
                s
            };
            self.matches_cased(s)
        } else {
            self.matches_cased(s)
        }
    }

    fn matches_cased(&self, s: &str) -> bool {
        match &self.shape {
            Shape::Exact(l) => s == l,
            Shape::Prefix(l) => s.starts_with(l.as_str()),
            Shape::Suffix(l) => s.ends_with(l.as_str()),
            Shape::Contains(l) => s.contains(l.as_str()),
            Shape::Any => true,
            Shape::General => general_match(&self.tokens, s),
        }
    }
}

/// Iterative matcher with single-star backtracking (linear in practice, never exponential).
fn general_match(tokens: &[GlobToken], s: &str) -> bool {
    let mut ti = 0; // token index
    let mut si = 0; // byte index in s
    let mut star: Option<(usize, usize)> = None; // (token after star, s position to retry from)
    loop {
        if ti < tokens.len() {
            match &tokens[ti] {
                GlobToken::Star => {
                    ti += 1;
                    star = Some((ti, si));
                    continue;
                }
                GlobToken::One => {
                    if let Some(c) = s[si..].chars().next() {
                        si += c.len_utf8();
                        ti += 1;
                        continue;
                    }
                }
                GlobToken::Lit(l) => {
                    if s[si..].starts_with(l.as_str()) {
                        si += l.len();
                        ti += 1;
                        continue;
                    }
                }
            }
        } else if si == s.len() {
            return true;
        }
        // Mismatch: retry from the last star, consuming one more character.
        match star {
            Some((after, from)) => {
                let Some(c) = s[from..].chars().next() else { return false };
                let next = from + c.len_utf8();
                star = Some((after, next));
                ti = after;
                si = next;
            }
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        // (pattern, question_mark, ci, input, expected)
        let cases: &[(&str, bool, bool, &str, bool)] = &[
            ("python*", false, false, "python3", true),
            ("python*", false, false, "Python3", false),
            ("python*", false, true, "Python3", true),
            ("*", false, false, "", true),
            ("", false, false, "", true),
            ("", false, false, "a", false),
            ("/home/*/*", false, false, "/home/u/x", true),
            ("/home/*/*", false, false, "/home/u", false),
            ("/home/*/*", false, false, "/home//", true),
            (".*", false, false, ".hidden", true),
            (".*", false, false, "x.hidden", false),
            ("*a*b*c", false, false, "xaybzc", true),
            ("*a*b*c", false, false, "xaybzcd", false),
            ("a?c", true, false, "abc", true),
            ("a?c", true, false, "ac", false),
            ("a?c", false, false, "a?c", true),
            ("a?c", false, false, "abc", false),
            ("é?", true, false, "éü", true),
            ("a\\*b", false, false, "a*b", true),
            ("a\\*b", false, false, "axb", false),
            ("*.exe", false, true, "CMD.EXE", true),
            ("*aa", false, false, "aaa", true),
            ("*ab*ab", false, false, "abxabab", true),
        ];
        for (pat, q, ci, input, want) in cases {
            let g = Glob::parse(pat, *q, *ci);
            assert_eq!(g.matches(input), *want, "{pat:?} on {input:?}");
        }
    }

    #[test]
    fn source_round_trips() {
        for p in ["a*b?c", "a\\*b", "*x*", "plain"] {
            let g = Glob::parse(p, true, false);
            assert_eq!(Glob::parse(g.source(), true, false), g, "{p}");
        }
    }
}
