#![no_main]
//! Arbitrary bytes as one eBPF ring-buffer record of the live sensor (the first byte picks the
//! kind, so both layouts are reached): parsing must never panic, and an exec record's arguments
//! never exceed the kernel's bound.

use imdsguard_sensor::kernel::{parse_record, Record, ARGS_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let mut b = rest.to_vec();
    if b.len() >= 4 {
        b[0..4].copy_from_slice(&u32::from(pick % 4).to_ne_bytes());
    }
    if let Ok(Record::Exec(e)) = parse_record(&b) {
        assert!(e.args.iter().map(|a| a.len()).sum::<usize>() <= ARGS_MAX * 3);
    }
});
