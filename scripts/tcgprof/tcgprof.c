// SPDX-License-Identifier: GPL-2.0
/*
 * tcgprof: a QEMU TCG plugin that counts the guest kernel's executed instructions per
 * translation block, for a flat profile of a TCG guest, which has no PMU to sample.
 *
 *   qemu-system-x86_64 ... -plugin /path/tcgprof.so,out=FILE
 *
 * At exit FILE gets one line per block start address (kernel addresses only, in hex) with
 * the instructions it ran (executions times its length). scripts/tcgprof/report.py folds
 * them into functions with System.map and a module's symbols. Options:
 *
 *   user=1   user space is counted too, all of it as one block at address 1 ("[user]");
 *   user=2   user space is counted too, block by block like the kernel (every process's
 *            blocks at their own addresses: symbols come from a process's maps);
 *   snap=1   a thread looks for FILE.snap every 20 ms: when it is there, the counts so far
 *            go to FILE.NAME (NAME: the first line of FILE.snap, letters, digits, '-' and
 *            '_'), then FILE.snap goes. The host reads what a guest ran between two such
 *            snapshots (selftests/cluster/run.sh: the owner's cost of one transfer).
 *
 * Only the part of QEMU's plugin API (version 1, QEMU 7.2) this uses is declared here: the
 * calls resolve against the QEMU binary when it loads the plugin.
 */
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
					   void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
					      void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id,
				    void (*cb)(qemu_plugin_id_t, void *), void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* One counter per block address (retranslations share it): open addressing. */
struct block {
	uint64_t vaddr;
	uint64_t insns;		/* added to inline: executions times the block's length */
};

#define SLOTS (1u << 21)
static struct block *table;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *out = "tcgprof.out";
static int count_user;
/* The block address user space is counted under (user=1). */
#define USER_VADDR 1ull

static struct block *slot(uint64_t vaddr)
{
	uint64_t h = (vaddr * 0x9e3779b97f4a7c15ull) >> 43;

	for (uint32_t i = 0; i < SLOTS; i++) {
		struct block *b = &table[(h + i) & (SLOTS - 1)];

		if (b->vaddr == vaddr || b->vaddr == 0) {
			b->vaddr = vaddr;
			return b;
		}
	}
	return NULL;
}

static void trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
	struct block *b;

	(void)id;
	if (vaddr < 0xffff800000000000ull) {
		if (!count_user)
			return;
		if (count_user == 1)
			vaddr = USER_VADDR;
	}
	pthread_mutex_lock(&lock);
	b = slot(vaddr);
	pthread_mutex_unlock(&lock);
	/* Racy adds from two vCPUs may lose a few counts: a profile, not a tally. */
	if (b)
		qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
							 &b->insns, qemu_plugin_tb_n_insns(tb));
}

/* The counts so far to `path` (through a temporary file: a reader sees all or nothing). */
static void dump(const char *path)
{
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return;
	f = fopen(tmp, "w");
	if (!f)
		return;
	/* Racy reads of counters the vCPUs add to: a snapshot is a profile, not a tally. */
	for (uint32_t i = 0; i < SLOTS; i++) {
		uint64_t n = __atomic_load_n(&table[i].insns, __ATOMIC_RELAXED);

		if (table[i].vaddr && n)
			fprintf(f, "%" PRIx64 " %" PRIu64 "\n", table[i].vaddr, n);
	}
	if (fclose(f) == 0)
		rename(tmp, path);
}

static void done(qemu_plugin_id_t id, void *p)
{
	(void)id;
	(void)p;
	dump(out);
}

/* snap=1: FILE.snap asks for a snapshot, named by its first line. */
static void *snapper(void *arg)
{
	const struct timespec tick = { .tv_nsec = 20 * 1000 * 1000 };
	char trigger[4096], path[4096], name[64];

	(void)arg;
	if (snprintf(trigger, sizeof(trigger), "%s.snap", out) >= (int)sizeof(trigger))
		return NULL;
	for (;;) {
		FILE *f;
		size_t n = 0;
		int c;

		nanosleep(&tick, NULL);
		f = fopen(trigger, "r");
		if (!f)
			continue;
		while ((c = fgetc(f)) != EOF && n < sizeof(name) - 1 &&
		       (isalnum(c) || c == '-' || c == '_'))
			name[n++] = (char)c;
		name[n] = 0;
		fclose(f);
		if (n && snprintf(path, sizeof(path), "%s.%s", out, name) < (int)sizeof(path)) {
			pthread_mutex_lock(&lock);
			dump(path);
			pthread_mutex_unlock(&lock);
		}
		unlink(trigger);
	}
	return NULL;
}

__attribute__((visibility("default"))) int
qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc, char **argv)
{
	(void)info;
	int snap = 0;
	pthread_t t;

	for (int i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "out=", 4))
			out = argv[i] + 4;
		else if (!strcmp(argv[i], "user=1"))
			count_user = 1;
		else if (!strcmp(argv[i], "user=2"))
			count_user = 2;
		else if (!strcmp(argv[i], "snap=1"))
			snap = 1;
	}
	table = calloc(SLOTS, sizeof(*table));
	if (!table)
		return -1;
	if (snap && pthread_create(&t, NULL, snapper, NULL))
		return -1;
	qemu_plugin_register_vcpu_tb_trans_cb(id, trans);
	qemu_plugin_register_atexit_cb(id, done, NULL);
	return 0;
}
