//! Spans and diagnostics shared by every imdsguard parser and loader.
//!
//! This crate owns the vocabulary of "where" and "what went wrong": a [`Span`] is a byte range into
//! some source text, a [`Diagnostic`] is a stable code, a message, an optional labelled span and an
//! optional help line. Libraries return diagnostics as values; only the binary renders them
//! (see [`Diagnostic::render`] for the plain caret rendering used in machine output and tests).
//!
//! Diagnostic codes are allocated per crate in ranges and never reused (see `docs/diagnostics.md`):
//! `K0xx` KQL, `Q0xx` EQL, `R0xx` rules, `E0xx` engine / lowering, `S0xx` sources.

use std::fmt;

/// A half-open byte range `[start, end)` into a source string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// An empty span at `pos` (used for "expected X at end of input").
    pub const fn point(pos: usize) -> Self {
        Span { start: pos, end: pos }
    }
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in some input, with enough context to point at it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Stable code such as `K001`.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// Where in the source the problem is, if known.
    pub span: Option<Span>,
    /// Short text shown under the caret.
    pub label: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic { code, severity: Severity::Error, message: message.into(), span: None, label: None, help: None }
    }
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message) }
    }
    pub fn with_span(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Line and column (1-based, columns in characters) of the span start within `source`.
    pub fn line_col(&self, source: &str) -> Option<(usize, usize)> {
        let span = self.span?;
        Some(line_col(source, span.start))
    }

    /// Plain-text rendering with the offending line and a caret under the span:
    ///
    /// ```text
    /// error[K002]: expected a value after ':'
    ///  --> rule.toml:3:14
    ///   |
    /// 3 | process.name: and x
    ///   |              ^ expected value
    /// ```
    pub fn render(&self, source: &str, origin: &str) -> String {
        let mut out = String::new();
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!("{sev}[{}]: {}\n", self.code, self.message));
        if let Some(span) = self.span {
            let start = span.start.min(source.len());
            let (line, col) = line_col(source, start);
            out.push_str(&format!(" --> {origin}:{line}:{col}\n"));
            let line_text = source.lines().nth(line - 1).unwrap_or("");
            let gutter = line.to_string().len();
            let pad = " ".repeat(gutter);
            out.push_str(&format!("{pad} |\n{line} | {line_text}\n"));
            let line_chars = line_text.chars().count();
            let width = if span.is_empty() {
                1
            } else {
                let end = span.end.min(source.len());
                let text = source.get(start..end).unwrap_or("");
                let first_line = text.split('\n').next().unwrap_or("");
                first_line.chars().count().max(1).min(line_chars.saturating_sub(col - 1).max(1))
            };
            out.push_str(&format!("{pad} | {}{}", " ".repeat(col - 1), "^".repeat(width)));
            if let Some(label) = &self.label {
                out.push(' ');
                out.push_str(label);
            }
            out.push('\n');
        } else {
            out.push_str(&format!(" --> {origin}\n"));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("help: {help}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)?;
        if let Some(span) = self.span {
            write!(f, " (at byte {})", span.start)?;
        }
        Ok(())
    }
}

/// 1-based line and character column of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let mut line = 1;
    let mut line_start = 0;
    for (i, b) in source.bytes().enumerate() {
        if i >= offset {
            break;
        }
        if b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    let col = source.get(line_start..offset).map(|s| s.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_span() {
        let src = "a:b and\nprocess.name: )";
        let d = Diagnostic::error("K001", "unexpected ')'").with_span(Span::new(22, 23)).with_label("here");
        let r = d.render(src, "q");
        assert!(r.contains(" --> q:2:15"), "{r}");
        assert!(r.contains("2 | process.name: )"), "{r}");
        assert!(r.contains("  |               ^ here"), "{r}");
    }

    #[test]
    fn point_span_at_end() {
        let src = "a:";
        let d = Diagnostic::error("K002", "expected value").with_span(Span::point(2));
        let r = d.render(src, "q");
        assert!(r.contains("1 | a:\n  |   ^"), "{r}");
    }

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("é:x", 3), (1, 3));
        assert_eq!(line_col("a\nb", 2), (2, 1));
    }
}
