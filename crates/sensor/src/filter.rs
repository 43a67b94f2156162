//! A classic BPF program (the `SO_ATTACH_FILTER` kind) that accepts Ethernet frames carrying
//! IPv4 or IPv6 packets from or to one of the metadata endpoints' addresses, and nothing else.
//!
//! Attached to the `AF_PACKET` socket, it runs in the kernel: packets of other traffic are never
//! copied to user space, so a busy host costs the sensor (almost) nothing. The same program is
//! interpreted in user space by [`Program::accepts`] when the kernel refuses it (and in tests),
//! so both paths accept exactly the same frames. 802.1Q-tagged frames are not matched: on Linux
//! the tag is normally stripped by VLAN offload before `AF_PACKET` sees the frame.

use std::net::IpAddr;

const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
/// Bytes of an accepted frame copied to user space (the whole frame).
pub const SNAPLEN: u32 = 262_144;

/// One instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A compiled filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub insns: Vec<Insn>,
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    Accept,
    Reject,
    Label(usize),
}

enum Op {
    Ld(u16, u32),
    Jeq(u32, Target, Target),
    Ret(u32),
    Label(usize),
}

/// Why a program cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    NoAddresses,
    /// Classic BPF jumps are at most 255 instructions forward.
    TooManyAddresses(usize),
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterError::NoAddresses => write!(f, "no endpoint address to filter on"),
            FilterError::TooManyAddresses(n) => write!(f, "{n} endpoint addresses are too many for one classic BPF program"),
        }
    }
}

impl Program {
    /// Accept Ethernet frames whose IPv4/IPv6 source or destination is one of `addrs`.
    pub fn for_addresses(addrs: &[IpAddr]) -> Result<Program, FilterError> {
        let v4: Vec<u32> = addrs.iter().filter_map(|a| if let IpAddr::V4(a) = a { Some(u32::from(*a)) } else { None }).collect();
        let v6: Vec<[u32; 4]> = addrs
            .iter()
            .filter_map(|a| {
                if let IpAddr::V6(a) = a {
                    let o = a.octets();
                    let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
                    Some([w(0), w(4), w(8), w(12)])
                } else {
                    None
                }
            })
            .collect();
        if v4.is_empty() && v6.is_empty() {
            return Err(FilterError::NoAddresses);
        }
        let v6_label = 0usize;
        let mut next_label = 1usize;
        let mut ops = vec![Op::Ld(LD_H_ABS, 12), Op::Jeq(0x0800, Target::Next, Target::Label(v6_label))];
        if v4.is_empty() {
            ops.push(Op::Ret(0));
        } else {
            for off in [26u32, 30] {
                ops.push(Op::Ld(LD_W_ABS, off));
                for a in &v4 {
                    ops.push(Op::Jeq(*a, Target::Accept, Target::Next));
                }
            }
            ops.push(Op::Ret(0));
        }
        ops.push(Op::Label(v6_label));
        ops.push(Op::Jeq(0x86dd, Target::Next, Target::Reject));
        for a in &v6 {
            for off in [22u32, 38] {
                let miss = next_label;
                next_label += 1;
                for (i, w) in a.iter().enumerate() {
                    ops.push(Op::Ld(LD_W_ABS, off + 4 * i as u32));
                    let hit = if i == 3 { Target::Accept } else { Target::Next };
                    ops.push(Op::Jeq(*w, hit, Target::Label(miss)));
                }
                ops.push(Op::Label(miss));
            }
        }
        ops.push(Op::Ret(0));
        Self::assemble(ops, addrs.len())
    }

    fn assemble(mut ops: Vec<Op>, n_addrs: usize) -> Result<Program, FilterError> {
        // The shared exits at the end.
        ops.push(Op::Ret(0)); // reject
        ops.push(Op::Ret(SNAPLEN)); // accept
        let mut labels = std::collections::HashMap::new();
        let mut pos = 0usize;
        for op in &ops {
            match op {
                Op::Label(l) => {
                    labels.insert(*l, pos);
                }
                _ => pos += 1,
            }
        }
        let (reject, accept) = (pos - 2, pos - 1);
        let mut insns = Vec::with_capacity(pos);
        for op in &ops {
            let here = insns.len();
            let resolve = |t: Target| -> Result<u8, FilterError> {
                let to = match t {
                    Target::Next => here + 1,
                    Target::Accept => accept,
                    Target::Reject => reject,
                    Target::Label(l) => labels.get(&l).copied().unwrap_or(reject),
                };
                u8::try_from(to - here - 1).map_err(|_| FilterError::TooManyAddresses(n_addrs))
            };
            match *op {
                Op::Label(_) => {}
                Op::Ld(code, k) => insns.push(Insn { code, jt: 0, jf: 0, k }),
                Op::Ret(k) => insns.push(Insn { code: RET_K, jt: 0, jf: 0, k }),
                Op::Jeq(k, t, f) => insns.push(Insn { code: JEQ_K, jt: resolve(t)?, jf: resolve(f)?, k }),
            }
        }
        Ok(Program { insns })
    }

