//! Property tests for the readers: any bytes are read without panicking, and every non-blank
//! record is accounted for (delivered or skipped with a reason), whatever the format detection.

use imdsguard_ecs::Event;
use imdsguard_sources::{read_stream, EventSink, ReadStats};
use proptest::prelude::*;
use std::sync::Arc;

#[derive(Default)]
struct Count {
    events: u64,
}

impl EventSink for Count {
    fn event(&mut self, _e: Event) {
        self.events += 1;
    }
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"{"a":1}"#.to_string()),
        Just(r#"{"process":{"name":"curl"},"x":[1,2,{"y":null}]}"#.to_string()),
        Just(r#"{"hits":{"hits":[{"_id":"1","_source":{"a":1}},{"_id":"2"}]}}"#.to_string()),
        Just("[1, {\"a\": 2}]".to_string()),
        Just("   ".to_string()),
        "\\PC{0,40}",
        "[{}\\[\\]\":,a-z0-9 ]{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_bytes_are_read_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut sink = Count::default();
        let mut stats = ReadStats::default();
        read_stream(&mut std::io::Cursor::new(bytes), &Arc::from("t"), &mut sink, &mut stats);
        prop_assert_eq!(sink.events, stats.events);
    }

    #[test]
    fn ndjson_records_are_all_accounted_for(lines in prop::collection::vec(line(), 1..20)) {
        // Start with a valid object so the input is read as NDJSON.
        let text = format!("{{\"first\":true}}\n{}\n", lines.join("\n"));
        let mut sink = Count::default();
        let mut stats = ReadStats::default();
        read_stream(&mut std::io::Cursor::new(text.as_bytes()), &Arc::from("t"), &mut sink, &mut stats);
        let non_blank = text.split('\n').filter(|l| !l.trim_matches(|c: char| c.is_ascii_whitespace()).is_empty()).count() as u64;
        prop_assert_eq!(stats.records, non_blank);
        // A search response yields several events (or skips) from one record, so compare loosely:
        // every record produced at least one event or one skip.
        prop_assert!(stats.events + stats.skipped >= stats.records, "{:?}", stats);
    }
}
