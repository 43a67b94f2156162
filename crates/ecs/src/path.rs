//! Compiled field paths.
//!
//! Producers write the same ECS field in several shapes: fully nested objects, literal dotted keys,
//! or a mixture (`{"process": {"code_signature.trusted": true}}`). Elasticsearch treats them all as
//! the field `process.code_signature.trusted`. A [`FieldPath`] pre-computes, once per rule, every
//! joined key that can appear at each depth so that resolving a field in an event never splits or
//! allocates strings.

/// A field name compiled for lookups. Cheap to clone is not a goal; compile once, share by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    name: String,
    /// Number of dot-separated segments.
    len: usize,
    /// `keys[i]` holds, for segments starting at `i`, the joined keys `seg[i..j]` for `j` in `i+1..=len`,
    /// shortest first.
    keys: Vec<Vec<String>>,
}

impl FieldPath {
    /// Compile `name` (e.g. `"process.code_signature.trusted"`).
    pub fn new(name: &str) -> Self {
        let segs: Vec<&str> = name.split('.').collect();
        let len = segs.len();
        let mut keys = Vec::with_capacity(len);
        for i in 0..len {
            let mut row = Vec::with_capacity(len - i);
            for j in (i + 1)..=len {
                row.push(segs[i..j].join("."));
            }
            keys.push(row);
        }
        FieldPath { name: name.to_string(), len, keys }
    }

    /// The full dotted name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of segments.
    pub fn depth(&self) -> usize {
        self.len
    }

    /// Joined keys that start at segment `i`; the key at index `k` spans segments `i..=i+k`.
    pub(crate) fn keys_from(&self, i: usize) -> &[String] {
        &self.keys[i]
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cover_all_joins() {
        let p = FieldPath::new("a.b.c");
        assert_eq!(p.keys_from(0), &["a", "a.b", "a.b.c"]);
        assert_eq!(p.keys_from(1), &["b", "b.c"]);
        assert_eq!(p.keys_from(2), &["c"]);
        assert_eq!(p.depth(), 3);
    }
}
