// SPDX-License-Identifier: GPL-2.0
// imdsguard sensor, eBPF path: process launches and connects to the metadata endpoints, captured
// in the kernel, so even the shortest-lived client (`curl`) is described exactly.
//
// Self-contained on purpose: no kernel, libc or libbpf headers, only clang (`-target bpf -g`), so
// the build needs nothing beyond a clang. The few helper ids, map types and tracepoint layouts used
// are written out below (stable ABI: include/uapi/linux/bpf.h and the tracepoints' `format` files
// under /sys/kernel/tracing/events). The two kernel structures read (task_struct, mm_struct) are
// declared with `preserve_access_index`: clang records CO-RE relocations and the loader (aya)
// fixes the field offsets against the running kernel's BTF (/sys/kernel/btf/vmlinux).
//
// Records go to one ring buffer (EVENTS), parsed in user space by imdsguard_sensor::kernel
// (layouts below; byte offsets in comments; native byte order). Every record starts with a u32
// kind.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name

/* include/uapi/linux/bpf.h */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_MAP_TYPE_RINGBUF 27
#define BPF_ANY 0

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static __u64 (*bpf_get_current_uid_gid)(void) = (void *)15;
static long (*bpf_get_current_comm)(void *buf, __u32 size_of_buf) = (void *)16;
static __u64 (*bpf_get_current_task)(void) = (void *)35;
static __u64 (*bpf_get_current_cgroup_id)(void) = (void *)80;
static long (*bpf_probe_read_user)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)112;
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)113;
static long (*bpf_probe_read_kernel_str)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)115;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, __u64 size, __u64 flags) = (void *)130;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)132;

#define TCP_SYN_SENT 2
#define IPPROTO_TCP_ 6
#define AF_INET_ 2
#define AF_INET6_ 10

#define KIND_CONNECT 1
#define KIND_EXEC 2

/* Kernel structures, relocated by CO-RE (only the fields read are declared). */
struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
} __attribute__((preserve_access_index));

struct task_struct {
	struct mm_struct *mm;
	struct task_struct *real_parent;
	int tgid;
} __attribute__((preserve_access_index));

/* Events the ring buffer could not take (index 0: exec, 1: connect), read by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} DROPS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} EVENTS SEC(".maps");

static void count_drop(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&DROPS, &which);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* ---- process launches: sched:sched_process_exec ---------------------------------------- */

struct sched_process_exec_args {
	__u64 common;
	__u32 filename_loc; /* __data_loc: offset in the low 16 bits, length in the high 16 */
	__s32 pid;
	__s32 old_pid;
};

#define FILENAME_LEN 256
#define ARGS_LEN 4096
#define EXEC_ARGS_TRUNCATED 1
#define EXEC_ARGS_UNREADABLE 2

/* At most 4400 bytes; sent without the unused end of args (304 + args_size bytes). */
struct exec_event {
	__u32 kind;                  /*   0: KIND_EXEC */
	__u32 tgid;                  /*   4 */
	__u32 ppid;                  /*   8: real parent's tgid */
	__u32 uid;                   /*  12 */
	__u64 cgroup_id;             /*  16: cgroup v2 id (inode of its directory) */
	__u32 args_size;             /*  24: bytes in args */
	__u32 flags;                 /*  28: EXEC_ARGS_* */
	char comm[16];               /*  32 */
	char filename[FILENAME_LEN]; /*  48: as passed to exec */
	char args[ARGS_LEN];         /* 304: the new mm's argument area, NUL-separated */
};

/* The record is built here (one per CPU: too big for the 512-byte BPF stack), then copied to
 * the ring buffer with only the bytes used. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_event);
} EXEC_SCRATCH SEC(".maps");

#define ARGS_AT 304

/* Runs in the new program's context, after the new mm is installed: the argument area
 * (mm->arg_start..arg_end, what /proc/<pid>/cmdline shows) holds the final argv. */
