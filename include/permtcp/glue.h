/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C ABI between permtcp's Rust code and its C glue (permtcp_glue.c).
 *
 * Rust declares every function of the first half once, in permtcp/glue.rs (one safe wrapper
 * per C object), and defines every permtcp_rs_* entry point of the second half in
 * permtcp/adapter.rs.  Only scalars, opaque pointers and the PODs below cross the boundary;
 * struct sizes are asserted on both sides.
 */
#ifndef _PERMTCP_GLUE_H
#define _PERMTCP_GLUE_H

#include <linux/types.h>

struct genl_info;
struct netlink_callback;
struct ptcp_net;
struct sk_buff;
struct sock;
struct socket;

/* A generic netlink message under construction; mirrored by `PtcpMsg` in Rust. */
struct ptcp_msg {
	struct sk_buff *skb;
	void *hdr;
	u8 *buf;	/* skb tailroom the Rust writer fills */
	u32 cap;	/* bytes available at buf */
};

/*
 * What the hooks read of a frame once, in C, for Rust (mirrored by `FrameFacts` in
 * permtcp/glue.rs): four calls into C per frame were as many instructions as conntrack's
 * hash lookup.
 */
struct ptcp_frame {
	const u8 *data;		/* skb->data: the network header at the hooks */
	u32 headlen;		/* skb_headlen(): bytes of it in place */
	u32 len;		/* skb->len, from the network header */
	u32 truesize;		/* skb->truesize */
	bool gso;		/* skb_is_gso() */
	bool csum_verified;	/* CHECKSUM_UNNECESSARY or CHECKSUM_PARTIAL */
};

/*
 * The TCP socket-option ABI that the Rust bindings do not include (<uapi/linux/tcp.h>,
 * <net/tcp.h>), exported from the kernel's own definitions as ptcp_tcp_abi; mirrored by
 * `TcpAbi` in Rust.
 */
struct ptcp_tcp_abi {
	int maxseg;		/* TCP_MAXSEG */
	int repair;		/* TCP_REPAIR */
	int repair_queue;	/* TCP_REPAIR_QUEUE */
	int queue_seq;		/* TCP_QUEUE_SEQ */
	int repair_options;	/* TCP_REPAIR_OPTIONS */
	int timestamp;		/* TCP_TIMESTAMP */
	int repair_window;	/* TCP_REPAIR_WINDOW */
	int recv_queue;		/* TCP_RECV_QUEUE */
	int send_queue;		/* TCP_SEND_QUEUE */
	u32 opt_mss;		/* TCPOPT_MSS */
	u32 opt_window;		/* TCPOPT_WINDOW */
	u32 opt_sack_perm;	/* TCPOPT_SACK_PERM */
	u32 opt_timestamp;	/* TCPOPT_TIMESTAMP */
	u32 repair_window_size;	/* sizeof(struct tcp_repair_window) */
	u32 repair_opt_size;	/* sizeof(struct tcp_repair_opt) */
	int repair_off_no_wp;	/* TCP_REPAIR_OFF_NO_WP */
};

extern const struct ptcp_tcp_abi ptcp_tcp_abi;

/* Provided by C (permtcp_glue.c), wrapped by permtcp/glue.rs. */
int ptcp_glue_register(void);
void ptcp_glue_unregister(void);
int ptcp_reply_new(struct genl_info *info, u8 cmd, u32 size, struct ptcp_msg *m);
int ptcp_reply_send(struct genl_info *info, struct ptcp_msg *m, u32 used);
void ptcp_msg_free(struct ptcp_msg *m);
int ptcp_notify_new(struct ptcp_net *pn, u8 cmd, u32 size, struct ptcp_msg *m);
int ptcp_notify_send(struct ptcp_net *pn, struct ptcp_msg *m, u32 used);
u64 ptcp_now_ns(void);
bool ptcp_skb_src_mac(const struct sk_buff *skb, u8 *mac);
int ptcp_dump_begin(struct sk_buff *skb, struct netlink_callback *cb, u8 cmd,
		    struct ptcp_msg *m);
