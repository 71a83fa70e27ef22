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
 *  - message helpers around static inlines (genlmsg_put_reply, genlmsg_reply, genlmsg_end,
 *    skb_tail_pointer, ...) and the extack message pointer.
 *
 * No decision is taken here: every request is handed to Rust (permtcp/genl.rs), which parses,
 * validates and answers it.  Rust reaches these functions through permtcp/glue.rs.
 */

#include <linux/build_bug.h>
#include <linux/module.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <net/sock.h>

#include <uapi/linux/permtcp.h>
#include <permtcp/glue.h>

static_assert(sizeof(struct ptcp_msg) == 32);

static unsigned int ptcp_net_id;

static void *ptcp_state(const struct net *net)
{
	return *(void **)net_generic(net, ptcp_net_id);
}

static int __net_init ptcp_net_init(struct net *net)
{
	void *state = permtcp_rs_net_init(net->net_cookie);

	if (!state)
		return -ENOMEM;
	*(void **)net_generic(net, ptcp_net_id) = state;
	return 0;
}

static void __net_exit ptcp_net_exit(struct net *net)
{
	void **slot = net_generic(net, ptcp_net_id);

	permtcp_rs_net_exit(*slot);
	*slot = NULL;
}

static struct pernet_operations ptcp_net_ops = {
	.init = ptcp_net_init,
	.exit = ptcp_net_exit,
	.id = &ptcp_net_id,
	.size = sizeof(void *),
};

static int ptcp_doit(struct sk_buff *skb, struct genl_info *info)
{
	return permtcp_rs_doit(ptcp_state(genl_info_net(info)), info->genlhdr->cmd,
			       genlmsg_data(info->genlhdr), genlmsg_len(info->genlhdr), info);
}

static int ptcp_decl_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	return permtcp_rs_dump_decls(ptcp_state(sock_net(skb->sk)), skb, cb, &cb->args[0]);
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
		.dumpit = ptcp_decl_dumpit,
	},
	{
		.cmd = PERMTCP_CMD_STATUS_GET,
		.doit = ptcp_doit,
	},
};

static struct genl_family ptcp_family = {
	.name = PERMTCP_FAMILY_NAME,
	.version = PERMTCP_FAMILY_VERSION,
	.netnsok = true,
	.parallel_ops = true,
	.module = THIS_MODULE,
	.ops = ptcp_ops,
	.n_ops = ARRAY_SIZE(ptcp_ops),
	/* resv_start_op = 0: every command gets strict header and attribute checks. */
};

int ptcp_glue_register(void)
{
	int err = register_pernet_subsys(&ptcp_net_ops);

	if (err)
		return err;
	err = genl_register_family(&ptcp_family);
	if (err)
		unregister_pernet_subsys(&ptcp_net_ops);
	return err;
}

void ptcp_glue_unregister(void)
{
	/* No handler runs after this returns; then every namespace's state is freed. */
	genl_unregister_family(&ptcp_family);
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

/* @msg must be a static string: netlink reads it after the handler returns. */
void ptcp_set_err_msg(struct genl_info *info, const char *msg)
{
	if (info->extack)
		info->extack->_msg = msg;
}
