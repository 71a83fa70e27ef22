// SPDX-License-Identifier: GPL-2.0
/*
 * permtcp C glue: the thin edge between the Rust module and kernel interfaces that
 * Rust-for-Linux does not expose yet.
 *
 * What lives here, and why it is C:
 *  - the generic netlink family and its operations table: struct genl_family has bitfields
 *    and per-op attribute policies are built with C initialisers; the kernel's Rust netlink
 *    abstraction only supports multicast groups;
 *  - the per-netns registration: net_generic() is a static inline;
 *  - the snooping hook: an NF_NETDEV_INGRESS hook on the cluster-facing device, promiscuous
 *    mode, the device reference and a netdevice notifier (no Rust abstraction exists for
 *    netfilter hooks or net devices), and skb accessors (skb_header_pointer, skb_copy_bits,
 *    skb_checksum, pkt_type) and the established-socket lookup that tells whether a frame
 *    for another host's MAC belongs to a connection this node took over;
 *  - reset suppression: NF_INET_LOCAL_OUT hooks (IPv4, IPv6) that drop the local stack's
 *    resets of connections the mirror holds or a takeover is rebuilding; the same hooks and
 *    an NF_ARP_OUT hook carry the fence (segments, ARP and neighbour discovery of a node
 *    whose lease ran out);
 *  - the takeover's socket work: kernel TCP sockets driven through TCP_REPAIR
 *    (sock_create_kern, do_sock_setsockopt, kernel_bind/connect/sendmsg), detaching a
 *    rebuilt sock from its struct socket, the listener lookup and the accept queue (which
 *    has no exported helper), raw packets sent and received, gratuitous ARP / unsolicited
 *    NA, and the parking poll's delayed work;
 *  - message helpers around static inlines (genlmsg_put_reply, genlmsg_reply, genlmsg_end,
 *    skb_tail_pointer, ...) and the extack message pointer;
 *  - the TCP socket-option numbers the Rust bindings lack (ptcp_tcp_abi).
 *
 * No decision is taken here: every request, frame and poll is handed to Rust, which
 * decides.  Rust calls these functions only through permtcp/glue.rs, and C calls Rust only
 * through the permtcp_rs_* entry points of permtcp/adapter.rs; include/permtcp/glue.h lists
 * both halves.
 */

#include <linux/build_bug.h>
#include <linux/cgroup.h>
#include <linux/etherdevice.h>
#include <linux/if_arp.h>
#include <linux/jiffies.h>
#include <linux/memcontrol.h>
#include <linux/sched/mm.h>
#include <linux/security.h>
#include <linux/sock_diag.h>
#include <linux/workqueue.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/netfilter.h>
#include <linux/netfilter_arp.h>
#include <linux/netfilter_ipv4.h>
#include <linux/rtnetlink.h>
#include <net/arp.h>
#include <net/genetlink.h>
#include <net/inet6_hashtables.h>
#include <net/inet_connection_sock.h>
#include <net/inet_hashtables.h>
#include <net/ipv6.h>
#include <net/ndisc.h>
#include <net/net_namespace.h>
#include <net/request_sock.h>
#include <net/netns/generic.h>
#include <net/sock.h>
#include <net/tcp.h>

#include <uapi/linux/permtcp.h>
#include <permtcp/glue.h>

static_assert(sizeof(struct ptcp_msg) == 32);
static_assert(sizeof(struct ptcp_tcp_abi) == 64);
static_assert(sizeof(struct ptcp_frame) == 24);
static_assert(offsetof(struct ptcp_frame, csum_verified) == 21);

const struct ptcp_tcp_abi ptcp_tcp_abi = {
	.maxseg = TCP_MAXSEG,
	.repair = TCP_REPAIR,
	.repair_queue = TCP_REPAIR_QUEUE,
	.queue_seq = TCP_QUEUE_SEQ,
	.repair_options = TCP_REPAIR_OPTIONS,
	.timestamp = TCP_TIMESTAMP,
	.repair_window = TCP_REPAIR_WINDOW,
	.recv_queue = TCP_RECV_QUEUE,
	.send_queue = TCP_SEND_QUEUE,
	.opt_mss = TCPOPT_MSS,
	.opt_window = TCPOPT_WINDOW,
	.opt_sack_perm = TCPOPT_SACK_PERM,
	.opt_timestamp = TCPOPT_TIMESTAMP,
	.repair_window_size = sizeof(struct tcp_repair_window),
	.repair_opt_size = sizeof(struct tcp_repair_opt),
	.repair_off_no_wp = TCP_REPAIR_OFF_NO_WP,
};

static unsigned int ptcp_net_id;

/* The fence's ARP hook needs the ARP netfilter family; without it, ARP is not fenced. */
#ifdef CONFIG_NETFILTER_FAMILY_ARP
#define PTCP_OUT_HOOKS 3
#else
#define PTCP_OUT_HOOKS 2
#endif
/* permtcp.ctprobe: one probe before and one after conntrack, IPv4 PRE_ROUTING and LOCAL_OUT */
#define PTCP_CT_HOOKS 4

/*
 * Per-netns kernel objects the Rust state cannot own: the snooped device and its hook.
 * @dev, @ops and @ifindex change only under RTNL.
 */
struct ptcp_net {
	void *rs;			/* Rust NetState */
	struct net *net;
	struct net_device *dev;		/* snooped device, NULL when not snooping */
	struct mem_cgroup *memcg;	/* charged for the mirror: SNOOP_START's caller's */
	netdevice_tracker dev_tracker;
	struct nf_hook_ops ops;
	u32 ifindex;			/* READ_ONCE() without RTNL */
	/* Time spent in the hook and frames it saw, for benchmarks: per CPU, so that frames
	 * on different CPUs share no cache line for them. */
	struct ptcp_hook_stat __percpu *hook_stat;
	struct delayed_work park;	/* hands parked connections to a new listener */
	/* LOCAL_OUT IPv4 and IPv6 (reset suppression, fence), ARP_OUT (fence) */
	struct nf_hook_ops out_ops[PTCP_OUT_HOOKS];
	atomic64_t rst_dropped;
	/* permtcp.ctprobe: conntrack's hooks timed (benchmarks), registered when ct_probed */
	struct nf_hook_ops ct_ops[PTCP_CT_HOOKS];
	bool ct_probed;
	atomic64_t ct_ns;
	atomic64_t ct_frames;
};

struct ptcp_hook_stat {
	u64 ns;
	u64 frames;
	u64 kept;	/* frames the mirror keeps itself (PTCP_FRAME_KEPT) */
};

static struct ptcp_net *ptcp_pn(const struct net *net)
{
	return net_generic(net, ptcp_net_id);
}

/*
 * Whether the hook reads the clock around its work for hook_ns: two clock reads per frame,
 * for benchmarks (make bench sets it); the frame count is kept either way.
 */
static bool hook_timing;
module_param(hook_timing, bool, 0644);
MODULE_PARM_DESC(hook_timing, "benchmarks: time the snooping hook (stats hook-ns; off: 0, two clock reads per frame saved)");

/*
 * The jiffies clock in milliseconds, as jiffies64_to_msecs() gives it, without the call
 * where HZ divides 1000 (a multiplication the compiler folds: none at HZ=1000), which the
 * hook made on every frame.
 */
static inline u64 ptcp_jiffies_ms(void)
{
#if !(MSEC_PER_SEC % HZ)
	return get_jiffies_64() * (MSEC_PER_SEC / HZ);
#else
	return jiffies64_to_msecs(get_jiffies_64());
#endif
}

/* What Rust reads of @skb, read once (struct ptcp_frame). */
static void ptcp_frame_fill(struct ptcp_frame *f, const struct sk_buff *skb)
{
	f->data = skb->data;
	f->headlen = skb_headlen(skb);
	f->len = skb->len;
	f->truesize = skb->truesize;
	f->gso = skb_is_gso(skb);
	f->csum_verified = skb->ip_summed == CHECKSUM_UNNECESSARY ||
			   skb->ip_summed == CHECKSUM_PARTIAL;
}

/*
 * Runs in softirq for every frame the device receives, for any host.  It only reads, except
 * that Rust may have a frame for another host's MAC delivered here (ptcp_skb_set_host()),
 * have it dropped (a SYN that would reuse a connection a peer serves), or keep a frame for
 * another host's MAC that the IP layer would drop (ptcp_skb_keep()).
 */
static unsigned int ptcp_hook(void *priv, struct sk_buff *skb,
			      const struct nf_hook_state *state)
{
	struct ptcp_net *pn = priv;
	bool timed = READ_ONCE(hook_timing);
	struct mem_cgroup *old;
	struct ptcp_frame f;
	u8 verdict;
	u64 t0 = 0;

	if (skb->protocol != htons(ETH_P_IP) && skb->protocol != htons(ETH_P_IPV6))
		return NF_ACCEPT;
	if (timed)
		t0 = ktime_get_ns();
	/*
	 * What the mirror allocates for this frame (accounted allocations) is charged to the
	 * memory cgroup of whoever started snooping, as the container's own sockets would be.
	 */
	old = set_active_memcg(pn->memcg);
	ptcp_frame_fill(&f, skb);
	verdict = permtcp_rs_frame(pn->rs, skb, &f, ptcp_jiffies_ms());
	set_active_memcg(old);
	if (verdict == PTCP_FRAME_KEPT) {
		/*
		 * The mirror took a reference to the frame itself (ptcp_skb_keep()), which IP
		 * would drop next: the stack gives its own up, and the frame is the mirror's.
		 * What the drop would have released goes now: a sender's socket (the frame of a
		 * local veth peer still carries it; its destructor runs, as at the drop), the
		 * device and any route.
		 */
		skb_orphan(skb);
		skb->dev = NULL;
		skb_dst_drop(skb);
		consume_skb(skb);
		__this_cpu_inc(pn->hook_stat->kept);
	}
	/* Softirq: this CPU's counters are this invocation's alone until it returns. */
	if (timed)
		__this_cpu_add(pn->hook_stat->ns, ktime_get_ns() - t0);
	__this_cpu_inc(pn->hook_stat->frames);
	switch (verdict) {
	case PTCP_FRAME_DROP:
		return NF_DROP;
	case PTCP_FRAME_KEPT:
		return NF_STOLEN;
	default:
		return NF_ACCEPT;
	}
}

/*
 * Time spent in the hook, frames it saw and frames the mirror kept since snooping started:
 * the sum of the CPUs'
 * counters (each read whole; a frame being counted meanwhile may be in one and not yet in
 * the other).
 */
void ptcp_hook_cost(const struct ptcp_net *pn, u64 *ns, u64 *frames, u64 *kept)
{
	int cpu;

	*ns = 0;
	*frames = 0;
	*kept = 0;
	for_each_possible_cpu(cpu) {
		const struct ptcp_hook_stat *st = per_cpu_ptr(pn->hook_stat, cpu);

		*ns += READ_ONCE(st->ns);
		*frames += READ_ONCE(st->frames);
		*kept += READ_ONCE(st->kept);
	}
}