    /// Run the program on a frame as the kernel would: `true` when it returns a non-zero length.
    /// A load beyond the frame's end rejects it (as in the kernel).
    pub fn accepts(&self, frame: &[u8]) -> bool {
        let mut a: u32 = 0;
        let mut pc = 0usize;
        while let Some(i) = self.insns.get(pc) {
            match i.code {
                LD_W_ABS => match frame.get(i.k as usize..i.k as usize + 4) {
                    Some(b) => a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                    None => return false,
                },
                LD_H_ABS => match frame.get(i.k as usize..i.k as usize + 2) {
                    Some(b) => a = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return false,
                },
                JEQ_K => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf });
                }
                RET_K => return i.k != 0,
                _ => return false,
            }
            pc += 1;
        }
        false
    }

    /// The program in socket2's form, for `Socket::attach_filter`.
    pub fn to_sock_filters(&self) -> Vec<socket2::SockFilter> {
        self.insns.iter().map(|i| socket2::SockFilter::new(i.code, i.jt, i.jf, i.k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth_v4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        f.extend(ip);
        f.extend_from_slice(&[0u8; 20]);
        f
    }

    fn eth_v6(src: &str, dst: &str) -> Vec<u8> {
        let s: std::net::Ipv6Addr = src.parse().unwrap();
        let d: std::net::Ipv6Addr = dst.parse().unwrap();
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd]);
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, 6, 64]);
        f.extend_from_slice(&s.octets());
        f.extend_from_slice(&d.octets());
        f.extend_from_slice(&[0u8; 20]);
        f
    }

    #[test]
    fn accepts_exactly_metadata_traffic() {
        let addrs: Vec<IpAddr> = ["169.254.169.254", "fd00:ec2::254", "169.254.170.2"].iter().map(|s| s.parse().unwrap()).collect();
        let p = Program::for_addresses(&addrs).unwrap();
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("v4 to imds", eth_v4([10, 0, 0, 2], [169, 254, 169, 254]), true),
            ("v4 from imds", eth_v4([169, 254, 169, 254], [10, 0, 0, 2]), true),
            ("v4 to ecs", eth_v4([10, 0, 0, 2], [169, 254, 170, 2]), true),
            ("v4 other", eth_v4([10, 0, 0, 2], [169, 254, 169, 253]), false),
            ("v6 to imds", eth_v6("fd00::1", "fd00:ec2::254"), true),
            ("v6 from imds", eth_v6("fd00:ec2::254", "fd00::1"), true),
            ("v6 near miss", eth_v6("fd00::1", "fd00:ec2::255"), false),
            ("v6 prefix only", eth_v6("fd00::1", "fd00:ec2::"), false),
            ("arp", { let mut f = eth_v4([1, 1, 1, 1], [169, 254, 169, 254]); f[12] = 0x08; f[13] = 0x06; f }, false),
            ("short", vec![0u8; 10], false),
            ("truncated v4", eth_v4([10, 0, 0, 2], [169, 254, 169, 254])[..30].to_vec(), false),
        ];
        for (name, frame, want) in cases {
            assert_eq!(p.accepts(&frame), want, "{name}");
        }
    }

    #[test]
    fn single_family_programs() {
        let p = Program::for_addresses(&["fd00:ec2::254".parse().unwrap()]).unwrap();
        assert!(!p.accepts(&eth_v4([10, 0, 0, 2], [169, 254, 169, 254])));
        assert!(p.accepts(&eth_v6("fd00::1", "fd00:ec2::254")));
        let p = Program::for_addresses(&["169.254.169.254".parse().unwrap()]).unwrap();
        assert!(p.accepts(&eth_v4([10, 0, 0, 2], [169, 254, 169, 254])));
        assert!(!p.accepts(&eth_v6("fd00::1", "fd00:ec2::254")));
        assert_eq!(Program::for_addresses(&[]), Err(FilterError::NoAddresses));
    }

    #[test]
    fn too_many_addresses_is_an_error_not_a_wrong_program() {
        let many: Vec<IpAddr> = (0..40u16).map(|i| IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i))).collect();
        assert!(matches!(Program::for_addresses(&many), Err(FilterError::TooManyAddresses(40))));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(frame in proptest::collection::vec(proptest::num::u8::ANY, 0..120)) {
            let p = Program::for_addresses(&["169.254.169.254".parse().unwrap(), "fd00:ec2::254".parse().unwrap()]).unwrap();
            let _ = p.accepts(&frame);
        }
    }
}
