/* tinyq verify: the few Arm semihosting calls the Cortex-M4 runner uses (bkpt 0xab). */
#ifndef TINYQ_SEMIHOSTING_H
#define TINYQ_SEMIHOSTING_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
void sh_print(const char *text);
void sh_print_int(int32_t value);
/* Ends the program; QEMU exits with `status`. */
void sh_exit(int status) __attribute__((noreturn));
/* Copies the command line given to QEMU (-append) into buf; returns its length or -1. */
int sh_cmdline(char *buf, int size);
/* Reads a whole host file into buf (at most size bytes); returns the byte count or -1. */
int32_t sh_read_file(const char *path, uint8_t *buf, int32_t size);
#ifdef __cplusplus
}
#endif
#endif