/*
 * The calling task's memory cgroup, with a reference (get_mem_cgroup_from_current(), which
 * is not exported); NULL without memory cgroups.
 */
static struct mem_cgroup *ptcp_current_memcg(void)
{
#ifdef CONFIG_MEMCG
	struct mem_cgroup *memcg;

	if (mem_cgroup_disabled())
		return NULL;
	rcu_read_lock();
	do {
		memcg = mem_cgroup_from_task(current);
	} while (!css_tryget(&memcg->css));	/* an offline cgroup: the task moves on */
	rcu_read_unlock();
	return memcg;
#else
	return NULL;
#endif
}

/* Hooks @ifindex of the namespace; -EBUSY when already snooping, -ENODEV without it. */
int ptcp_snoop_attach(struct ptcp_net *pn, u32 ifindex)
{
	struct net_device *dev;
	int err, i;

	rtnl_lock();
	err = -EBUSY;
	if (pn->dev)
		goto out;
	err = -ENODEV;
	dev = __dev_get_by_index(pn->net, ifindex);
	if (!dev)
		goto out;
	pn->ops = (struct nf_hook_ops) {
		.hook = ptcp_hook,
		.dev = dev,
		.priv = pn,
		.pf = NFPROTO_NETDEV,
		.hooknum = NF_NETDEV_INGRESS,
		.priority = INT_MIN + 1,
	};
	/* The hook is not registered: nothing counts meanwhile. */
	for_each_possible_cpu(i) {
		struct ptcp_hook_stat *st = per_cpu_ptr(pn->hook_stat, i);

		WRITE_ONCE(st->ns, 0);
		WRITE_ONCE(st->frames, 0);
		WRITE_ONCE(st->kept, 0);
	}
	/* The caller's memory cgroup pays for the mirror (NULL without memcg: nobody). */
	pn->memcg = ptcp_current_memcg();
	err = nf_register_net_hook(pn->net, &pn->ops);
	if (err) {
		mem_cgroup_put(pn->memcg);
		pn->memcg = NULL;
		goto out;
	}
	/* Frames for the owner's MAC must reach the hook (virtio-net filters otherwise). */
	err = dev_set_promiscuity(dev, 1);
	if (err) {
		nf_unregister_net_hook(pn->net, &pn->ops);
		synchronize_net();
		mem_cgroup_put(pn->memcg);
		pn->memcg = NULL;
		goto out;
	}
	netdev_hold(dev, &pn->dev_tracker, GFP_KERNEL);
	pn->dev = dev;
	WRITE_ONCE(pn->ifindex, ifindex);
out:
	rtnl_unlock();
	return err;
}

/*
 * RTNL held.  When it returns, no hook invocation is running or will run:
 * nf_unregister_net_hook() does not wait for invocations running on other CPUs (they run
 * under rcu_read_lock()), synchronize_net() does, before the memory cgroup the hook charges
 * is released and before the netns exit frees the state the hook uses.
 */
static void __ptcp_snoop_detach(struct ptcp_net *pn)
{
	ASSERT_RTNL();
	if (!pn->dev)
		return;
	nf_unregister_net_hook(pn->net, &pn->ops);
	synchronize_net();
	mem_cgroup_put(pn->memcg);
	pn->memcg = NULL;
	dev_set_promiscuity(pn->dev, -1);
	netdev_put(pn->dev, &pn->dev_tracker);
	pn->dev = NULL;
	WRITE_ONCE(pn->ifindex, 0);
}

/* Unhooks the device; -ENOENT when not snooping. */
int ptcp_snoop_detach(struct ptcp_net *pn)
{
	int err = 0;

	rtnl_lock();
	if (!pn->dev)
		err = -ENOENT;
	__ptcp_snoop_detach(pn);
	rtnl_unlock();
	return err;
}

/* Whether the namespace belongs to the initial user namespace (the host's admin manages it). */
bool ptcp_net_initial_userns(const struct ptcp_net *pn)
{
	return pn->net->user_ns == &init_user_ns;
}

/*
 * Whether the mirror may hold frames by reference (zero-copy retention) for the calling
 * task: a module cannot charge a held frame's memory to a memory cgroup as it charges its
 * copies (the socket charging functions are not exported), so only where nothing would be
 * charged: a namespace of the initial user namespace and a caller in the root memory
 * cgroup (or none).
 */
bool ptcp_views_allowed(const struct ptcp_net *pn)
{
	struct mem_cgroup *memcg;
	bool root;

	if (!ptcp_net_initial_userns(pn))
		return false;
	memcg = ptcp_current_memcg();
	root = !memcg || mem_cgroup_is_root(memcg);
	mem_cgroup_put(memcg);
	return root;
}

u32 ptcp_snoop_ifindex(const struct ptcp_net *pn)
{
	return READ_ONCE(pn->ifindex);
}

/* A snooped device going away (or leaving the namespace) ends snooping. */
static int ptcp_netdev_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	struct ptcp_net *pn;

	if (event != NETDEV_UNREGISTER)
		return NOTIFY_DONE;
	pn = ptcp_pn(dev_net(dev));
	if (pn->dev == dev) {
		__ptcp_snoop_detach(pn);
		permtcp_rs_snoop_lost(pn->rs);
	}
	return NOTIFY_DONE;
}

static struct notifier_block ptcp_netdev_nb = {
	.notifier_call = ptcp_netdev_event,
};

/* Polls for listeners of parked connections every PTCP_PARK_POLL_MS while any are parked. */
#define PTCP_PARK_POLL_MS 5

static void ptcp_park_work(struct work_struct *work)
{
	struct ptcp_net *pn = container_of(to_delayed_work(work), struct ptcp_net, park);

	if (permtcp_rs_park_poll(pn->rs, pn))
		schedule_delayed_work(&pn->park, msecs_to_jiffies(PTCP_PARK_POLL_MS));
}

/* Runs the poll now (after a takeover parked connections). */
void ptcp_park_kick(struct ptcp_net *pn)
{
	mod_delayed_work(system_wq, &pn->park, 0);
}

/*
 * Locally generated TCP segments.  Resets are dropped for connections that are mirrored here,
 * so that a peer holding the service address never resets a failed owner's connection that
 * is being handed to it (or that another peer serves).  And once the cluster daemon set a
 * lease, every segment from this node's own bindings is dropped while the lease has run out
 * (fencing: a zombie or partitioned owner sends nothing the peers may have taken over).
 */
static unsigned int ptcp_arp_out_hook(void *priv, struct sk_buff *skb,
				      const struct nf_hook_state *state)
{
	struct ptcp_net *pn = priv;
	u8 buf[28];	/* an ARP header and addresses, for IPv4 over Ethernet */
	const u8 *arp = skb_header_pointer(skb, skb_network_offset(skb), sizeof(buf), buf);

	if (!arp)
		return NF_ACCEPT;
	if (permtcp_rs_arp_out(pn->rs, arp, sizeof(buf), ktime_get_ns()) == PTCP_OUT_DROP_FENCED)
		return NF_DROP;	/* counted by Rust */
	return NF_ACCEPT;
}

static unsigned int ptcp_out_hook(void *priv, struct sk_buff *skb,
				  const struct nf_hook_state *state)
{
	struct ptcp_net *pn = priv;
	struct ptcp_frame f;
	u8 proto;

	if (state->pf == NFPROTO_IPV4)
		proto = ip_hdr(skb)->protocol;
	else
		proto = ipv6_hdr(skb)->nexthdr;	/* resets and NDISC carry no extension header */
	if (proto != IPPROTO_TCP && proto != IPPROTO_ICMPV6)
		return NF_ACCEPT;
	ptcp_frame_fill(&f, skb);
	switch (permtcp_rs_out(pn->rs, skb, &f, ktime_get_ns())) {
	case PTCP_OUT_DROP_RST:
		atomic64_inc(&pn->rst_dropped);
		return NF_DROP;
	case PTCP_OUT_DROP_FENCED:
		/* Counted by Rust (STATUS_GET: FENCED). */
		return NF_DROP;
	case PTCP_OUT_DROP_HELD:
		/* A connection held for a planned handoff; counted by Rust. */
		return NF_DROP;
	default:
		return NF_ACCEPT;
	}
}

u64 ptcp_rst_dropped(const struct ptcp_net *pn)
{
	return atomic64_read(&pn->rst_dropped);
}

/*
 * Benchmark aid: with permtcp.ctprobe set when a namespace is created, Linux conntrack's own
 * per-frame work there is timed the way the snooping hook times itself (two clock reads
 * around it), so that `make bench` compares the two on the same frames.  A probe at
 * NF_IP_PRI_CONNTRACK - 1 notes the frame and the time on this CPU; one at
 * NF_IP_PRI_CONNTRACK + 1 adds the time since, when it sees the same frame on the same CPU
 * (a frame conntrack dropped, or whose probes were interleaved with another frame's on this
 * CPU, is not counted).  IPv4 PRE_ROUTING and LOCAL_OUT, where nf_conntrack_in() tracks
 * every frame; the confirmation at the last priority, a flag test for an established
 * connection, is not timed.  Nothing is decided here: these hooks only accept.
 */
struct ptcp_ct_mark {
	const struct sk_buff *skb;
	u64 t0;
};

static DEFINE_PER_CPU(struct ptcp_ct_mark, ptcp_ct_mark);

static bool ctprobe;
module_param(ctprobe, bool, 0444);
MODULE_PARM_DESC(ctprobe, "benchmarks: time conntrack's hooks in namespaces created after loading (stats ct-ns, ct-frames)");

static unsigned int ptcp_ct_before(void *priv, struct sk_buff *skb,
				   const struct nf_hook_state *state)
{
	struct ptcp_ct_mark *m = get_cpu_ptr(&ptcp_ct_mark);

	m->skb = NULL;		/* a softirq here must not complete this frame's mark */
	barrier();
	m->t0 = ktime_get_ns();
	barrier();
	m->skb = skb;
	put_cpu_ptr(&ptcp_ct_mark);
	return NF_ACCEPT;
}

static unsigned int ptcp_ct_after(void *priv, struct sk_buff *skb,
				  const struct nf_hook_state *state)
{
	struct ptcp_net *pn = priv;
	u64 t1 = ktime_get_ns();
	struct ptcp_ct_mark *m = get_cpu_ptr(&ptcp_ct_mark);

	if (m->skb == skb) {
		m->skb = NULL;
		atomic64_add(t1 - m->t0, &pn->ct_ns);
		atomic64_inc(&pn->ct_frames);
	}
	put_cpu_ptr(&ptcp_ct_mark);
	return NF_ACCEPT;
}

