/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * permtcp: generic netlink family for permanent (fail-over) TCP connections.
 *
 * Mirrored value for value by permtcp/logic/uapi.rs (a host test compares them).
 * See Documentation/netlink.rst.
 */
#ifndef _UAPI_LINUX_PERMTCP_H
#define _UAPI_LINUX_PERMTCP_H

#define PERMTCP_FAMILY_NAME	"permtcp"
#define PERMTCP_FAMILY_VERSION	1

enum permtcp_cmd {
	PERMTCP_CMD_UNSPEC = 0,
	PERMTCP_CMD_DECL_ADD = 1,
	PERMTCP_CMD_DECL_DEL = 2,
	PERMTCP_CMD_DECL_GET = 3,
	PERMTCP_CMD_STATUS_GET = 4,
	__PERMTCP_CMD_MAX,
};
#define PERMTCP_CMD_MAX (__PERMTCP_CMD_MAX - 1)

enum permtcp_attr {
	PERMTCP_A_UNSPEC = 0,
	PERMTCP_A_DECL = 1,		/* nested: enum permtcp_decl_attr */
	PERMTCP_A_NODE_ID = 2,		/* u32 */
	PERMTCP_A_VERSION = 3,		/* u32 */
	PERMTCP_A_DECL_COUNT = 4,	/* u32 */
	PERMTCP_A_DECL_MAX = 5,		/* u32 */
	PERMTCP_A_LOCAL_NODE = 6,	/* u32 */
	PERMTCP_A_NETNS_COOKIE = 7,	/* u64 */
	__PERMTCP_A_MAX,
};
#define PERMTCP_A_MAX (__PERMTCP_A_MAX - 1)

enum permtcp_decl_attr {
	PERMTCP_DECL_A_UNSPEC = 0,
	PERMTCP_DECL_A_NODE_ID = 1,	/* u32 */
	PERMTCP_DECL_A_ADDR4 = 2,	/* 4 bytes, network order */
	PERMTCP_DECL_A_ADDR6 = 3,	/* 16 bytes */
	PERMTCP_DECL_A_MAC = 4,		/* 6 bytes */
	PERMTCP_DECL_A_PORTS = 5,	/* nested: enum permtcp_range_attr */
	PERMTCP_DECL_A_PROTO = 6,	/* u8 */
	PERMTCP_DECL_A_FAILOVER = 7,	/* u8: enum permtcp_failover */
	PERMTCP_DECL_A_ARP_POLICY = 8,	/* u8: enum permtcp_arp_policy */
	PERMTCP_DECL_A_ARP_NODE = 9,	/* u32 */
	PERMTCP_DECL_A_APP = 10,	/* string */
	PERMTCP_DECL_A_RX_POLICY = 11,	/* u8: enum permtcp_rx_policy */
	PERMTCP_DECL_A_LOCAL = 12,	/* flag */
	__PERMTCP_DECL_A_MAX,
};
#define PERMTCP_DECL_A_MAX (__PERMTCP_DECL_A_MAX - 1)

enum permtcp_range_attr {
	PERMTCP_RANGE_A_UNSPEC = 0,
	PERMTCP_RANGE_A_LO = 1,		/* u16 */
	PERMTCP_RANGE_A_HI = 2,		/* u16 */
	PERMTCP_RANGE_A_PEER = 3,	/* u32, repeatable */
	__PERMTCP_RANGE_A_MAX,
};
#define PERMTCP_RANGE_A_MAX (__PERMTCP_RANGE_A_MAX - 1)

enum permtcp_failover {
	PERMTCP_FAILOVER_SMALLEST_ID = 1,
	PERMTCP_FAILOVER_PEER_LIST = 2,
};

enum permtcp_arp_policy {
	PERMTCP_ARP_FOLLOW_FAILOVER = 1,
	PERMTCP_ARP_SMALLEST_ID = 2,
	PERMTCP_ARP_FIXED = 3,
};

enum permtcp_rx_policy {
	PERMTCP_RX_DELIVER = 1,
	PERMTCP_RX_DROP = 2,
};

#endif /* _UAPI_LINUX_PERMTCP_H */
