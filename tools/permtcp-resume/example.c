// SPDX-License-Identifier: GPL-2.0
/*
 * A restarted server asks, for each connection it accepts, whether permtcp took it over
 * and where the stream resumes.  Build:
 *
 *	cargo build --release -p permtcp-resume
 *	cc -I tools/permtcp-resume tools/permtcp-resume/example.c \
 *		target/release/libpermtcp_resume.a -lpthread -ldl -lm -o resume-example
 *	./resume-example 80
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "permtcp_resume.h"

int main(int argc, char **argv)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = in6addr_any };
	int one = 1, lfd;

	a.sin6_port = htons(argc > 1 ? atoi(argv[1]) : 80);
	lfd = socket(AF_INET6, SOCK_STREAM, 0);
	/* The rebuilt sockets hold the port: SO_REUSEADDR, as takeover.rst says. */
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4096)) {
		perror("bind/listen");
		return 1;
	}
	for (;;) {
		struct ptcp_resume r;
		int fd = accept(lfd, NULL, NULL);
		int found;

		if (fd < 0)
			continue;
		found = ptcp_resume_get(fd, &r);
		if (found == 1)
			printf("taken over: send from offset %u, read from offset %u (%u sent bytes kept)\n",
			       r.sent_offset, r.recv_offset, r.data_len);
		else if (found == 0)
			printf("a new connection\n");
		else
			printf("lookup failed: %s\n", strerror(-found));
		close(fd);
	}
}