/* Registers the conntrack probes when permtcp.ctprobe is set; 0 otherwise. */
static int ptcp_ct_probe_register(struct ptcp_net *pn)
{
	static const u8 hooks[2] = { NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT };
	int i, err;

	if (!READ_ONCE(ctprobe))
		return 0;
	for (i = 0; i < PTCP_CT_HOOKS; i++) {
		bool after = i & 1;

		pn->ct_ops[i] = (struct nf_hook_ops) {
			.hook = after ? ptcp_ct_after : ptcp_ct_before,
			.pf = NFPROTO_IPV4,
			.hooknum = hooks[i / 2],
			.priority = after ? NF_IP_PRI_CONNTRACK + 1 : NF_IP_PRI_CONNTRACK - 1,
			.priv = pn,
		};
	}
	err = nf_register_net_hooks(pn->net, pn->ct_ops, PTCP_CT_HOOKS);
	pn->ct_probed = !err;
	return err;
}

/* Time conntrack spent on the frames the probes timed, and how many (0, 0 without them). */
void ptcp_ct_cost(const struct ptcp_net *pn, u64 *ns, u64 *frames)
{
	*ns = atomic64_read(&pn->ct_ns);
	*frames = atomic64_read(&pn->ct_frames);
}

static int __net_init ptcp_net_init(struct net *net)
{
	struct ptcp_net *pn = ptcp_pn(net);
	int i, err;

	pn->net = net;
	INIT_DELAYED_WORK(&pn->park, ptcp_park_work);
	pn->hook_stat = alloc_percpu(struct ptcp_hook_stat);
	if (!pn->hook_stat)
		return -ENOMEM;
	pn->rs = permtcp_rs_net_init(net->net_cookie);
	if (!pn->rs) {
		free_percpu(pn->hook_stat);
		return -ENOMEM;
	}
	for (i = 0; i < 2; i++) {
		pn->out_ops[i] = (struct nf_hook_ops) {
			.hook = ptcp_out_hook,
			.pf = i ? NFPROTO_IPV6 : NFPROTO_IPV4,
			.hooknum = NF_INET_LOCAL_OUT,
			.priority = NF_IP_PRI_FIRST,
			.priv = pn,
		};
	}
#ifdef CONFIG_NETFILTER_FAMILY_ARP
	pn->out_ops[2] = (struct nf_hook_ops) {
		.hook = ptcp_arp_out_hook,
		.pf = NFPROTO_ARP,
		.hooknum = NF_ARP_OUT,
		.priority = 0,
		.priv = pn,
	};
#endif
	err = nf_register_net_hooks(net, pn->out_ops, PTCP_OUT_HOOKS);
	if (err)
		goto err_rs;
	err = ptcp_ct_probe_register(pn);
	if (err)
		goto err_out;
	return 0;
err_out:
	nf_unregister_net_hooks(net, pn->out_ops, PTCP_OUT_HOOKS);
err_rs:
	permtcp_rs_net_exit(pn->rs);
	pn->rs = NULL;
	free_percpu(pn->hook_stat);
	return err;
}

static void __net_exit ptcp_net_exit_rtnl(struct net *net, struct list_head *dev_kill_list)
{
	__ptcp_snoop_detach(ptcp_pn(net));
}

/*
 * The LOCAL_OUT hooks go in .pre_exit: nf_unregister_net_hook() does not wait for hook
 * invocations running on other CPUs, but the netns core runs synchronize_rcu() between
 * .pre_exit and .exit, after which no invocation can still use the state .exit frees.
 */
static void __net_exit ptcp_net_pre_exit(struct net *net)
{
	struct ptcp_net *pn = ptcp_pn(net);

	nf_unregister_net_hooks(net, pn->out_ops, PTCP_OUT_HOOKS);
	if (pn->ct_probed)
		nf_unregister_net_hooks(net, pn->ct_ops, PTCP_CT_HOOKS);
}

static void __net_exit ptcp_net_exit(struct net *net)
{
	struct ptcp_net *pn = ptcp_pn(net);

	/* The poll re-arms itself: disable it for good before the state goes. */
	disable_delayed_work_sync(&pn->park);
	permtcp_rs_net_exit(pn->rs);
	pn->rs = NULL;
	/* After .pre_exit's grace period and the device's detach: no hook runs. */
	free_percpu(pn->hook_stat);
}

static struct pernet_operations ptcp_net_ops = {
	.init = ptcp_net_init,
	.pre_exit = ptcp_net_pre_exit,
	.exit_rtnl = ptcp_net_exit_rtnl,
	.exit = ptcp_net_exit,
	.id = &ptcp_net_id,
	.size = sizeof(struct ptcp_net),
};

static int ptcp_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct ptcp_net *pn = ptcp_pn(genl_info_net(info));

	return permtcp_rs_doit(pn->rs, pn, info->genlhdr->cmd, genlmsg_data(info->genlhdr),
			       genlmsg_len(info->genlhdr), info);
}

/*
 * Every dump: the command, the request's attributes, a resume position, and whether the
 * caller has CAP_NET_ADMIN over the namespace (others get connections without their
 * sequence numbers).
 */
static int ptcp_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	const struct genlmsghdr *req = nlmsg_data(cb->nlh);

	return permtcp_rs_dumpit(ptcp_pn(sock_net(skb->sk))->rs, req->cmd, genlmsg_data(req),
				 genlmsg_len(req), skb, cb, &cb->args[0],
				 netlink_net_capable(cb->skb, CAP_NET_ADMIN));
}

/*
 * First line of validation, done by genetlink itself: each command accepts only its own
 * top-level attributes (strict parsing, unknown attributes rejected).  Rust parses the nested
 * contents, again strictly.  Commands without a policy get genetlink's reject-all policy.
 */
static const struct nla_policy ptcp_add_policy[PERMTCP_A_DECL + 1] = {
	[PERMTCP_A_DECL] = { .type = NLA_NESTED },
};

static const struct nla_policy ptcp_del_policy[PERMTCP_A_NODE_ID + 1] = {
	[PERMTCP_A_NODE_ID] = { .type = NLA_U32 },
};

/* At most one hour of parking: MAX_PARK_MS in permtcp/logic/ops.rs (a host test compares). */
static const struct netlink_range_validation ptcp_park_range = { .max = 3600000 };

static const struct nla_policy ptcp_takeover_policy[PERMTCP_A_PARK_MS + 1] = {
	[PERMTCP_A_NODE_ID] = { .type = NLA_U32 },
	[PERMTCP_A_PARK_MS] = NLA_POLICY_FULL_RANGE(NLA_U32, &ptcp_park_range),
};

static const struct nla_policy ptcp_directive_policy[PERMTCP_A_FROM_NODE + 1] = {
	[PERMTCP_A_NODE_ID] = { .type = NLA_U32 },
	[PERMTCP_A_OWNER_ADDR] = NLA_POLICY_EXACT_LEN(16),
	[PERMTCP_A_OWNER_PORT] = { .type = NLA_U16 },
	[PERMTCP_A_CLIENT_ADDR] = NLA_POLICY_EXACT_LEN(16),
	[PERMTCP_A_CLIENT_PORT] = { .type = NLA_U16 },
	[PERMTCP_A_PARK_MS] = NLA_POLICY_FULL_RANGE(NLA_U32, &ptcp_park_range),
	[PERMTCP_A_FROM_NODE] = { .type = NLA_U32 },
};

/* RECOVERY: the serving peer, its connections (nested keys, checked by Rust), the flag. */
/* Owner recovery on a peer: the node that is back. */
static const struct nla_policy ptcp_rejoin_policy[PERMTCP_A_NODE_ID + 1] = {
	[PERMTCP_A_NODE_ID] = { .type = NLA_U32 },
};

static const struct nla_policy ptcp_recovery_policy[PERMTCP_A_APPEND + 1] = {
	[PERMTCP_A_NODE_ID] = { .type = NLA_U32 },
	[PERMTCP_A_SERVED] = { .type = NLA_NESTED },
	[PERMTCP_A_APPEND] = { .type = NLA_FLAG },
};

/* Planned handoff: the binding and a limit (HOLD; Rust checks the limit's range, 1 to
 * HANDOFF_BATCH); the peer, the connections (nested, checked by Rust) and the parking time
 * (TAKE; DONE without it). */
static const struct nla_policy ptcp_hold_policy[PERMTCP_A_OWNER_PORT + 1] = {
	[PERMTCP_A_MAX_CONNS] = { .type = NLA_U32 },
	[PERMTCP_A_OWNER_ADDR] = NLA_POLICY_EXACT_LEN(16),
	[PERMTCP_A_OWNER_PORT] = { .type = NLA_U16 },
};

static const struct nla_policy ptcp_handoff_policy[PERMTCP_A_HANDOFF + 1] = {
	[PERMTCP_A_NODE_ID] = { .type = NLA_U32 },
	[PERMTCP_A_PARK_MS] = NLA_POLICY_FULL_RANGE(NLA_U32, &ptcp_park_range),
	[PERMTCP_A_HANDOFF] = { .type = NLA_NESTED },
};

static const struct nla_policy ptcp_done_policy[PERMTCP_A_HANDOFF + 1] = {
	[PERMTCP_A_NODE_ID] = { .type = NLA_U32 },
	[PERMTCP_A_HANDOFF] = { .type = NLA_NESTED },
};

/* Timeout bounds: MIN_TIMEOUT_MS and MAX_SYN_TIMEOUT_MS in permtcp/logic/ops.rs. */
static const struct netlink_range_validation ptcp_syn_timeout_range = {
	.min = 1000, .max = 600000,
};
static const struct netlink_range_validation ptcp_idle_timeout_range = {
	.min = 1000, .max = U32_MAX,
};

static const struct nla_policy ptcp_start_policy[PERMTCP_A_IDLE_TIMEOUT_MS + 1] = {
	[PERMTCP_A_IFINDEX] = { .type = NLA_U32 },
	[PERMTCP_A_MAX_CONNS] = { .type = NLA_U32 },
	[PERMTCP_A_MAX_BYTES] = { .type = NLA_U64 },
	[PERMTCP_A_KEEP_RECEIVED] = { .type = NLA_U32 },
	[PERMTCP_A_MAX_CONN_BYTES] = NLA_POLICY_MIN(NLA_U64, 4096),
	[PERMTCP_A_SYN_TIMEOUT_MS] = NLA_POLICY_FULL_RANGE(NLA_U32, &ptcp_syn_timeout_range),
	[PERMTCP_A_IDLE_TIMEOUT_MS] = NLA_POLICY_FULL_RANGE(NLA_U32, &ptcp_idle_timeout_range),
};

/* At most one minute: MAX_LEASE_MS in permtcp/logic/ops.rs. */
static const struct netlink_range_validation ptcp_lease_range = { .max = 60000 };

static const struct nla_policy ptcp_lease_policy[PERMTCP_A_LEASE_MS + 1] = {
	[PERMTCP_A_LEASE_MS] = NLA_POLICY_FULL_RANGE(NLA_U32, &ptcp_lease_range),
};

