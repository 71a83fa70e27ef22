/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where a connection permtcp took over resumes, asked by the restarted application for each
 * socket it accept()s: a TAKEN_GET query by the socket's 4-tuple over generic netlink, or
 * the process's cache of the records (filled by one TAKEN_GET dump when a query finds a
 * record it had not seen; matched by socket cookie, SO_COOKIE).
 * Link libpermtcp_resume.a (cargo build --release -p permtcp-resume; also -lpthread -ldl
 * -lm).  See tools/permtcp-resume/example.c.
 */
#ifndef PERMTCP_RESUME_H
#define PERMTCP_RESUME_H

#include <stdint.h>

struct ptcp_resume {
	uint32_t sent_offset;	/* stream offset (mod 2^32) of the next byte to send */
	uint32_t recv_offset;	/* stream offset of the first client byte to read */
	uint32_t data_offset;	/* first sent byte kept for verification (permctl conn-data) */
	uint32_t data_len;	/* kept sent bytes, ending at sent_offset */
	uint32_t rx_deliver;	/* 1: received bytes are delivered again (policy "deliver") */
	uint64_t age_ms;	/* milliseconds since the takeover */
};

/*
 * 1 and *out filled when the connected TCP socket fd was taken over here, 0 when not (or
 * the module is not loaded), a negative errno on failure.  Thread-safe: the process's
 * queries share up to four netlink sockets and one cache.
 */
int ptcp_resume_get(int fd, struct ptcp_resume *out);

#endif /* PERMTCP_RESUME_H */
