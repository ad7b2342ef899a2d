/* tinyq verify: runs interpreter-free C (`tinyq export --no-interpreter`) on the emulated
 * Cortex-M4 with the same protocol as the TFLM runner.
 *
 * Command line (-append): run 0 INPUTS. For every sample in the host file INPUTS (the input's raw
 * int8 bytes, back to back) it copies the sample into the input array, calls the model between
 * two tinyq_mark() calls (the instruction-count plugin brackets each inference), and prints the
 * output as "y SAMPLE 0 HEX". The stack is painted again before the first inference, so
 * "invoke_stack_bytes" is the stack in use at the deepest point of an inference (this runner's
 * frames included); "stack_bytes" is the whole program's, printing included.
 * runner_c_config.h (written by tinyq) includes the model header and defines TQ_INVOKE,
 * TQ_INPUT_SIZE, TQ_OUTPUT_SIZE and TQ_SAMPLES_CAPACITY. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "semihosting.h"
#include "runner_c_config.h"

extern uint32_t stack_high_water(void);
extern uint32_t __stack_bottom;

__attribute__((noinline)) void tinyq_mark(void) { __asm__ volatile("" ::: "memory"); }

/* The samples file: harness memory, not counted as the model's RAM. */
static uint8_t g_samples[TQ_SAMPLES_CAPACITY];
static int8_t g_in[TQ_INPUT_SIZE];
static int8_t g_out[TQ_OUTPUT_SIZE];

__attribute__((noinline, optimize("no-tree-loop-distribute-patterns"))) static void repaint_stack(void) {
  uint32_t *sp;
  uint32_t *p;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (p = &__stack_bottom; p < sp - 64; ++p) *p = 0x5AA5C33Cu;
}

static void print_value(const char *key, long value) {
  char line[64];
  snprintf(line, sizeof line, "%s %ld\n", key, value);
  sh_print(line);
}

int main(void) {
  static char cmdline[512];
  static const char kHex[] = "0123456789abcdef";
  char line[80];
  const char *path;
  int32_t total, samples, s;
  uint32_t invoke_stack = 0;
  if (sh_cmdline(cmdline, sizeof cmdline) < 0 || strncmp(cmdline, "image run ", 10) != 0) {
    sh_print("error usage: run 0 INPUTS\n");
    return 1;
  }
  path = strrchr(cmdline, ' ') + 1;
  total = sh_read_file(path, g_samples, sizeof g_samples);
  if (total <= 0 || total % TQ_INPUT_SIZE != 0) {
    sh_print("error cannot read the inputs file, or its size is not a whole number of samples\n");
    return 3;
  }
  samples = total / TQ_INPUT_SIZE;
  for (s = 0; s < samples; ++s) {
    int32_t b, at = 0;
    memcpy(g_in, g_samples + (size_t)s * TQ_INPUT_SIZE, TQ_INPUT_SIZE);
    if (s == 0) repaint_stack();
    tinyq_mark();
    TQ_INVOKE(g_in, g_out);
    tinyq_mark();
    if (s == 0) invoke_stack = stack_high_water();
    snprintf(line, sizeof line, "y %ld 0 ", (long)s);
    sh_print(line);
    for (b = 0; b < TQ_OUTPUT_SIZE; ++b) {
      line[at++] = kHex[(uint8_t)g_out[b] >> 4];
      line[at++] = kHex[(uint8_t)g_out[b] & 15];
      if (at + 2 >= (int32_t)sizeof line - 1 || b + 1 == TQ_OUTPUT_SIZE) {
        line[at] = 0;
        sh_print(line);
        at = 0;
      }
    }
    sh_print("\n");
  }
  print_value("samples", samples);
  print_value("invoke_stack_bytes", (long)invoke_stack);
  print_value("stack_bytes", (long)stack_high_water());
  sh_print("done\n");
  return 0;
}
