/* tinyq verify: Arm semihosting over the bkpt 0xab trap, as QEMU implements it. */
#include "semihosting.h"
#include <string.h>

enum { SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE0 = 0x04, SYS_READ = 0x06, SYS_FLEN = 0x0c,
       SYS_GET_CMDLINE = 0x15, SYS_EXIT = 0x18, SYS_EXIT_EXTENDED = 0x20 };

static int32_t trap(int32_t call, const void *block) {
    register int32_t r0 __asm__("r0") = call;
    register const void *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void sh_print(const char *text) { trap(SYS_WRITE0, text); }

void sh_print_int(int32_t value) {
    char digits[12];
    int at = 11;
    uint32_t magnitude = value < 0 ? 0u - (uint32_t)value : (uint32_t)value;
    digits[at] = 0;
    do {
        digits[--at] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0) digits[--at] = '-';
    sh_print(&digits[at]);
}

void sh_exit(int status) {
    /* 0x20026 = ADP_Stopped_ApplicationExit; the second word is the exit status. */
    static volatile uint32_t reason[2];
    reason[0] = 0x20026;
    reason[1] = (uint32_t)status;
    trap(SYS_EXIT_EXTENDED, (const void *)reason);
    trap(SYS_EXIT, (const void *)0x20026);
    for (;;) {
    }
}

int sh_cmdline(char *buf, int size) {
    volatile uint32_t block[2] = {(uint32_t)buf, (uint32_t)size};
    if (trap(SYS_GET_CMDLINE, (const void *)block) != 0) return -1;
    return (int)block[1];
}

int32_t sh_read_file(const char *path, uint8_t *buf, int32_t size) {
    volatile uint32_t open_block[3] = {(uint32_t)path, 1 /* "rb" */, (uint32_t)strlen(path)};
    int32_t handle = trap(SYS_OPEN, (const void *)open_block);
    if (handle < 0) return -1;
    volatile uint32_t len_block[1] = {(uint32_t)handle};
    int32_t length = trap(SYS_FLEN, (const void *)len_block);
    int32_t result = -1;
    if (length >= 0 && length <= size) {
        volatile uint32_t read_block[3] = {(uint32_t)handle, (uint32_t)buf, (uint32_t)length};
        /* SYS_READ returns the number of bytes NOT read. */
        if (trap(SYS_READ, (const void *)read_block) == 0) result = length;
    }
    volatile uint32_t close_block[1] = {(uint32_t)handle};
    trap(SYS_CLOSE, (const void *)close_block);
    return result;
}