void ptcp_dump_commit(struct ptcp_msg *m, u32 used);
void ptcp_dump_cancel(struct ptcp_msg *m);
u32 ptcp_skb_len(const struct sk_buff *skb);
void ptcp_set_err_msg(struct genl_info *info, const char *msg);
int ptcp_snoop_attach(struct ptcp_net *pn, u32 ifindex);
int ptcp_snoop_detach(struct ptcp_net *pn);
u32 ptcp_snoop_ifindex(const struct ptcp_net *pn);
bool ptcp_net_initial_userns(const struct ptcp_net *pn);
bool ptcp_views_allowed(const struct ptcp_net *pn);
const u8 *ptcp_skb_header(const struct sk_buff *skb, u8 *buf, u32 len);
bool ptcp_skb_copy(const struct sk_buff *skb, u32 offset, u8 *to, u32 len);
bool ptcp_zerocopy_enabled(void);
struct sk_buff *ptcp_skb_hold(struct sk_buff *skb);
struct sk_buff *ptcp_skb_keep(struct sk_buff *skb);
void ptcp_skb_get(struct sk_buff *skb);
void ptcp_skb_put(struct sk_buff *skb);
bool ptcp_skb_otherhost(const struct sk_buff *skb);
bool ptcp_skb_conn_sock(const struct sk_buff *skb, const u8 *local, u16 lport,
			const u8 *remote, u16 rport, bool ipv6);
void ptcp_skb_set_host(struct sk_buff *skb);
/* ptcp_skb_l4_sum() results; Skb::l4_sum in permtcp/glue.rs repeats them. */
#define PTCP_CSUM_COMPUTED 0
#define PTCP_CSUM_DEVICE 1
#define PTCP_CSUM_VERIFIED 2
int ptcp_skb_l4_sum(const struct sk_buff *skb, u32 off, u32 len, bool sw, u16 *sum);
u64 ptcp_now_ms(void);
void ptcp_hook_cost(const struct ptcp_net *pn, u64 *ns, u64 *frames, u64 *kept);
void ptcp_ct_cost(const struct ptcp_net *pn, u64 *ns, u64 *frames);
int ptcp_sock_new(struct ptcp_net *pn, bool ipv6, struct socket **res);
int ptcp_sock_setopt(struct socket *sock, int level, int opt, const void *val, u32 len);
int ptcp_sock_bind(struct socket *sock, const u8 *addr, u16 port, bool ipv6);
int ptcp_sock_connect(struct socket *sock, const u8 *addr, u16 port, bool ipv6);
int ptcp_sock_send(struct socket *sock, const u8 *data, u32 len);
void ptcp_sock_release(struct socket *sock);
void ptcp_sock_set_sndbuf(struct socket *sock, int bytes);
void ptcp_sock_seed_rtt(struct socket *sock, u32 srtt_us, u32 rttvar_us);
int ptcp_sock_shutdown_wr(struct socket *sock);
int ptcp_send_packet(struct ptcp_net *pn, const u8 *dst, const u8 *data, u32 len, bool ipv6);
int ptcp_receive_packet(struct ptcp_net *pn, const u8 *data, u32 len, bool ipv6);
struct sock *ptcp_sock_detach(struct socket *sock);
void ptcp_sock_close_detached(struct sock *sk);
u64 ptcp_sock_cookie(struct sock *sk);
void ptcp_kvfree_rcu(void *p);
u64 __percpu *ptcp_pcpu_alloc(u32 n);
void ptcp_pcpu_free(u64 __percpu *p);
void ptcp_pcpu_inc(u64 __percpu *p, u32 i);
u64 ptcp_pcpu_sum(u64 __percpu *p, u32 i);
void ptcp_park_kick(struct ptcp_net *pn);
u64 ptcp_rst_dropped(const struct ptcp_net *pn);
int ptcp_announce(struct ptcp_net *pn, const u8 *addr, bool ipv6);
struct sock *ptcp_listener(struct ptcp_net *pn, const u8 *vip, u16 port, const u8 *client,
			   u16 cport, bool ipv6, int *family, bool *shared);
void ptcp_listener_put(struct sock *lsk);
u32 ptcp_listener_room(const struct sock *lsk);
u32 ptcp_inject_batch(struct sock *lsk, struct sock **children, u32 n);

/*
 * A taken-over connection born from its listener (ptcp_born()): what the request sock and
 * the handshake's final ACK carry.  Sequence numbers as on the wire; Birth in
 * permtcp/glue.rs repeats the layout.
 */
