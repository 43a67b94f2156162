//! Per-partition rule state and its changelog records.
//!
//! Every input partition has its own [`PartitionState`]: the new_terms history and threshold
//! signal history the engine reads and writes through [`TermsHistory`] (threshold history is the
//! `threshold-signal:<rule_id>` namespace of the same map), and the engine's [`StreamState`]
//! (sequences, threshold windows, suppression and `max_signals` windows carried between batches).
//! Writes of a batch go to a pending layer first; only when the batch's alerts are durable does [`PartitionState::commit`] fold them into
//! the committed layer and hand back the changed entries, which the consumer writes to the
//! compacted changelog topic. A batch that fails is [`PartitionState::rollback`]ed, so a retry (or
//! the next owner of the partition) starts from exactly the state the committed offsets imply.
//!
//! Changelog records: key `["<topic>", <partition>, "<namespace>", "<tuple>"]` (JSON), value
//! `{"first": ms, "last": ms}`; and key `["<topic>", <partition>, "@stream"]` with the stream
//! state's JSON (carried events redacted of credentials) as value. Kafka's compaction keeps the latest value of each key, and the
//! values only widen (`first` = min, `last` = max), so the latest value is the whole history of
//! that (partition, rule, tuple).

use imdsguard_engine::history::{HistoryError, Seen, TermsHistory};
use imdsguard_engine::StreamState;
use std::collections::HashMap;

/// An input partition: topic and partition number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tp {
    pub topic: String,
    pub partition: i32,
}

impl std::fmt::Display for Tp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

type Entry = (String, String);

/// One partition's rule state (new_terms and threshold signal history).
#[derive(Debug, Default)]
pub struct PartitionState {
    committed: HashMap<Entry, Seen>,
    pending: HashMap<Entry, Seen>,
    /// The engine's stream state after the last committed batch.
    pub stream: StreamState,
    /// The stream state the current batch produced, until it commits.
    pub stream_pending: Option<StreamState>,
    /// The changelog value last written for the stream state (unchanged states are not rewritten).
    stream_written: Option<Vec<u8>>,
}

/// A changed entry, to be written to the changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub namespace: String,
    pub tuple: String,
    pub seen: Seen,
}

impl PartitionState {
    /// Entries known (committed).
    pub fn len(&self) -> usize {
        self.committed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
    }

    /// Fold a restored changelog value in (values only widen, so order does not matter).
    pub fn restore(&mut self, namespace: &str, tuple: &str, seen: Seen) {
        let e = self.committed.entry((namespace.to_string(), tuple.to_string())).or_insert(seen);
        e.first = e.first.min(seen.first);
        e.last = e.last.max(seen.last);
    }

    /// Restore the stream state from its changelog value.
    pub fn restore_stream(&mut self, value: &[u8]) -> Result<(), String> {
        let v: serde_json::Value = serde_json::from_slice(value).map_err(|e| format!("stream state is not JSON: {e}"))?;
        self.stream = StreamState::from_json(&v)?;
        self.stream_written = Some(stream_value(&self.stream));
        Ok(())
    }

    /// Commit the batch's stream state; returns its changelog value when it changed.
    pub fn commit_stream(&mut self) -> Option<Vec<u8>> {
        let st = self.stream_pending.take()?;
        let value = stream_value(&st);
        self.stream = st;
        if self.stream_written.as_ref() == Some(&value) {
            return None;
        }
        self.stream_written = Some(value.clone());
        Some(value)
    }

    /// Make the batch's writes part of the committed state; returns the entries that changed
    /// (their merged value), for the changelog.
    pub fn commit(&mut self) -> Vec<Change> {
        let mut out = Vec::with_capacity(self.pending.len());
        for ((namespace, tuple), seen) in self.pending.drain() {
            let key = (namespace, tuple);
            let merged = match self.committed.get(&key) {
                Some(c) => Seen { first: c.first.min(seen.first), last: c.last.max(seen.last) },
                None => seen,
            };
            if self.committed.get(&key) != Some(&merged) {
                self.committed.insert(key.clone(), merged);
                out.push(Change { namespace: key.0, tuple: key.1, seen: merged });
            }
        }
        out.sort_by(|a, b| (&a.namespace, &a.tuple).cmp(&(&b.namespace, &b.tuple)));
        out
    }

    /// Forget the batch's writes.
    pub fn rollback(&mut self) {
        self.pending.clear();
        self.stream_pending = None;
    }
}

