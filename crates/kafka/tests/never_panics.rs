//! The decoders of what comes from outside (changelog records, `_bulk` responses, stream state
//! snapshots) never panic on arbitrary input.

use imdsguard_kafka::sinks::bulk_outcomes;
use imdsguard_kafka::state::{decode, PartitionState};
use proptest::prelude::*;

proptest! {
    #[test]
    fn changelog_records(key in proptest::collection::vec(any::<u8>(), 0..200), value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))) {
        let _ = decode(&key, value.as_deref());
    }

    #[test]
    fn changelog_records_shaped(topic in ".{0,8}", p in any::<i64>(), ns in ".{0,8}", tuple in ".{0,8}", first in any::<i64>(), last in proptest::option::of(any::<i64>())) {
        let key = serde_json::json!([topic, p, ns, tuple]).to_string();
        let value = match last {
            Some(l) => serde_json::json!({"first": first, "last": l}).to_string(),
            None => serde_json::json!({"first": first}).to_string(),
        };
        let _ = decode(key.as_bytes(), Some(value.as_bytes()));
    }

    #[test]
    fn bulk_responses(status in any::<u16>(), text in ".{0,300}", n in 0usize..5) {
        let _ = bulk_outcomes(status, &text, n);
    }

    #[test]
    fn stream_snapshots(text in ".{0,300}") {
        let mut s = PartitionState::default();
        let _ = s.restore_stream(text.as_bytes());
        let wrapped = format!("{{\"version\":1,\"rules\":{{\"r\":{{\"carried\":[{{\"doc\":{}}}]}}}}}}", serde_json::Value::String(text));
        let _ = s.restore_stream(wrapped.as_bytes());
    }
}
