//! EQL runtime values. EQL is three-valued: any comparison or function over `null` yields `null`,
//! `not null` is `null`, and a `where` condition that evaluates to `null` does not match.

/// One EQL value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    pub fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    /// The value as a number, if it is one (strings are not coerced).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Truth in a `where` context: only `true` is true (`null` and non-booleans are not).
    pub fn is_true(&self) -> bool {
        matches!(self, Scalar::Bool(true))
    }
}

/// An error found while evaluating (wrong argument types that lowering could not rule out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError(pub String);

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EvalError {}