impl TermsHistory for PartitionState {
    fn get(&mut self, rule_id: &str, tuple: &str) -> Result<Option<Seen>, HistoryError> {
        let k = (rule_id.to_string(), tuple.to_string());
        Ok(match (self.committed.get(&k), self.pending.get(&k)) {
            (Some(c), Some(p)) => Some(Seen { first: c.first.min(p.first), last: c.last.max(p.last) }),
            (c, p) => c.or(p).copied(),
        })
    }

    fn record(&mut self, rule_id: &str, tuple: &str, at: i64) -> Result<(), HistoryError> {
        let e = self.pending.entry((rule_id.to_string(), tuple.to_string())).or_insert(Seen { first: at, last: at });
        e.first = e.first.min(at);
        e.last = e.last.max(at);
        Ok(())
    }
}

/// The changelog key of an entry.
pub fn changelog_key(tp: &Tp, namespace: &str, tuple: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([tp.topic, tp.partition, namespace, tuple])).unwrap_or_default()
}

/// The changelog key of a partition's opaque engine stream state.
pub fn stream_key(tp: &Tp) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([tp.topic, tp.partition, "@stream"])).unwrap_or_default()
}

/// The changelog value of a stream state: its JSON, with credentials redacted from the carried
/// events (nothing leaves the process unredacted).
pub fn stream_value(st: &StreamState) -> Vec<u8> {
    let mut v = st.to_json();
    if let Some(rules) = v.get_mut("rules").and_then(|r| r.as_object_mut()) {
        for r in rules.values_mut() {
            for c in r.get_mut("carried").and_then(|c| c.as_array_mut()).into_iter().flatten() {
                if let Some(doc) = c.get_mut("doc") {
                    if let Some(text) = doc.as_str() {
                        if let Ok(mut d) = serde_json::from_str::<serde_json::Value>(text) {
                            if imdsguard_ecs::redact::redact(&mut d) > 0 {
                                *doc = serde_json::Value::String(d.to_string());
                            }
                        }
                    }
                }
            }
        }
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The changelog value of an entry.
pub fn changelog_value(seen: Seen) -> Vec<u8> {
    format!("{{\"first\":{},\"last\":{}}}", seen.first, seen.last).into_bytes()
}

/// A decoded changelog record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Entry { tp: Tp, namespace: String, tuple: String, seen: Seen },
    /// The stream state's JSON (see [`stream_value`]).
    Stream { tp: Tp, state: Vec<u8> },
}

/// Decode a changelog record; `Err` names what is wrong (a foreign or damaged record is reported
/// and skipped by the caller, never fatal).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Record, String> {
    let k: serde_json::Value = serde_json::from_slice(key).map_err(|e| format!("key is not JSON: {e}"))?;
    let arr = k.as_array().ok_or("key is not a JSON array")?;
    let topic = arr.first().and_then(|v| v.as_str()).ok_or("key[0] (topic) is not a string")?;
    let partition = arr.get(1).and_then(|v| v.as_i64()).and_then(|p| i32::try_from(p).ok()).ok_or("key[1] (partition) is not an integer")?;
    let tp = Tp { topic: topic.to_string(), partition };
    let namespace = arr.get(2).and_then(|v| v.as_str()).ok_or("key[2] (namespace) is not a string")?;
    let value = value.ok_or("record has no value")?;
    if namespace == "@stream" && arr.len() == 3 {
        return Ok(Record::Stream { tp, state: value.to_vec() });
    }
    let tuple = arr.get(3).and_then(|v| v.as_str()).ok_or("key[3] (tuple) is not a string")?;
    let v: serde_json::Value = serde_json::from_slice(value).map_err(|e| format!("value is not JSON: {e}"))?;
    let first = v.get("first").and_then(|x| x.as_i64()).ok_or("value has no integer \"first\"")?;
    let last = v.get("last").and_then(|x| x.as_i64()).ok_or("value has no integer \"last\"")?;
    Ok(Record::Entry { tp, namespace: namespace.to_string(), tuple: tuple.to_string(), seen: Seen { first, last } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_is_visible_then_committed_or_rolled_back() {
        let mut s = PartitionState::default();
        s.record("r", "[\"a\"]", 10).expect("record");
        assert_eq!(s.get("r", "[\"a\"]").expect("get"), Some(Seen { first: 10, last: 10 }));
        s.rollback();
        assert_eq!(s.get("r", "[\"a\"]").expect("get"), None, "a failed batch leaves no trace");
        s.record("r", "[\"a\"]", 10).expect("record");
        s.record("r", "[\"a\"]", 20).expect("record");
        let ch = s.commit();
        assert_eq!(ch, vec![Change { namespace: "r".into(), tuple: "[\"a\"]".into(), seen: Seen { first: 10, last: 20 } }]);
        s.record("r", "[\"a\"]", 5).expect("record");
        assert_eq!(s.get("r", "[\"a\"]").expect("get"), Some(Seen { first: 5, last: 20 }), "committed and pending merge");
        assert_eq!(s.commit()[0].seen, Seen { first: 5, last: 20 }, "the changelog gets the merged value");
        s.record("r", "[\"a\"]", 15).expect("record");
        assert!(s.commit().is_empty(), "a sighting inside the known range changes nothing");
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_named() {
        let tp = Tp { topic: "events".into(), partition: 3 };
        let seen = Seen { first: 1, last: 2 };
        let k = changelog_key(&tp, "ad02", "[\"h1\",\"/usr/bin/curl\"]");
        assert_eq!(
            decode(&k, Some(&changelog_value(seen))),
            Ok(Record::Entry { tp: tp.clone(), namespace: "ad02".into(), tuple: "[\"h1\",\"/usr/bin/curl\"]".into(), seen })
        );
        assert_eq!(decode(&stream_key(&tp), Some(b"xyz")), Ok(Record::Stream { tp, state: b"xyz".to_vec() }));
        type Case<'a> = (&'a [u8], Option<&'a [u8]>, &'a str);
        let bad: &[Case] = &[
            (b"nope", Some(b"{}"), "key is not JSON"),
            (b"{}", Some(b"{}"), "not a JSON array"),
            (b"[\"t\", \"x\", \"r\", \"u\"]", Some(b"{}"), "partition"),
            (b"[\"t\", 1, \"r\", \"u\"]", None, "no value"),
            (b"[\"t\", 1, \"r\", \"u\"]", Some(b"{\"first\":1}"), "\"last\""),
        ];
        for (k, v, want) in bad {
            let e = decode(k, *v).expect_err("bad record");
            assert!(e.contains(want), "{e} should mention {want}");
        }
    }

    #[test]
    fn stream_state_round_trips_without_credentials() {
        let doc = serde_json::json!({"@timestamp": "2026-05-01T10:00:00Z", "http": {"response": {"body": {"content": "{\"Token\": \"IQoJb3JpZ2luX2VjEXAMPLE\"}"}}}, "Token": "IQoJb3JpZ2luX2VjEXAMPLE"});
        let snapshot = serde_json::json!({"version": 1, "next_seq": 7, "clock": null, "stats": {}, "rules": {"r1": {
            "carried": [{"doc": doc.to_string(), "key": "events/0/3", "index": "events", "origin": "kafka:events/0", "line": 4, "time": 1777629600000i64, "seq": 3}],
            "emitted_groups": {}, "suppression": [], "windows": [], "high_water": 1777629600000i64}}});
        let mut s = PartitionState::default();
        s.restore_stream(&serde_json::to_vec(&snapshot).expect("json")).expect("restore");
        assert_eq!(s.stream.carried(), 1);
        s.stream_pending = Some(s.stream.clone());
        assert_eq!(s.commit_stream(), None, "an unchanged state is not written again");
        let mut st = s.stream.clone();
        st.advance_clock(1_777_629_700_000);
        s.stream_pending = Some(st);
        let v = s.commit_stream().expect("a changed state is written");
        let text = String::from_utf8(v).expect("utf8");
        assert!(!text.contains("IQoJb3JpZ2luX2VjEXAMPLE"), "credentials leave the process redacted: {text}");
        let mut back = PartitionState::default();
        back.restore_stream(text.as_bytes()).expect("restore the redacted state");
        assert_eq!(back.stream.carried(), 1);
    }

    #[test]
    fn restore_merges_in_any_order() {
        let mut a = PartitionState::default();
        let mut b = PartitionState::default();
        let vals = [Seen { first: 5, last: 9 }, Seen { first: 3, last: 4 }, Seen { first: 6, last: 12 }];
        for v in vals {
            a.restore("r", "t", v);
        }
        for v in vals.iter().rev() {
            b.restore("r", "t", *v);
        }
        assert_eq!(a.get("r", "t").expect("get"), Some(Seen { first: 3, last: 12 }));
        assert_eq!(a.get("r", "t").expect("get"), b.get("r", "t").expect("get"));
    }
}
