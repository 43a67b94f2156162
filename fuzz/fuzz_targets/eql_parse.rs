//! Fuzz the EQL parser: it never panics, and whatever parses prints and re-parses to the same tree
//! (spans aside).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(q) = imdsguard_eql::parse(text) else { return };
    let printed = imdsguard_eql::to_eql(&q);
    let again = match imdsguard_eql::parse(&printed) {
        Ok(again) => again,
        Err(d) => panic!("{text:?} printed as {printed:?}, which does not parse:\n{}", d.render(&printed, "printed")),
    };
    assert_eq!(q.without_spans(), again.without_spans(), "{text:?} printed as {printed:?}");
});
