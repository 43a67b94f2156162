// SPDX-License-Identifier: GPL-2.0
// imdsguard sensor, eBPF path (cargo feature `ebpf`): the process that opens each TCP connection,
// captured in the kernel at the moment it connects, so short-lived clients are never missed.
//
// Tracepoint sock:inet_sock_set_state (stable ABI: fields below as in
// /sys/kernel/tracing/events/sock/inet_sock_set_state/format). The transition to TCP_SYN_SENT
// happens inside connect() (tcp_v4_connect / tcp_v6_connect), in the context of the connecting
// task, so the current pid/tgid/uid/comm are the client's; but the source port is chosen after
// it (inet_hash_connect), so the process is remembered per socket (CONNECTING, an LRU map) and the
// event is sent at the socket's next transition (SYN_SENT -> ESTABLISHED or CLOSE, usually in
// softirq context), when all four addresses are known.
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define TCP_SYN_SENT 2
#define IPPROTO_TCP_ 6
#define AF_INET_ 2
#define AF_INET6_ 10

struct inet_sock_set_state_args {
	__u64 common;          /* common_type, common_flags, common_preempt_count, common_pid */
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport;           /* host byte order (the tracepoint applies ntohs) */
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

struct proc_info {
	__u32 tgid;
	__u32 pid;
	__u32 uid;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct proc_info);
} CONNECTING SEC(".maps");

/* The executable of each process, recorded at exec time (sched:sched_process_exec), so that a
 * client that exits right after its request is still named by its executable. */
#define EXE_LEN 256
struct exe_path {
	char path[EXE_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct exe_path);
} EXES SEC(".maps");

struct sched_process_exec_args {
	__u64 common;
	__u32 filename_loc;    /* __data_loc: offset in the low 16 bits, length in the high 16 */
	int pid;
	int old_pid;
};

SEC("tracepoint/sched/sched_process_exec")
int imdsguard_exec(struct sched_process_exec_args *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct exe_path e = {};
	unsigned int off = ctx->filename_loc & 0xFFFF;
	bpf_probe_read_kernel_str(e.path, sizeof(e.path), (void *)ctx + off);
	bpf_map_update_elem(&EXES, &tgid, &e, BPF_ANY);
	return 0;
}

/* One event: 324 bytes, parsed field by field in user space (src/ebpf.rs). */
struct connect_event {
	__u32 tgid;            /* process id */
	__u32 pid;             /* thread id */
	__u32 uid;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 pad;
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[16];
	char exe[EXE_LEN];     /* empty when the process exec'd before the sensor started */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} EVENTS SEC(".maps");

SEC("tracepoint/sock/inet_sock_set_state")
int imdsguard_connect(struct inet_sock_set_state_args *ctx)
{
	if (ctx->protocol != IPPROTO_TCP_)
		return 0;
	__u64 sk = (__u64)ctx->skaddr;
	if (ctx->newstate == TCP_SYN_SENT) {
		struct proc_info p = {};
		__u64 id = bpf_get_current_pid_tgid();
		p.tgid = id >> 32;
		p.pid = (__u32)id;
		p.uid = (__u32)bpf_get_current_uid_gid();
		bpf_get_current_comm(p.comm, sizeof(p.comm));
		bpf_map_update_elem(&CONNECTING, &sk, &p, BPF_ANY);
		return 0;
	}
	if (ctx->oldstate != TCP_SYN_SENT)
		return 0;
	struct proc_info *p = bpf_map_lookup_elem(&CONNECTING, &sk);
	if (!p)
		return 0;
	struct connect_event *e = bpf_ringbuf_reserve(&EVENTS, sizeof(*e), 0);
	if (e) {
		e->tgid = p->tgid;
		e->pid = p->pid;
		e->uid = p->uid;
		e->family = ctx->family;
		e->sport = ctx->sport;
		e->dport = ctx->dport;
		e->pad = 0;
		__builtin_memset(e->saddr, 0, sizeof(e->saddr));
		__builtin_memset(e->daddr, 0, sizeof(e->daddr));
		if (ctx->family == AF_INET_) {
			__builtin_memcpy(e->saddr, ctx->saddr, 4);
			__builtin_memcpy(e->daddr, ctx->daddr, 4);
		} else {
			__builtin_memcpy(e->saddr, ctx->saddr_v6, 16);
			__builtin_memcpy(e->daddr, ctx->daddr_v6, 16);
		}
		__builtin_memcpy(e->comm, p->comm, sizeof(e->comm));
		struct exe_path *x = bpf_map_lookup_elem(&EXES, &p->tgid);
		if (x)
			__builtin_memcpy(e->exe, x->path, sizeof(e->exe));
		else
			e->exe[0] = 0;
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&CONNECTING, &sk);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