static const struct nla_policy ptcp_data_policy[PERMTCP_A_SIDE + 1] = {
	[PERMTCP_A_OWNER_ADDR] = NLA_POLICY_EXACT_LEN(16),
	[PERMTCP_A_OWNER_PORT] = { .type = NLA_U16 },
	[PERMTCP_A_CLIENT_ADDR] = NLA_POLICY_EXACT_LEN(16),
	[PERMTCP_A_CLIENT_PORT] = { .type = NLA_U16 },
	[PERMTCP_A_SIDE] = NLA_POLICY_MAX(NLA_U8, 1),
};

/* TAKEN_GET for one connection (without attributes: every record). */
static const struct nla_policy ptcp_taken_policy[PERMTCP_A_CLIENT_PORT + 1] = {
	[PERMTCP_A_OWNER_ADDR] = NLA_POLICY_EXACT_LEN(16),
	[PERMTCP_A_OWNER_PORT] = { .type = NLA_U16 },
	[PERMTCP_A_CLIENT_ADDR] = NLA_POLICY_EXACT_LEN(16),
	[PERMTCP_A_CLIENT_PORT] = { .type = NLA_U16 },
};

static const struct genl_ops ptcp_ops[] = {
	{
		.cmd = PERMTCP_CMD_DECL_ADD,
		.doit = ptcp_doit,
		.policy = ptcp_add_policy,
		.maxattr = PERMTCP_A_DECL,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PERMTCP_CMD_DECL_DEL,
		.doit = ptcp_doit,
		.policy = ptcp_del_policy,
		.maxattr = PERMTCP_A_NODE_ID,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PERMTCP_CMD_DECL_GET,
		.dumpit = ptcp_dumpit,
	},
	{
		.cmd = PERMTCP_CMD_STATUS_GET,
		.doit = ptcp_doit,
	},
	{
		.cmd = PERMTCP_CMD_SNOOP_START,
		.doit = ptcp_doit,
		.policy = ptcp_start_policy,
		.maxattr = PERMTCP_A_IDLE_TIMEOUT_MS,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PERMTCP_CMD_SNOOP_STOP,
		.doit = ptcp_doit,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PERMTCP_CMD_CONN_GET,
		.dumpit = ptcp_dumpit,
	},
	{
		.cmd = PERMTCP_CMD_STATS_GET,
		.doit = ptcp_doit,
	},
	{
		.cmd = PERMTCP_CMD_TAKEOVER,
		.doit = ptcp_doit,
		.policy = ptcp_takeover_policy,
		.maxattr = PERMTCP_A_PARK_MS,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PERMTCP_CMD_TAKEN_GET,
		.dumpit = ptcp_dumpit,
		.policy = ptcp_taken_policy,
		.maxattr = PERMTCP_A_CLIENT_PORT,
	},
	{
		.cmd = PERMTCP_CMD_DIRECTIVE,
		.doit = ptcp_doit,
		.policy = ptcp_directive_policy,
		.maxattr = PERMTCP_A_FROM_NODE,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PERMTCP_CMD_RECOVERY,
		.doit = ptcp_doit,
		.policy = ptcp_recovery_policy,
		.maxattr = PERMTCP_A_APPEND,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PERMTCP_CMD_HANDOFF_HOLD,
		.doit = ptcp_doit,
		.policy = ptcp_hold_policy,
		.maxattr = PERMTCP_A_OWNER_PORT,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PERMTCP_CMD_HANDOFF_TAKE,
		.doit = ptcp_doit,
		.policy = ptcp_handoff_policy,
		.maxattr = PERMTCP_A_HANDOFF,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PERMTCP_CMD_HANDOFF_DONE,
		.doit = ptcp_doit,
		.policy = ptcp_done_policy,
		.maxattr = PERMTCP_A_HANDOFF,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PERMTCP_CMD_REJOIN,
		.doit = ptcp_doit,
		.policy = ptcp_rejoin_policy,
		.maxattr = PERMTCP_A_NODE_ID,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		/* Connection data is the clients' traffic: privileged. */
		.cmd = PERMTCP_CMD_CONN_DATA_GET,
		.dumpit = ptcp_dumpit,
		.policy = ptcp_data_policy,
		.maxattr = PERMTCP_A_SIDE,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PERMTCP_CMD_LEASE_SET,
		.doit = ptcp_doit,
		.policy = ptcp_lease_policy,
		.maxattr = PERMTCP_A_LEASE_MS,
		.flags = GENL_UNS_ADMIN_PERM,
	},
};

/* Notifications (the *_NTF commands), for the cluster daemon and monitoring. */
static const struct genl_multicast_group ptcp_mcgrps[] = {
	{ .name = PERMTCP_MCGRP_EVENTS, },
};

static struct genl_family ptcp_family = {
	.name = PERMTCP_FAMILY_NAME,
	.version = PERMTCP_FAMILY_VERSION,
	.netnsok = true,
	.parallel_ops = true,
	.module = THIS_MODULE,
	.ops = ptcp_ops,
	.n_ops = ARRAY_SIZE(ptcp_ops),
	.mcgrps = ptcp_mcgrps,
	.n_mcgrps = ARRAY_SIZE(ptcp_mcgrps),
	/* resv_start_op = 0: every command gets strict header and attribute checks. */
};

int ptcp_glue_register(void)
{
	int err = register_pernet_subsys(&ptcp_net_ops);

	if (err)
		return err;
	err = register_netdevice_notifier(&ptcp_netdev_nb);
	if (err)
		goto err_pernet;
	err = genl_register_family(&ptcp_family);
	if (err)
		goto err_notifier;
	return 0;

err_notifier:
	unregister_netdevice_notifier(&ptcp_netdev_nb);
err_pernet:
	unregister_pernet_subsys(&ptcp_net_ops);
	return err;
}

void ptcp_glue_unregister(void)
{
	/* No handler runs after this returns. */
	genl_unregister_family(&ptcp_family);
	unregister_netdevice_notifier(&ptcp_netdev_nb);
	/* Unhooks every namespace's device (exit_rtnl), then frees its state (exit). */
	unregister_pernet_subsys(&ptcp_net_ops);
}

static void ptcp_msg_fill(struct ptcp_msg *m)
{
	m->buf = skb_tail_pointer(m->skb);
	m->cap = skb_tailroom(m->skb);
}

/* Starts a unicast reply to the request in @info; on success the caller owns m->skb. */
int ptcp_reply_new(struct genl_info *info, u8 cmd, u32 size, struct ptcp_msg *m)
{
	m->skb = genlmsg_new(size, GFP_KERNEL);
	if (!m->skb)
		return -ENOMEM;
	m->hdr = genlmsg_put_reply(m->skb, info, &ptcp_family, 0, cmd);
	if (!m->hdr) {
		nlmsg_free(m->skb);
		return -EMSGSIZE;
	}
	ptcp_msg_fill(m);
	return 0;
}

/* Completes @used bytes of attributes and sends the reply; consumes m->skb. */
int ptcp_reply_send(struct genl_info *info, struct ptcp_msg *m, u32 used)
{
	if (WARN_ON_ONCE(used > m->cap)) {
		nlmsg_free(m->skb);
		return -EMSGSIZE;
	}
	skb_put(m->skb, used);
	genlmsg_end(m->skb, m->hdr);
	return genlmsg_reply(m->skb, info);
}

void ptcp_msg_free(struct ptcp_msg *m)
{
	nlmsg_free(m->skb);
}

/*
 * Starts a notification of command @cmd for the events group of @pn's namespace; -ENOENT
 * when nobody listens (nothing is allocated then).  On success the caller owns m->skb.
 */
int ptcp_notify_new(struct ptcp_net *pn, u8 cmd, u32 size, struct ptcp_msg *m)
{
	if (!genl_has_listeners(&ptcp_family, pn->net, 0))
		return -ENOENT;
	m->skb = genlmsg_new(size, GFP_KERNEL);
	if (!m->skb)
		return -ENOMEM;
	m->hdr = genlmsg_put(m->skb, 0, 0, &ptcp_family, 0, cmd);
	if (!m->hdr) {
		nlmsg_free(m->skb);
		return -EMSGSIZE;
	}
	ptcp_msg_fill(m);
	return 0;
}

/* Completes @used bytes of attributes and multicasts the notification; consumes m->skb. */
int ptcp_notify_send(struct ptcp_net *pn, struct ptcp_msg *m, u32 used)
{
	if (WARN_ON_ONCE(used > m->cap)) {
		nlmsg_free(m->skb);
		return -EMSGSIZE;
	}
	skb_put(m->skb, used);
	genlmsg_end(m->skb, m->hdr);
	return genlmsg_multicast_netns(&ptcp_family, pn->net, m->skb, 0, 0, GFP_KERNEL);
}

/* Opens one multipart message of a dump in @skb (owned by netlink). */
int ptcp_dump_begin(struct sk_buff *skb, struct netlink_callback *cb, u8 cmd,
		    struct ptcp_msg *m)
{
	m->skb = skb;
	m->hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			     &ptcp_family, NLM_F_MULTI, cmd);
	if (!m->hdr)
		return -EMSGSIZE;
	ptcp_msg_fill(m);
	return 0;
}

void ptcp_dump_commit(struct ptcp_msg *m, u32 used)
{
	if (WARN_ON_ONCE(used > m->cap)) {
		genlmsg_cancel(m->skb, m->hdr);
		return;
	}
	skb_put(m->skb, used);
	genlmsg_end(m->skb, m->hdr);
}

void ptcp_dump_cancel(struct ptcp_msg *m)
{
	genlmsg_cancel(m->skb, m->hdr);
}

u32 ptcp_skb_len(const struct sk_buff *skb)
{
	return skb->len;
}

/* The first @len bytes from the network header: in the skb when linear, else copied to @buf. */
const u8 *ptcp_skb_header(const struct sk_buff *skb, u8 *buf, u32 len)
{
	return skb_header_pointer(skb, 0, len, buf);
}

bool ptcp_skb_copy(const struct sk_buff *skb, u32 offset, u8 *to, u32 len)
{
	return skb_copy_bits(skb, offset, to, len) == 0;
}

/*
 * Zero-copy retention: the mirror keeps a private clone of a large frame (sharing its data:
 * no byte copied) while views of its payload are retained, instead of copying the payload.
 * Where ptcp_views_allowed() and while permtcp.zerocopy is on.
 */
static bool zerocopy = true;
module_param(zerocopy, bool, 0644);
MODULE_PARM_DESC(zerocopy, "retain large frames' payload by reference instead of copying it (initial user namespace, root memory cgroup)");

bool ptcp_zerocopy_enabled(void)
{
	return READ_ONCE(zerocopy);
}

/*
 * A clone of @skb (a frame the ingress hook is processing) for the mirror to keep: softirq
 * context, so atomically; NULL when memory is short.  It shares the frame's data, which the
 * stack never writes in place once shared (a writer un-shares it first, as for any tap), and
 * keeps no device pointer: the device may go while the mirror still holds the clone.
 */
