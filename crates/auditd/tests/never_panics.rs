//! Property: arbitrary lines (and mutations of real records) never make the decoder panic, and
//! every line is accounted for (a record, an ignored line, or a reported problem).

use imdsguard_auditd::{AuditDecoder, DecoderConfig};
use proptest::prelude::*;

const REAL: &[&str] = &[
    "type=SYSCALL msg=audit(1777629600.124:2202): arch=c000003e syscall=42 success=no exit=-115 a0=5 a1=7ffd a2=10 a3=0 items=0 ppid=4120 pid=4188 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm=\"curl\" exe=\"/usr/bin/curl\" key=\"imds\"\x1dARCH=x86_64 SYSCALL=connect AUID=\"ubuntu\"",
    "type=SOCKADDR msg=audit(1777629600.124:2202): saddr=02000050A9FEA9FE0000000000000000",
    "type=EXECVE msg=audit(1777629600.124:2202): argc=3 a0=\"python3\" a1=\"-c\" a2_len=10 a2[0]=41424344 a2[1]=\"x\"",
    "type=PROCTITLE msg=audit(1777629600.124:2202): proctitle=6375726C00",
    "node=h type=USER_START msg=audit(1777629600.124:2203): pid=1 uid=0 msg='op=x acct=\"u\" res=success'",
    "type=EOE msg=audit(1777629600.124:2202):",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20)) {
        let mut d = AuditDecoder::new(DecoderConfig { max_pending: 3, window_ms: 10, ..DecoderConfig::default() });
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            d.feed_line(i as u64 + 1, l, &mut out);
        }
        d.finish(&mut out);
        let s = d.stats().clone();
        prop_assert_eq!(s.lines, lines.len() as u64);
        prop_assert_eq!(s.records + s.ignored_lines + s.bad_lines, s.lines);
    }

    #[test]
    fn mutated_records_never_panic(picks in proptest::collection::vec((0..REAL.len(), 0usize..400, any::<u8>(), any::<bool>()), 1..30)) {
        let mut d = AuditDecoder::new(DecoderConfig::default());
        let mut out = Vec::new();
        for (i, (which, at, byte, cut)) in picks.iter().enumerate() {
            let mut l = REAL[*which].as_bytes().to_vec();
            let at = (*at).min(l.len());
            if *cut { l.truncate(at) } else if at < l.len() { l[at] = *byte }
            d.feed_line(i as u64 + 1, &l, &mut out);
        }
        d.finish(&mut out);
        let problems = d.take_problems();
        prop_assert_eq!(problems.len() as u64, d.stats().problems);
        for e in &out {
            prop_assert!(e.event.get("event").is_some());
        }
    }
}
