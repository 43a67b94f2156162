#!/usr/bin/env python3
"""Write a pcap (Ethernet/IPv4/TCP) for the decode benchmark: HTTP flows of 4 packets each (SYN,
SYN-ACK, request, response); a fraction of them go to the metadata service (169.254.169.254),
the rest to ordinary servers on port 80 (HTTP) or 443 (opaque bytes).

  python3 scripts/gen_capture.py --bytes 1100000000 --imds-rate 0.01 --out bench-data/capture-1g.pcap
  python3 scripts/gen_capture.py --bytes 200000000 --imds-rate 1.0 --out bench-data/capture-imds.pcap
"""
import argparse
import random
import struct

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return (~s) & 0xFFFF

def packet(src, dst, sport, dport, seq, ack, flags, payload):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0) + payload
    total = 20 + len(tcp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, bytes(src), bytes(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"
    return eth + ip + tcp

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bytes", type=int, default=1_100_000_000)
    ap.add_argument("--imds-rate", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    filler = bytes(rnd.randrange(256) for _ in range(4096))
    written = 0
    flows = imds = 0
    ts = 1_777_600_000
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        while written < a.bytes:
            flows += 1
            client = [10, rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255)]
            sport = rnd.randrange(1024, 65535)
            is_imds = rnd.random() < a.imds_rate
            if is_imds:
                imds += 1
                server, dport = [169, 254, 169, 254], 80
                path = rnd.choice(["/latest/meta-data/iam/security-credentials/role", "/latest/meta-data/instance-id",
                                   "/latest/api/token", "/computeMetadata/v1/instance/service-accounts/default/token"])
                req = ("GET %s HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n" % path).encode()
                body = b'{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAXXXXXXXXXXXXXXXX","Expiration":"2026-05-01T20:00:00Z"}'
                resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            else:
                server = [rnd.randrange(1, 224), rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255)]
                dport = rnd.choice([80, 443])
                n = rnd.randrange(300, 1400)
                if dport == 80:
                    req = b"GET /static/app.js?v=%d HTTP/1.1\r\nHost: example.org\r\nUser-Agent: Mozilla/5.0\r\n\r\n" % rnd.randrange(10**6)
                    body = filler[:n]
                    resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/javascript\r\nContent-Length: %d\r\n\r\n" % n + body
                else:
                    req = filler[:rnd.randrange(200, 600)]
                    resp = filler[:n]
            cseq, sseq = rnd.randrange(2**32), rnd.randrange(2**32)
            pkts = [
                packet(client, server, sport, dport, cseq, 0, 0x02, b""),
                packet(server, client, dport, sport, sseq, (cseq + 1) % 2**32, 0x12, b""),
                packet(client, server, sport, dport, (cseq + 1) % 2**32, (sseq + 1) % 2**32, 0x18, req),
                packet(server, client, dport, sport, (sseq + 1) % 2**32, (cseq + 1 + len(req)) % 2**32, 0x18, resp),
            ]
            for i, p in enumerate(pkts):
                f.write(struct.pack("<IIII", ts, (flows * 4 + i) % 1_000_000, len(p), len(p)))
                f.write(p)
                written += 16 + len(p)
            if flows % 1000 == 0:
                ts += 1
    print("flows=%d imds_flows=%d bytes=%d" % (flows, imds, written))

main()