struct sk_buff *ptcp_skb_hold(struct sk_buff *skb)
{
	struct sk_buff *c = skb_clone(skb, GFP_ATOMIC | __GFP_NOWARN);

	if (c)
		c->dev = NULL;
	return c;
}

/*
 * The frame the ingress hook is processing, for the mirror to keep instead of a clone of it
 * (no sk_buff allocated and freed per frame), where nothing else would have it: a frame for
 * another host's MAC, which ip_rcv() and ipv6_rcv() drop first thing.  It must be the
 * stack's alone (not shared, not from the pfmemalloc reserves, and a socket it carries has
 * a destructor for skb_orphan() to run), and
 * nothing after this hook may want it: no other netfilter ingress hook on the device, no
 * rx_handler (bridge, bond, macvlan...), no VLAN tag for a VLAN device, and no packet
 * socket bound to the device or to the namespace for one protocol.  Packet taps for every
 * protocol (ETH_P_ALL: tcpdump) saw it before the ingress hooks.  NULL where it may not be
 * kept; else the frame with one more reference, which the hook's PTCP_FRAME_KEPT verdict
 * turns into the frame itself (NF_STOLEN after dropping the stack's reference).  Called
 * from the ingress hook only, under its RCU read lock.
 */
struct sk_buff *ptcp_skb_keep(struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	const struct nf_hook_entries *e;

	if (skb->pkt_type != PACKET_OTHERHOST || skb_shared(skb) || skb_pfmemalloc(skb) ||
	    (skb->sk && !skb->destructor) || skb_vlan_tag_present(skb) ||
	    rcu_access_pointer(dev->rx_handler) || !list_empty(&dev->ptype_specific) ||
	    !list_empty(&dev_net(dev)->ptype_specific))
		return NULL;
	e = rcu_dereference(dev->nf_hooks_ingress);
	if (!e || e->num_hook_entries != 1)
		return NULL;
	return skb_get(skb);
}

/* One more reference to a held frame (a view of another part of its payload). */
void ptcp_skb_get(struct sk_buff *skb)
{
	skb_get(skb);
}

/*
 * Drops a reference to a held frame (a clone, or a frame the mirror kept): the mirror
 * released it, not the network dropped it.
 * Chunks are released under a shard's IRQ-off lock: the last reference is then freed from
 * the softnet completion queue (dev_consume_skb_any()), not here.
 */
void ptcp_skb_put(struct sk_buff *skb)
{
	dev_consume_skb_any(skb);
}

/*
 * The one's-complement sum of exactly [@off, @off + @len) of the frame, for the TCP checksum
 * Rust verifies: @len comes from the IP length fields, so the Ethernet padding of a short
 * frame (which skb->len still includes at the ingress hook: ip_rcv() trims it later with
 * pskb_trim_rcsum()) is left out.  The skb is only read.
 *
 * Returns PTCP_CSUM_VERIFIED when the device or a local sender vouches for the checksum
 * (CHECKSUM_UNNECESSARY; CHECKSUM_PARTIAL cannot be checked), PTCP_CSUM_DEVICE when @sum was
 * derived from the device's CHECKSUM_COMPLETE sum (the caller retries with @sw if it does not
 * verify, as __skb_checksum_complete() would), PTCP_CSUM_COMPUTED when it was computed from
 * the bytes, and a negative value when the range is not in the frame.  @sum is the folded
 * sum as a number (network order interpreted).
 */
int ptcp_skb_l4_sum(const struct sk_buff *skb, u32 off, u32 len, bool sw, u16 *sum)
{
	__wsum csum;
	int ret;

	if (off > skb->len || len > skb->len - off)
		return -EINVAL;
	if (skb->ip_summed == CHECKSUM_UNNECESSARY || skb->ip_summed == CHECKSUM_PARTIAL)
		return PTCP_CSUM_VERIFIED;
	if (skb->ip_summed == CHECKSUM_COMPLETE && !sw) {
		/* skb->csum covers [0, skb->len): take out the IP header and the padding. */
		csum = csum_sub(skb->csum, skb_checksum(skb, 0, off, 0));
		if (off + len < skb->len)
			csum = csum_block_sub(csum, skb_checksum(skb, off + len,
							      skb->len - off - len, 0),
					      off + len);
		ret = PTCP_CSUM_DEVICE;
	} else {
		csum = skb_checksum(skb, off, len, 0);
		ret = PTCP_CSUM_COMPUTED;
	}
	*sum = ntohs((__force __be16)~csum_fold(csum));
	return ret;
}

u64 ptcp_now_ms(void)
{
	return ptcp_jiffies_ms();
}

/* The monotonic clock, read from the clocksource: exact right after a VM resumes. */
u64 ptcp_now_ns(void)
{
	return ktime_get_ns();
}

/* The Ethernet source address of a received frame; false when it has none. */
bool ptcp_skb_src_mac(const struct sk_buff *skb, u8 *mac)
{
	if (!skb_mac_header_was_set(skb) || skb_mac_header_len(skb) < ETH_HLEN ||
	    !skb->dev || skb->dev->type != ARPHRD_ETHER)
		return false;
	ether_addr_copy(mac, eth_hdr(skb)->h_source);
	return true;
}

/* Whether the frame was addressed to another host's MAC address (the device is promiscuous). */
bool ptcp_skb_otherhost(const struct sk_buff *skb)
{
	return skb->pkt_type == PACKET_OTHERHOST;
}

/*
 * Whether a TCP socket of the frame's namespace (established, or in TIME-WAIT) holds the
 * connection @local:@lport <-> @remote:@rport (16-byte addresses, IPv4-mapped for IPv4).
 * Called from the ingress hook.
 */
/*
 * The established (or TIME-WAIT) socket of connection @local:@lport <-> @remote:@rport
 * (16-byte addresses, IPv4-mapped for IPv4) in @net, with a reference (sock_gen_put()), or
 * NULL.
 */
static struct sock *ptcp_conn_lookup(struct net *net, const u8 *local, u16 lport,
				     const u8 *remote, u16 rport, bool ipv6, int dif)
{
	struct sock *sk;

	rcu_read_lock();
	if (ipv6)
		sk = __inet6_lookup_established(net, (const struct in6_addr *)remote, htons(rport),
						(const struct in6_addr *)local, lport, dif, 0);
	else
		sk = __inet_lookup_established(net, *(const __be32 *)(remote + 12), htons(rport),
					       *(const __be32 *)(local + 12), lport, dif, 0);
	rcu_read_unlock();
	return sk;
}

bool ptcp_skb_conn_sock(const struct sk_buff *skb, const u8 *local, u16 lport,
			const u8 *remote, u16 rport, bool ipv6)
{
	struct sock *sk = ptcp_conn_lookup(dev_net(skb->dev), local, lport, remote, rport, ipv6,
					   skb->dev->ifindex);

	if (!sk)
		return false;
	sock_gen_put(sk);
	return true;
}

/*
 * Planned handoff: up to @max established connections of binding @addr:@port (16 bytes,
 * IPv4-mapped for IPv4) in the namespace, into @out; returns how many.  A walk of the
 * established hash under RCU, as inet_diag's dump makes it: a socket moving between chains
 * meanwhile may be missed or seen twice (Rust drops duplicates; a missed one is held by the
 * next request).
 */
int ptcp_binding_conns(struct ptcp_net *pn, const u8 *addr, u16 port, bool ipv6,
		       struct ptcp_conn_key *out, int max)
{
	struct inet_hashinfo *h = pn->net->ipv4.tcp_death_row.hashinfo;
	unsigned int i;
	int n = 0;

	for (i = 0; i <= h->ehash_mask && n < max; i++) {
		struct inet_ehash_bucket *b = &h->ehash[i];
		struct hlist_nulls_node *node;
		struct sock *sk;

		if (hlist_nulls_empty(&b->chain))
			continue;
		rcu_read_lock();
		sk_nulls_for_each_rcu(sk, node, &b->chain) {
			struct ptcp_conn_key *k = &out[n];

			if (!net_eq(sock_net(sk), pn->net) || sk->sk_num != port ||
			    READ_ONCE(sk->sk_state) != TCP_ESTABLISHED)
				continue;
			if (ipv6) {
				if (sk->sk_family != AF_INET6 ||
				    !ipv6_addr_equal(&sk->sk_v6_rcv_saddr,
						     (const struct in6_addr *)addr) ||
				    ipv6_addr_v4mapped(&sk->sk_v6_daddr))
					continue;
				memcpy(k->raddr, &sk->sk_v6_daddr, 16);
			} else {
				if (sk->sk_rcv_saddr != *(const __be32 *)(addr + 12) ||
				    (sk->sk_family == AF_INET6 &&
				     !ipv6_addr_v4mapped(&sk->sk_v6_daddr)))
					continue;
				memset(k->raddr, 0, 10);
				memset(k->raddr + 10, 0xff, 2);
				memcpy(k->raddr + 12, &sk->sk_daddr, 4);
			}
			memcpy(k->laddr, addr, 16);
			k->lport = port;
			k->rport = ntohs(sk->sk_dport);
			if (++n == max)
				break;
		}
		rcu_read_unlock();
	}
	return n;
}

/*
 * Planned handoff: the socket of a connection, locked (lock_sock(): its application can
 * neither write nor read meanwhile, and its timers and incoming segments wait), with where
 * it stands in @out; NULL when there is no full socket of it.  ptcp_conn_unlock() ends it.
 */
struct sock *ptcp_conn_lock(struct ptcp_net *pn, const struct ptcp_conn_key *k, bool ipv6,
			    struct ptcp_conn_seqs *out)
{
	struct sock *sk = ptcp_conn_lookup(pn->net, k->laddr, k->lport, k->raddr, k->rport,
					   ipv6, 0);
	struct tcp_sock *tp;

	if (!sk)
		return NULL;
	if (!sk_fullsock(sk)) {
		sock_gen_put(sk);
		return NULL;
	}
	lock_sock(sk);
	tp = tcp_sk(sk);
	out->snd_nxt = tp->snd_nxt;
	out->snd_una = tp->snd_una;
	out->write_seq = tp->write_seq;
	out->rcv_nxt = tp->rcv_nxt;
	/* Neither counts the SYN: one before the first byte. */
	out->isn = tp->snd_una - (u32)tp->bytes_acked - 1;
	out->client_isn = tp->rcv_nxt - (u32)tp->bytes_received - 1;
	out->snd_wnd = tp->snd_wnd;
	out->rcv_wnd = tp->rcv_wnd;
	out->client_mss = tp->rx_opt.mss_clamp;
	out->snd_wscale = tp->rx_opt.snd_wscale;
	out->rcv_wscale = tp->rx_opt.rcv_wscale;
	out->wscale_ok = tp->rx_opt.wscale_ok;
	out->sack_ok = tcp_is_sack(tp);
	out->tstamp_ok = tp->rx_opt.tstamp_ok;
	out->established = sk->sk_state == TCP_ESTABLISHED;
	return sk;
}

