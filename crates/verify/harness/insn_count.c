/*
 * tinyq verify: a QEMU TCG plugin that counts executed guest instructions.
 *
 * Debian's QEMU ships no plugin header, so the handful of plugin-API entry points used here are
 * declared below (plugin API version 1, QEMU 7.2 and later).
 *
 * Arguments: mark=ADDRESS (decimal or 0x hex) out=FILE. Every translation block adds its
 * instruction count to a running total when it starts executing; every time the instruction at
 * ADDRESS executes (the first instruction of the guest's tinyq_mark()), the total so far is
 * appended to FILE, one number a line. Differences between consecutive lines count the
 * instructions of the bracketed region exactly (each includes the one instruction of the mark
 * block itself). At exit the grand total is appended as "total N".
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t plugin_id;
struct qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum inline_op { INLINE_ADD_U64 = 0 };
enum cb_flags { CB_NO_REGS = 0 };

void qemu_plugin_register_vcpu_tb_trans_cb(plugin_id, void (*)(plugin_id, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum inline_op, void *, uint64_t);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *, void (*)(unsigned int, void *),
                                            enum cb_flags, void *);
void qemu_plugin_register_atexit_cb(plugin_id, void (*)(plugin_id, void *), void *);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t executed;
static uint64_t mark_address = UINT64_MAX;
static FILE *out;

static void on_mark(unsigned int cpu, void *data) {
    (void)cpu;
    (void)data;
    if (out) fprintf(out, "%" PRIu64 "\n", executed);
}

static void on_translate(plugin_id id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, INLINE_ADD_U64, &executed, n);
    for (size_t i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        if (qemu_plugin_insn_vaddr(insn) == mark_address)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, CB_NO_REGS, NULL);
    }
}

static void at_end(plugin_id id, void *data) {
    (void)id;
    (void)data;
    if (out) {
        fprintf(out, "total %" PRIu64 "\n", executed);
        fclose(out);
        out = NULL;
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(plugin_id id, const struct qemu_info_t *info,
                                                              int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "mark=", 5) == 0) {
            mark_address = strtoull(argv[i] + 5, NULL, 0);
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            out = fopen(argv[i] + 4, "w");
            if (!out) return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_end, NULL);
    return 0;
}