SEC("tracepoint/sched/sched_process_exec")
int imdsguard_exec(struct sched_process_exec_args *ctx)
{
	__u32 zero = 0;
	struct exec_event *e = bpf_map_lookup_elem(&EXEC_SCRATCH, &zero);
	if (!e)
		return 0;
	e->kind = KIND_EXEC;
	e->tgid = bpf_get_current_pid_tgid() >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->flags = 0;
	e->args_size = 0;
	e->ppid = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	unsigned int off = ctx->filename_loc & 0xFFFF;
	if (bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (void *)ctx + off) < 0)
		e->filename[0] = 0;

	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *parent = 0;
	if (bpf_probe_read_kernel(&parent, sizeof(parent), &task->real_parent) == 0 && parent) {
		int ppid = 0;
		bpf_probe_read_kernel(&ppid, sizeof(ppid), &parent->tgid);
		e->ppid = ppid;
	}
	struct mm_struct *mm = 0;
	unsigned long start = 0, end = 0;
	if (bpf_probe_read_kernel(&mm, sizeof(mm), &task->mm) == 0 && mm) {
		bpf_probe_read_kernel(&start, sizeof(start), &mm->arg_start);
		bpf_probe_read_kernel(&end, sizeof(end), &mm->arg_end);
	}
	unsigned long len = end > start ? end - start : 0;
	if (len > ARGS_LEN) {
		len = ARGS_LEN;
		e->flags |= EXEC_ARGS_TRUNCATED;
	}
	if (len > 0) {
		/* The pages were just written by exec (copy_strings): present, so this cannot fault. */
		if (bpf_probe_read_user(e->args, len, (void *)start) == 0)
			e->args_size = len;
		else
			e->flags |= EXEC_ARGS_UNREADABLE;
	}
	__u64 size = e->args_size;
	if (size > ARGS_LEN)
		size = ARGS_LEN;
	if (bpf_ringbuf_output(&EVENTS, e, ARGS_AT + size, 0) != 0)
		count_drop(0);
	return 0;
}

/* ---- connects: sock:inet_sock_set_state ---------------------------------------------- */
//
// The transition to TCP_SYN_SENT happens inside connect() (tcp_v4_connect / tcp_v6_connect), in
// the connecting task's context, with the destination already set: the destination is checked
// against ENDPOINTS there (filled by user space at load; IPv4 as ::ffff:a.b.c.d), so connects
// elsewhere cost one hash lookup and never reach user space. The source port is chosen after the
// transition, so the process is remembered per socket (CONNECTING) and the event is sent at the
// socket's next transition (SYN_SENT -> ESTABLISHED or CLOSE, usually in softirq context), with
// all four addresses.

struct inet_sock_set_state_args {
	__u64 common;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport; /* host byte order (the tracepoint applies ntohs) */
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

struct addr16 {
	__u8 b[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct addr16);
	__type(value, __u8);
} ENDPOINTS SEC(".maps");

struct proc_info {
	__u32 tgid;
	__u32 pid;
	__u32 uid;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct proc_info);
} CONNECTING SEC(".maps");

/* 72 bytes. */
struct connect_event {
	__u32 kind;     /*  0: KIND_CONNECT */
	__u32 tgid;     /*  4: process id */
	__u32 pid;      /*  8: thread id */
	__u32 uid;      /* 12 */
	__u16 family;   /* 16 */
	__u16 sport;    /* 18 */
	__u16 dport;    /* 20 */
	__u16 pad;      /* 22 */
	__u8 saddr[16]; /* 24 */
	__u8 daddr[16]; /* 40 */
	char comm[16];  /* 56 */
};

SEC("tracepoint/sock/inet_sock_set_state")
int imdsguard_connect(struct inet_sock_set_state_args *ctx)
{
	if (ctx->protocol != IPPROTO_TCP_)
		return 0;
	__u64 sk = (__u64)ctx->skaddr;
	if (ctx->newstate == TCP_SYN_SENT) {
		struct addr16 dst = {};
		if (ctx->family == AF_INET_) {
			dst.b[10] = 0xff;
			dst.b[11] = 0xff;
			__builtin_memcpy(&dst.b[12], ctx->daddr, 4);
		} else if (ctx->family == AF_INET6_) {
			__builtin_memcpy(dst.b, ctx->daddr_v6, 16);
		} else {
			return 0;
		}
		if (!bpf_map_lookup_elem(&ENDPOINTS, &dst))
			return 0;
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
		e->kind = KIND_CONNECT;
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
		bpf_ringbuf_submit(e, 0);
	} else {
		count_drop(1);
	}
	bpf_map_delete_elem(&CONNECTING, &sk);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