void ptcp_conn_unlock(struct sock *sk)
{
	release_sock(sk);
	sock_put(sk);
}

/*
 * Planned handoff, once the peer took the connection: aborts its socket here (the
 * application sees ECONNABORTED; the reset tcp_abort() sends is dropped by the LOCAL_OUT
 * hook, as the connection is still held).  -ENOENT when there is no such socket.
 */
int ptcp_conn_abort(struct ptcp_net *pn, const struct ptcp_conn_key *k, bool ipv6)
{
	struct sock *sk = ptcp_conn_lookup(pn->net, k->laddr, k->lport, k->raddr, k->rport,
					   ipv6, 0);
	int err;

	if (!sk)
		return -ENOENT;
	if (!sk_fullsock(sk)) {
		sock_gen_put(sk);
		return -ENOENT;
	}
	err = tcp_abort(sk, ECONNABORTED);
	sock_put(sk);
	return err;
}

/*
 * Hands the frame to this host's stack although it was addressed to another host's MAC:
 * the frame of a connection this node took over while another node answers ARP for its
 * address.  Only the ingress hook calls it, before the IP layer looks at pkt_type.
 */
void ptcp_skb_set_host(struct sk_buff *skb)
{
	skb->pkt_type = PACKET_HOST;
}

/* @msg must be a static string: netlink reads it after the handler returns. */
void ptcp_set_err_msg(struct genl_info *info, const char *msg)
{
	if (info->extack)
		info->extack->_msg = msg;
}

/*
 * Takeover: a snooped connection rebuilt as a real TCP socket with TCP_REPAIR (the stable
 * interface CRIU uses), then handed to the application's listener so that a plain accept()
 * returns it.  Rust decides the values and the order; these helpers only reach the socket
 * API and the accept queue, which has no exported helper.
 */

#ifdef CONFIG_MEMCG
#define PTCP_ROOT_MEMCG root_mem_cgroup
#else
#define PTCP_ROOT_MEMCG NULL
#endif

/*
 * A kernel TCP socket in repair mode, in the namespace of @pn, charged to no memory cgroup
 * yet, like a child a listener creates in softirq: accept() charges the sock and its memory
 * to the accepting task's cgroup (__inet_accept(): sk_memcg, kmem_cache_charge()).  The
 * caller (permctl, permtcpd) pays for nothing it hands over: the root memory cgroup as the
 * active one leaves the sock object uncharged, and the socket's memory cgroup, taken from
 * the caller's task at creation, is dropped before anything is queued.
 */
int ptcp_sock_new(struct ptcp_net *pn, bool ipv6, struct socket **res)
{
	struct mem_cgroup *old;
	int err;

	old = set_active_memcg(PTCP_ROOT_MEMCG);
	err = sock_create_kern(pn->net, ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM, IPPROTO_TCP, res);
	set_active_memcg(old);
#ifdef CONFIG_MEMCG
	if (!err && (*res)->sk->sk_memcg) {
		mem_cgroup_put((*res)->sk->sk_memcg);
		(*res)->sk->sk_memcg = NULL;
	}
#endif
	return err;
}

int ptcp_sock_setopt(struct socket *sock, int level, int opt, const void *val, u32 len)
{
	return do_sock_setsockopt(sock, false, level, opt, KERNEL_SOCKPTR((void *)val), len);
}

static int ptcp_sockaddr(struct sockaddr_storage *ss, const u8 *addr, u16 port, bool ipv6)
{
	memset(ss, 0, sizeof(*ss));
	if (ipv6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, addr, 16);
		return sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, addr + 12, 4);	/* IPv4-mapped */
		return sizeof(*s4);
	}
}

int ptcp_sock_bind(struct socket *sock, const u8 *addr, u16 port, bool ipv6)
{
	struct sockaddr_storage ss;
	int len = ptcp_sockaddr(&ss, addr, port, ipv6);

	return kernel_bind(sock, (struct sockaddr_unsized *)&ss, len);
}

int ptcp_sock_connect(struct socket *sock, const u8 *addr, u16 port, bool ipv6)
{
	struct sockaddr_storage ss;
	int len = ptcp_sockaddr(&ss, addr, port, ipv6);

	return kernel_connect(sock, (struct sockaddr_unsized *)&ss, len, 0);
}

/* Queues @len bytes: into the repair queue selected by TCP_REPAIR_QUEUE, or sends them. */
int ptcp_sock_send(struct socket *sock, const u8 *data, u32 len)
{
	struct msghdr msg = { .msg_flags = MSG_DONTWAIT };
	struct kvec iov = { .iov_base = (void *)data, .iov_len = len };

	return kernel_sendmsg(sock, &msg, &iov, 1, len);
}

/*
 * The send buffer of a rebuilt socket, locked at @bytes as SO_SNDBUFFORCE would set it, but
 * without its capable(CAP_NET_ADMIN) check, which looks at the initial namespace: the module
 * itself sizes its own socket, for a takeover a container's admin may run.
 */
void ptcp_sock_set_sndbuf(struct socket *sock, int bytes)
{
	struct sock *sk = sock->sk;

	lock_sock(sk);
	bytes = min_t(int, max(bytes, 0), INT_MAX / 2);
	sk->sk_userlocks |= SOCK_SNDBUF_LOCK;
	WRITE_ONCE(sk->sk_sndbuf, max_t(int, bytes * 2, SOCK_MIN_SNDBUF));
	sk->sk_write_space(sk);
	release_sock(sk);
}

/*
 * Seeds a rebuilt socket's RTT estimator with the mirror's estimate (RFC 6298 SRTT and
 * RTTVAR, microseconds) as tcp_rtt_estimator() takes a first sample, and sets the
 * retransmission timeout from it as tcp_set_rto() does: without it the socket keeps the 3 s
 * tcp_init_metrics() gives a socket without a sample.  Called after the repair connect
 * (which ran tcp_init_metrics()), before anything is sent.
 */
static void __ptcp_sk_seed_rtt(struct sock *sk, u32 srtt_us, u32 rttvar_us)
{
	struct tcp_sock *tp = tcp_sk(sk);
	u32 max_us = jiffies_to_usecs(TCP_RTO_MAX);

	WRITE_ONCE(tp->srtt_us, clamp(srtt_us, 1U, max_us) << 3);
	tp->mdev_us = min(rttvar_us, max_us) << 2;	/* the kernel keeps 4 x RTTVAR */
	tp->rttvar_us = max(tp->mdev_us, tcp_rto_min_us(sk));
	tp->mdev_max_us = tp->rttvar_us;
	tp->rtt_seq = tp->snd_nxt;
	inet_csk(sk)->icsk_rto = __tcp_set_rto(tp);
	tcp_bound_rto(sk);
}

/* __ptcp_sk_seed_rtt() with the socket owned (process context). */
static void ptcp_sk_seed_rtt(struct sock *sk, u32 srtt_us, u32 rttvar_us)
{
	lock_sock(sk);
	__ptcp_sk_seed_rtt(sk, srtt_us, rttvar_us);
	release_sock(sk);
}

void ptcp_sock_seed_rtt(struct socket *sock, u32 srtt_us, u32 rttvar_us)
{
	ptcp_sk_seed_rtt(sock->sk, srtt_us, rttvar_us);
}

void ptcp_sock_release(struct socket *sock)
{
	sock_release(sock);
}

int ptcp_sock_shutdown_wr(struct socket *sock)
{
	return kernel_sock_shutdown(sock, SHUT_WR);
}

/*
 * Sends a complete IP packet (its own header included) to @dst (16 bytes, IPv4-mapped for
 * IPv4) through a raw socket: a reset for a connection no peer can take over.
 */
int ptcp_send_packet(struct ptcp_net *pn, const u8 *dst, const u8 *data, u32 len, bool ipv6)
{
	struct kvec iov = { .iov_base = (void *)data, .iov_len = len };
	struct sockaddr_storage ss;
	struct msghdr msg = {};
	struct socket *sock;
	int err;

	err = sock_create_kern(pn->net, ipv6 ? AF_INET6 : AF_INET, SOCK_RAW, IPPROTO_RAW, &sock);
	if (err)
		return err;
	msg.msg_name = &ss;
	msg.msg_namelen = ptcp_sockaddr(&ss, dst, 0, ipv6);
	err = kernel_sendmsg(sock, &msg, &iov, 1, len);
	sock_release(sock);
	return err < 0 ? err : 0;
}

/*
 * Feeds a complete IP packet to the stack as if the snooped device had received it for this
 * host: a rebuilt half-closed connection's FIN from its client.  The packet's checksums are
 * correct.  -ENODEV when not snooping.
 */
int ptcp_receive_packet(struct ptcp_net *pn, const u8 *data, u32 len, bool ipv6)
{
	struct net_device *dev;
	struct sk_buff *skb;
	int err = 0;

	skb = alloc_skb(LL_MAX_HEADER + len, GFP_KERNEL);
	if (!skb)
		return -ENOMEM;
	skb_reserve(skb, LL_MAX_HEADER);
	skb_put_data(skb, data, len);
	skb->protocol = htons(ipv6 ? ETH_P_IPV6 : ETH_P_IP);
	skb->pkt_type = PACKET_HOST;
	skb_reset_mac_header(skb);
	skb_reset_network_header(skb);
	rtnl_lock();
	dev = pn->dev;
	if (dev) {
		skb->dev = dev;
		netif_rx(skb);
	} else {
		kfree_skb(skb);
		err = -ENODEV;
	}
	rtnl_unlock();
	return err;
}

/*
 * Detaches the socket's sock from its struct socket so that it looks like a child created
 * by a listener (no socket, no wait queue, not dead) and owns its reference.
 */
struct sock *ptcp_sock_detach(struct socket *sock)
{
	struct sock *sk = sock->sk;

	lock_sock(sk);
	write_lock_bh(&sk->sk_callback_lock);
	sk_set_socket(sk, NULL);
	RCU_INIT_POINTER(sk->sk_wq, NULL);	/* not sock_orphan(): that marks it dead */
	write_unlock_bh(&sk->sk_callback_lock);
	if (!sk->sk_net_refcnt)
		sk_net_refcnt_upgrade(sk);
	sk->sk_kern_sock = 0;			/* the application's socket from now on */
	release_sock(sk);
	sock->sk = NULL;
	sock_release(sock);			/* inet_release() sees no sk: nothing to do */
	return sk;
}

/*
 * Appends @child to the accept queue of the listener for @vip:@port, as
 * inet_csk_reqsk_queue_add() would, and wakes accept().  -EAGAIN without a listener (or with
 * a full backlog): the caller keeps the child and retries.  On success the queue owns the
 * child's reference.
 */
