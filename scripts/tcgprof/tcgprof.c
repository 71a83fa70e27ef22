// SPDX-License-Identifier: GPL-2.0
/*
 * tcgprof: a QEMU TCG plugin that counts the guest kernel's executed instructions per
 * translation block, for a flat profile of a TCG guest, which has no PMU to sample.
 *
 *   qemu-system-x86_64 ... -plugin /path/tcgprof.so,out=FILE
 *
 * At exit FILE gets one line per block start address (kernel addresses only, in hex) with
 * the instructions it ran (executions times its length). scripts/tcgprof/report.py folds
 * them into functions with System.map and a module's symbols.
 *
 * Only the part of QEMU's plugin API (version 1, QEMU 7.2) this uses is declared here: the
 * calls resolve against the QEMU binary when it loads the plugin.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	if (vaddr < 0xffff800000000000ull)
		return;
	pthread_mutex_lock(&lock);
	b = slot(vaddr);
	pthread_mutex_unlock(&lock);
	/* Racy adds from two vCPUs may lose a few counts: a profile, not a tally. */
	if (b)
		qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
							 &b->insns, qemu_plugin_tb_n_insns(tb));
}

static void done(qemu_plugin_id_t id, void *p)
{
	FILE *f = fopen(out, "w");

	(void)id;
	(void)p;
	if (!f)
		return;
	for (uint32_t i = 0; i < SLOTS; i++)
		if (table[i].vaddr && table[i].insns)
			fprintf(f, "%" PRIx64 " %" PRIu64 "\n", table[i].vaddr, table[i].insns);
	fclose(f);
}

__attribute__((visibility("default"))) int
qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc, char **argv)
{
	(void)info;
	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], "out=", 4))
			out = argv[i] + 4;
	table = calloc(SLOTS, sizeof(*table));
	if (!table)
		return -1;
	qemu_plugin_register_vcpu_tb_trans_cb(id, trans);
	qemu_plugin_register_atexit_cb(id, done, NULL);
	return 0;
}