struct ptcp_birth {
	const u8 *data;		/* the client's bytes the application reads, from rcv_isn + 1 */
	u8 vip[16];		/* IPv4-mapped for IPv4 */
	u8 client[16];
	u32 rcv_isn;		/* the first client byte the application reads, less one */
	u32 snt_isn;		/* the owner's first unacknowledged byte, less one */
	u32 ts_recent;		/* the client's last TSval */
	u32 tsval;		/* the owner's clock, continued: its next TSval */
	u32 rcv_wnd;		/* the owner's window, from rcv_isn + 1 */
	u32 max_window;		/* the client's largest window */
	u32 srtt_us;		/* the mirror's RTT estimate (0: none) */
	u32 rttvar_us;
	u32 len;		/* bytes at data */
	u16 vport;
	u16 cport;
	u16 mss;		/* the client's */
	u16 window;		/* the client's last window field, unscaled */
	u8 snd_wscale;		/* the client's shift */
	u8 rcv_wscale;		/* the owner's shift */
	u8 ipv6;
	u8 wscale_ok;
	u8 sack_ok;
	u8 tstamp_ok;
	u8 fin;			/* the client's FIN follows its bytes */
};
int ptcp_born(struct sock *lsk, const struct ptcp_birth *b, struct sock **child);

/* Work run on another CPU while the caller goes on (ptcp_par_start(), ptcp_par_wait()). */
struct ptcp_par;
struct ptcp_par *ptcp_par_start(void (*fn)(void *arg), void *arg);
void ptcp_par_wait(struct ptcp_par *p);
bool ptcp_born_enabled(void);

/* Planned handoff: a connection's key (local = service end), and where its socket stands. */
struct ptcp_conn_key {
	u8 laddr[16];
	u8 raddr[16];
	u16 lport;
	u16 rport;
};

struct ptcp_conn_seqs {
	u32 snd_nxt;
	u32 snd_una;
	u32 write_seq;
	u32 rcv_nxt;
	u32 isn;		/* from bytes_acked */
	u32 client_isn;		/* from bytes_received */
	u32 snd_wnd;
	u32 rcv_wnd;
	u16 client_mss;
	u8 snd_wscale;
	u8 rcv_wscale;
	bool wscale_ok;
	bool sack_ok;
	bool tstamp_ok;
	bool established;
};

int ptcp_binding_conns(struct ptcp_net *pn, const u8 *addr, u16 port, bool ipv6,
		       struct ptcp_conn_key *out, int max);
struct sock *ptcp_conn_lock(struct ptcp_net *pn, const struct ptcp_conn_key *k, bool ipv6,
			    struct ptcp_conn_seqs *out);
void ptcp_conn_unlock(struct sock *sk);
int ptcp_conn_abort(struct ptcp_net *pn, const struct ptcp_conn_key *k, bool ipv6);

/* Provided by Rust, all in permtcp/adapter.rs. */
void *permtcp_rs_net_init(u64 cookie);
void permtcp_rs_net_exit(void *state);
int permtcp_rs_doit(void *state, struct ptcp_net *pn, u8 cmd, const u8 *payload, u32 len,
		    struct genl_info *info);
int permtcp_rs_dumpit(void *state, u8 cmd, const u8 *payload, u32 len, struct sk_buff *skb,
		      struct netlink_callback *cb, long *pos, bool privileged);
/* What the ingress hook does with a frame (permtcp_rs_frame). */
enum ptcp_frame_verdict {
	PTCP_FRAME_ACCEPT = 0,
	PTCP_FRAME_DROP = 1,		/* a SYN that would reuse a connection a peer serves */
	PTCP_FRAME_KEPT = 2,		/* the mirror keeps the frame itself (ptcp_skb_keep()) */
};
u8 permtcp_rs_frame(void *state, struct sk_buff *skb, const struct ptcp_frame *f, u64 now_ms);
void permtcp_rs_snoop_lost(void *state);
/* What the LOCAL_OUT hook does with a segment this host sends (permtcp_rs_out). */
enum ptcp_out_verdict {
	PTCP_OUT_ACCEPT = 0,
	PTCP_OUT_DROP_RST = 1,		/* a reset of a mirrored connection */
	PTCP_OUT_DROP_FENCED = 2,	/* from this node's bindings, its lease run out */
	PTCP_OUT_DROP_HELD = 3,		/* of a connection held for a planned handoff */
};

u8 permtcp_rs_out(void *state, struct sk_buff *skb, const struct ptcp_frame *f, u64 now_ns);
u8 permtcp_rs_arp_out(void *state, const u8 *arp, u32 len, u64 now_ns);
bool permtcp_rs_park_poll(void *state, struct ptcp_net *pn);

#endif /* _PERMTCP_GLUE_H */