/* The listener a connection @client:@cport -> @vip:@port would reach, with a reference. */
static struct sock *ptcp_listener_get(struct ptcp_net *pn, const u8 *vip, u16 port,
				      const u8 *client, u16 cport, bool ipv6)
{
	struct sock *lsk;

	rcu_read_lock();
	if (ipv6)
		lsk = inet6_lookup_listener(pn->net, NULL, 0, (const struct in6_addr *)client,
					    htons(cport), (const struct in6_addr *)vip, port, 0, 0);
	else	/* also finds dual-stack IPv6 listeners */
		lsk = __inet_lookup_listener(pn->net, NULL, 0, *(const __be32 *)(client + 12),
					     htons(cport), *(const __be32 *)(vip + 12), port, 0, 0);
	if (lsk && !refcount_inc_not_zero(&lsk->sk_refcnt))
		lsk = NULL;
	rcu_read_unlock();
	return lsk;
}

/*
 * The listener a connection @client:@cport -> @vip:@port would reach, with a reference the
 * caller drops with ptcp_listener_put(); NULL without one.  *@family is its address family
 * (a dual-stack IPv6 listener needs an IPv6 socket with IPv4-mapped addresses, as the kernel
 * itself creates for it); *@shared tells a reuseport group, where the kernel picks a
 * listener per client: another connection of the binding may reach another listener.
 */
struct sock *ptcp_listener(struct ptcp_net *pn, const u8 *vip, u16 port, const u8 *client,
			   u16 cport, bool ipv6, int *family, bool *shared)
{
	struct sock *lsk = ptcp_listener_get(pn, vip, port, client, cport, ipv6);

	if (lsk) {
		*family = lsk->sk_family;
		*shared = rcu_access_pointer(lsk->sk_reuseport_cb) != NULL;
	}
	return lsk;
}

void ptcp_listener_put(struct sock *lsk)
{
	sock_put(lsk);
}

/*
 * Makes @sk a child of @lsk the way sk_clone_lock() makes one: the listener's socket cgroup
 * (the v2 cgroup and the v1 classid and priority: cgroup_sk_clone()) and its LSM label
 * (security_sk_clone()), instead of those of the task that ran the takeover.  The old
 * cgroup is freed after an RCU grace period, so a concurrent reader of the pointer (a
 * socket match on an incoming segment) sees either.
 */
static void ptcp_sk_adopt(struct sock *sk, const struct sock *lsk)
{
#ifdef CONFIG_SOCK_CGROUP_DATA
	struct cgroup *old = sock_cgroup_ptr(&sk->sk_cgrp_data);
	struct cgroup *cg = sock_cgroup_ptr((struct sock_cgroup_data *)&lsk->sk_cgrp_data);

	cgroup_get(cg);
	cgroup_bpf_get(cg);
	sk->sk_cgrp_data = lsk->sk_cgrp_data;
	cgroup_bpf_put(old);
	cgroup_put(old);
#endif
	security_sk_clone(lsk, sk);
}

/*
 * Whether @child can sit under a socket of @lsk's family.  accept() grafts the child onto a
 * socket of the listener's family.  An IPv4 sock cannot sit under an IPv6 socket
 * (inet6_release() would read its missing IPv6 part); an IPv6 sock with IPv4-mapped
 * addresses is what the kernel itself makes for a dual-stack listener, and it also works
 * under an IPv4 listener: the IPv4 socket ops only reach the sock's own proto and its inet
 * fields, which a mapped connect() set.
 */
static bool ptcp_family_fits(const struct sock *lsk, const struct sock *child)
{
	return lsk->sk_family == child->sk_family ||
	       (child->sk_family == AF_INET6 && ipv6_addr_v4mapped(&child->sk_v6_daddr));
}

/*
 * Appends the detached socks of @children[0..@n) to @lsk's accept queue, as
 * inet_csk_reqsk_queue_add() would, under one hold of the queue's lock, and wakes accept()
 * once: the way a burst of handshakes completing together would, without a wake-up per
 * connection.  NULL entries are skipped.  Each child queued has its entry set to NULL: the
 * queue owns its reference from then on.  The others stay the caller's: no room left in the
 * backlog, the listener closed, out of memory, or a child of a family that cannot sit
 * under this listener.  Returns how many it queued.
 */
/*
 * How many more children @lsk's accept queue takes now: sk_acceptq_is_full() lets one past
 * the maximum in.  Racy (a handshake completing or an accept() changes it): the queue's
 * lock decides.
 */
u32 ptcp_listener_room(const struct sock *lsk)
{
	u32 max = READ_ONCE(lsk->sk_max_ack_backlog);
	u32 backlog = READ_ONCE(lsk->sk_ack_backlog);

	return backlog > max ? 0 : max + 1 - backlog;
}

u32 ptcp_inject_batch(struct sock *lsk, struct sock **children, u32 n)
{
	struct request_sock_queue *q = &inet_csk(lsk)->icsk_accept_queue;
	struct request_sock *head = NULL, **tail = &head, *req, *next;
	/*
	 * Requests only for the room the backlog has now: the parking poll offers parked
	 * children every 5 ms, and while an application accepts ten thousand of them,
	 * allocating and freeing a request for each child that cannot fit took more CPU than
	 * the accepts.  Room that opens meanwhile is the next poll's.
	 */
	u32 room = ptcp_listener_room(lsk);
	u32 i, queued = 0;

	/* Allocated and adopted before the lock, in order. */
	for (i = 0; i < n && room; i++) {
		struct sock *child = children[i];

		if (!child || !ptcp_family_fits(lsk, child))
			continue;
		room--;
		req = kmem_cache_zalloc(lsk->sk_prot->rsk_prot->slab, GFP_KERNEL);
		if (!req)
			break;
		ptcp_sk_adopt(child, lsk);
		req->rsk_ops = lsk->sk_prot->rsk_prot;
		refcount_set(&req->rsk_refcnt, 1);
		req->sk = child;
		*tail = req;
		tail = &req->dl_next;
	}
	/*
	 * The chain follows the order of @children: each entry is found by its pointer alone
	 * (a queued child may be accepted and freed as soon as the lock is dropped) and set to
	 * NULL before its request joins the queue.
	 */
	i = 0;
	spin_lock_bh(&q->rskq_lock);
	for (req = head; req && lsk->sk_state == TCP_LISTEN && !sk_acceptq_is_full(lsk);
	     req = next) {
		next = req->dl_next;
		while (children[i] != req->sk)
			i++;
		children[i++] = NULL;
		req->dl_next = NULL;
		if (!q->rskq_accept_head)
			WRITE_ONCE(q->rskq_accept_head, req);
		else
			q->rskq_accept_tail->dl_next = req;
		q->rskq_accept_tail = req;
		sk_acceptq_added(lsk);
		queued++;
	}
	spin_unlock_bh(&q->rskq_lock);
	if (queued)
		READ_ONCE(lsk->sk_data_ready)(lsk);
	for (; req; req = next) {
		next = req->dl_next;
		kmem_cache_free(req->rsk_ops->slab, req);
	}
	return queued;
}

/*
 * The handshake's final ACK of a connection born from its listener, as the client would
 * have sent it with the client's bytes the application reads (and its FIN): built in
 * memory, never sent through the stack.  skb->data is at the TCP header, the control block
 * filled as tcp_v4_fill_cb() / tcp_v6_fill_cb() fill it.
 */
static struct sk_buff *ptcp_birth_skb(const struct ptcp_birth *b)
{
	int iplen = b->ipv6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	u32 seq = b->rcv_isn + 1;
	struct sk_buff *skb;
	struct tcphdr *th;

	skb = alloc_skb(LL_MAX_HEADER + iplen + sizeof(*th) + b->len, GFP_KERNEL);
	if (!skb)
		return NULL;
	skb_reserve(skb, LL_MAX_HEADER);
	skb_reset_network_header(skb);
	if (b->ipv6) {
		struct ipv6hdr *ip6 = skb_put_zero(skb, sizeof(*ip6));

		ip6->version = 6;
		ip6->payload_len = htons(sizeof(*th) + b->len);
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = 64;
		memcpy(&ip6->saddr, b->client, 16);
		memcpy(&ip6->daddr, b->vip, 16);
		skb->protocol = htons(ETH_P_IPV6);
	} else {
		struct iphdr *ip = skb_put_zero(skb, sizeof(*ip));

		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons(iplen + sizeof(*th) + b->len);
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->saddr = *(const __be32 *)(b->client + 12);
		ip->daddr = *(const __be32 *)(b->vip + 12);
		skb->protocol = htons(ETH_P_IP);
	}
	skb_set_transport_header(skb, iplen);
	th = skb_put_zero(skb, sizeof(*th));
	th->source = htons(b->cport);
	th->dest = htons(b->vport);
	th->seq = htonl(seq);
	th->ack_seq = htonl(b->snt_isn + 1);
	th->doff = sizeof(*th) / 4;
	th->ack = 1;
	th->fin = b->fin;
	th->window = htons(b->window);
	if (b->len)
		skb_put_data(skb, b->data, b->len);
	__skb_pull(skb, iplen);
	memset(skb->cb, 0, sizeof(skb->cb));
	TCP_SKB_CB(skb)->seq = seq;
	TCP_SKB_CB(skb)->end_seq = seq + b->len + b->fin;
	TCP_SKB_CB(skb)->ack_seq = b->snt_isn + 1;
	TCP_SKB_CB(skb)->tcp_flags = TCPHDR_ACK | (b->fin ? TCPHDR_FIN : 0);
	skb->ip_summed = CHECKSUM_UNNECESSARY;
	skb->pkt_type = PACKET_HOST;
	return skb;
}

/*
 * The request sock a SYN would have left: addresses and ports, both ISNs (less one: the
 * child starts at the first byte to read and the first unacknowledged one), the options
 * both SYNs negotiated, the owner's window and clock.  As inet_reqsk_alloc() and
 * tcp_openreq_init() fill one, on memory that is zeroed.
 */
