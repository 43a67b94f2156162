//! An approximation of Elasticsearch's `standard` analyzer (Unicode word segmentation, then
//! lower-casing), used for `text` and `match_only_text` fields.
//!
//! Tokens are runs of letters, digits and `_`; a `.` or `'` joins two alphanumeric runs
//! (`169.254.169.254`, `don't`, `foo.bar` stay one token), `,` joins digits (`1,000`), `:` joins
//! letters. Differences from full UAX #29 segmentation (ideographs are one token per character in
//! Lucene, emoji rules) are listed in `docs/deviations.md`.

/// Split `s` into lower-cased tokens.
pub fn tokens(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if word(c) {
            if is_ideograph(c) {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.extend(c.to_lowercase().map(|l| l.to_string()));
                i += 1;
                continue;
            }
            cur.extend(c.to_lowercase());
        } else if !cur.is_empty() {
            let prev = chars[i - 1];
            let next = chars.get(i + 1).copied();
            let joins = match (c, next) {
                ('.' | '\'' | '\u{2019}', Some(n)) => word(n) && !is_ideograph(n),
                (',' | ';', Some(n)) => prev.is_ascii_digit() && n.is_ascii_digit(),
                (':', Some(n)) => prev.is_alphabetic() && n.is_alphabetic(),
                _ => false,
            };
            if joins {
                cur.push(c);
            } else {
                out.push(std::mem::take(&mut cur));
            }
        }
        i += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_ideograph(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
}

#[cfg(test)]
mod tests {
    use super::tokens;

    #[test]
    fn table() {
        let cases: &[(&str, &[&str])] = &[
            ("Hello World", &["hello", "world"]),
            ("curl http://169.254.169.254/latest/meta-data/", &["curl", "http", "169.254.169.254", "latest", "meta", "data"]),
            ("don't stop", &["don't", "stop"]),
            ("a_b-c", &["a_b", "c"]),
            ("end.", &["end"]),
            ("1,000 items", &["1,000", "items"]),
            ("", &[]),
            ("ÉTÉ", &["été"]),
        ];
        for (input, want) in cases {
            assert_eq!(tokens(input), want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{input:?}");
        }
    }
}