static void ptcp_birth_req(struct request_sock *req, const struct request_sock_ops *ops,
			   const struct sock *lsk, const struct ptcp_birth *b)
{
	struct inet_request_sock *ireq = inet_rsk(req);
	struct tcp_request_sock *treq = tcp_rsk(req);
	struct sock *rsk = req_to_sk(req);

	req->rsk_ops = ops;
	rsk->sk_prot = lsk->sk_prot;
	sk_node_init(&rsk->sk_node);
	sk_tx_queue_clear(rsk);
	ireq->ireq_state = TCP_NEW_SYN_RECV;
	write_pnet(&ireq->ireq_net, sock_net(lsk));
	ireq->ireq_family = lsk->sk_family;
	if (b->ipv6) {
		memcpy(&ireq->ir_v6_rmt_addr, b->client, 16);
		memcpy(&ireq->ir_v6_loc_addr, b->vip, 16);
		if (ipv6_addr_type(&ireq->ir_v6_rmt_addr) & IPV6_ADDR_LINKLOCAL)
			ireq->ir_iif = READ_ONCE(lsk->sk_bound_dev_if);
	} else {
		sk_rcv_saddr_set(rsk, *(const __be32 *)(b->vip + 12));
		sk_daddr_set(rsk, *(const __be32 *)(b->client + 12));
	}
	if (!ireq->ir_iif)
		ireq->ir_iif = READ_ONCE(lsk->sk_bound_dev_if);
	ireq->ir_num = b->vport;
	ireq->ir_rmt_port = htons(b->cport);
	ireq->ir_mark = READ_ONCE(lsk->sk_mark);
	req->mss = b->mss;
	req->ts_recent = b->ts_recent;
	ireq->tstamp_ok = b->tstamp_ok;
	ireq->sack_ok = b->sack_ok;
	ireq->wscale_ok = b->wscale_ok;
	ireq->snd_wscale = b->snd_wscale;
	ireq->rcv_wscale = b->rcv_wscale;
	req->rsk_rcv_wnd = b->rcv_wnd;
	/* Never 0: tcp_init_buffer_space() would collapse the window to nothing. */
	req->rsk_window_clamp = max_t(u32, tcp_full_space(lsk), b->rcv_wnd);
	treq->rcv_isn = b->rcv_isn;
	treq->rcv_nxt = b->rcv_isn + 1;
	treq->snt_isn = b->snt_isn;
	treq->txhash = net_tx_rndhash();
	if (b->tstamp_ok)
		treq->ts_off = b->tsval - tcp_ns_to_ts(false, tcp_clock_ns());
}

/* Frees a request sock nobody queued, as __reqsk_free() does (not exported). */
static void ptcp_req_free(struct request_sock *req)
{
	req->rsk_ops->destructor(req);
	kmem_cache_free(req->rsk_ops->slab, req);
}

/*
 * Gives a taken-over connection its socket the way the kernel gives an accepted connection
 * one: listener @lsk's syn_recv_sock() clones it from the listener (its options, socket
 * cgroup, LSM label, congestion control, mark) from a request sock filled from the mirror,
 * hashes it, and the child processes the handshake's final ACK as tcp_child_process()
 * has it do, which makes it established (or CLOSE_WAIT with the client's FIN) with the
 * client's bytes queued, and acknowledges them.  No TCP_REPAIR, no kernel socket, no
 * re-parenting.  Then the RTT estimator is seeded and the client's largest window kept.
 *
 * On success *@child is the established sock, not queued, with one reference the caller
 * owns (as ptcp_sock_detach() returns one).  -EAGAIN when the listener closed, or with a full
 * accept queue; -EOPNOTSUPP for a listener this cannot serve (ULP, MPTCP, family);
 * -EEXIST when the 4-tuple is taken (a TIME-WAIT or another socket).  Nothing then was
 * sent or hashed: the caller may rebuild the connection with TCP_REPAIR instead.  -EPROTO
 * when the child did not accept the ACK: it was reset.
 */
static bool born = true;
module_param(born, bool, 0644);
MODULE_PARM_DESC(born, "give taken-over connections whose listener exists their socket from it (default; off: always TCP_REPAIR)");

bool ptcp_born_enabled(void)
{
	return READ_ONCE(born);
}

int ptcp_born(struct sock *lsk, const struct ptcp_birth *b, struct sock **child)
{
	const struct request_sock_ops *ops;
	struct request_sock *req;
	struct sk_buff *skb;
	struct sock *sk;
	bool own_req = false;
	bool ok = false;
	int err;

	if (READ_ONCE(lsk->sk_state) != TCP_LISTEN)
		return -EAGAIN;
	if (inet_csk(lsk)->icsk_ulp_ops || sk_is_mptcp(lsk) ||
	    (b->ipv6 && lsk->sk_family != AF_INET6))
		return -EOPNOTSUPP;
	/* IPv4, even on a dual-stack listener, takes IPv4 request socks (tcp_v4_conn_request). */
	ops = b->ipv6 ? lsk->sk_prot->rsk_prot : tcp_prot.rsk_prot;
	err = -ENOMEM;
	skb = ptcp_birth_skb(b);
	if (!skb)
		goto out;
	req = kmem_cache_zalloc(ops->slab, GFP_KERNEL);
	if (!req) {
		kfree_skb(skb);
		goto out;
	}
	ptcp_birth_req(req, ops, lsk, b);

	/* As the receive path runs it: softirq context, under RCU, the listener unlocked. */
	local_bh_disable();
	rcu_read_lock();
	sk = inet_csk(lsk)->icsk_af_ops->syn_recv_sock(lsk, skb, req, NULL, NULL, &own_req,
							NULL);
	if (sk) {
		/* Locked by the clone: the ACK goes in as tcp_child_process() feeds it. */
		tcp_segs_in(tcp_sk(sk), skb);
		sk->sk_backlog_rcv(sk, skb);	/* consumes the skb */
		skb = NULL;
		ok = (sk->sk_state == TCP_ESTABLISHED || sk->sk_state == TCP_CLOSE_WAIT) &&
		     tcp_sk(sk)->rcv_nxt == b->rcv_isn + 1 + b->len + b->fin &&
		     tcp_sk(sk)->snd_una == b->snt_isn + 1;
		/*
		 * Still locked as the receive path holds it (a segment of the client's
		 * waits): the RTT estimator seeded and the client's largest window kept now
		 * saves two lock_sock() rounds per birth.
		 */
		if (ok) {
			if (b->srtt_us)
				__ptcp_sk_seed_rtt(sk, b->srtt_us, b->rttvar_us);
			tcp_sk(sk)->max_window = max(tcp_sk(sk)->max_window, b->max_window);
		}
		bh_unlock_sock(sk);
	}
	rcu_read_unlock();
	local_bh_enable();
	ptcp_req_free(req);
	if (!sk) {
		kfree_skb(skb);
		err = sk_acceptq_is_full(lsk) ? -EAGAIN : -EEXIST;
		goto out;
	}
	if (!ok) {
		/* Hashed and seen by the client's next segment: reset, never left half made. */
		ptcp_sock_close_detached(sk);	/* the reference the queue would have had */
		sock_put(sk);
		err = -EPROTO;
		goto out;
	}
	/* Born with two references: the caller's (dropped) and the one the queue takes. */
	sock_put(sk);
	*child = sk;
	err = 0;
out:
	return err;
}

/*
 * Work run on another CPU while the caller goes on: the takeover gives half of a binding's
 * connections their sockets there (the births are independent, as handshakes completing
 * on several CPUs are).  The handle is allocated; the work runs @fn(@arg) once.
 */
struct ptcp_par {
	struct work_struct work;
	void (*fn)(void *arg);
	void *arg;
};

static void ptcp_par_work(struct work_struct *work)
{
	struct ptcp_par *p = container_of(work, struct ptcp_par, work);

	p->fn(p->arg);
}

/*
 * Queues @fn(@arg) on another online CPU than the caller's (the system's high-priority
 * workqueue); the caller must wait for it with ptcp_par_wait() before @arg goes.  NULL,
 * with nothing queued, when no other CPU is online or memory is short: the caller then
 * runs @fn itself.
 */
struct ptcp_par *ptcp_par_start(void (*fn)(void *arg), void *arg)
{
	struct ptcp_par *p;
	int cpu;

	if (num_online_cpus() < 2)
		return NULL;
	p = kmalloc(sizeof(*p), GFP_KERNEL);
	if (!p)
		return NULL;
	INIT_WORK(&p->work, ptcp_par_work);
	p->fn = fn;
	p->arg = arg;
	/* Any other CPU: if it goes offline meanwhile, the workqueue runs the work elsewhere. */
	cpu = cpumask_any_but(cpu_online_mask, raw_smp_processor_id());
	if (cpu >= nr_cpu_ids) {
		kfree(p);
		return NULL;
	}
	queue_work_on(cpu, system_highpri_wq, &p->work);
	return p;
}

/* Waits until the work of @p has run, and frees @p. */
void ptcp_par_wait(struct ptcp_par *p)
{
	flush_work(&p->work);
	kfree(p);
}

/*
 * Closes a detached child nobody will accept (unload, or no listener in time) with a reset,
 * as SO_LINGER {1, 0} would: a FIN would tell the client the stream ended complete.
 */
/*
 * Frees @p (kmalloc()ed or kvmalloc()ed) after a grace period, without waiting for it: it is
 * queued (or, without memory to queue it, freed after synchronize_rcu()).  Process context.
 */
void ptcp_kvfree_rcu(void *p)
{
	kvfree_rcu_mightsleep(p);
}

/*
 * @n counters per CPU (zeroed), for counts the hooks update on every frame: each CPU adds
 * to its own, so frames on different CPUs share no cache line for them.  NULL without
 * memory.  Process context.
 */
u64 __percpu *ptcp_pcpu_alloc(u32 n)
{
	return __alloc_percpu(n * sizeof(u64), sizeof(u64));
}

void ptcp_pcpu_free(u64 __percpu *p)
{
	free_percpu(p);
}

/* Adds one to this CPU's counter @i (any context: this_cpu_inc() is IRQ-safe). */
void ptcp_pcpu_inc(u64 __percpu *p, u32 i)
{
	this_cpu_inc(p[i]);
}

/* Counter @i summed over the CPUs (each read whole; increments meanwhile may be missed). */
u64 ptcp_pcpu_sum(u64 __percpu *p, u32 i)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += READ_ONCE(per_cpu_ptr(p, cpu)[i]);
	return sum;
}

/*
 * The cookie of @sk, as getsockopt(SO_COOKIE) and ss -e ("sk:") report it: generated now if
 * it has none yet, and the socket keeps it for life (the same socket after accept()).
 */
u64 ptcp_sock_cookie(struct sock *sk)
{
	u32 c[2];

	sock_diag_save_cookie(sk, c);
	return (u64)c[1] << 32 | c[0];
}

void ptcp_sock_close_detached(struct sock *sk)
{
	sock_set_flag(sk, SOCK_LINGER);
	WRITE_ONCE(sk->sk_lingertime, 0);
	sk->sk_prot->close(sk, 0);
}

/*
 * Announces that @addr now lives at the snooped device's MAC: a gratuitous ARP request
 * (IPv4) or an unsolicited, overriding neighbour advertisement to all nodes (IPv6), so that
 * clients and routers stop sending to the failed owner's MAC.  -ENODEV when not snooping.
 */
int ptcp_announce(struct ptcp_net *pn, const u8 *addr, bool ipv6)
{
	struct net_device *dev;
	int err = 0;

	rtnl_lock();
	dev = pn->dev;
	if (!dev) {
		err = -ENODEV;
	} else if (ipv6) {
		ndisc_send_na(dev, &in6addr_linklocal_allnodes, (const struct in6_addr *)addr,
			      false, false, true, true);
	} else {
		__be32 ip = *(const __be32 *)(addr + 12);

		arp_send(ARPOP_REQUEST, ETH_P_ARP, ip, dev, ip, NULL, dev->dev_addr, NULL);
	}
	rtnl_unlock();
	return err;
}
