// tinyq verify: runs a TFLM model on the emulated Cortex-M4 and prints what tinyq compares.
//
// The QEMU command line (-append) picks the mode:
//   run ARENA INPUTS   allocate ARENA bytes, then for every sample in the host file INPUTS (the
//                      model inputs' raw bytes, back to back) copy it in, Invoke and print every
//                      output as hex bytes: "y SAMPLE OUTPUT HEX"
//   alloc ARENA        AllocateTensors with exactly ARENA bytes: "arena_check_ok 0|1"
//   check ARENA        the same, then one Invoke on zeroed inputs
// The host bisects over alloc runs, one QEMU process per probe: TFLM does not always fail
// cleanly with a too-small arena (it can hang), and a host timeout turns that into "fails".
// tinyq_mark() brackets AllocateTensors and each Invoke for the instruction-count plugin.
// runner_config.h (written by tinyq) supplies the model (embedded, or read from the host file
// named by the last word of the command line), the op resolver and the arena buffer size.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "semihosting.h"
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
// After the TFLM headers: it uses their types.
#include "runner_config.h"

extern "C" uint32_t stack_high_water(void);

extern "C" __attribute__((noinline)) void tinyq_mark(void) { __asm__ volatile("" ::: "memory"); }

alignas(16) static uint8_t g_arena[TINYQ_ARENA_CAPACITY];
static bool g_quiet = false;

static void Log(const char* text) {
  if (!g_quiet) sh_print(text);
}

static void PrintLine(const char* key, long value) {
  char line[64];
  snprintf(line, sizeof line, "%s %ld\n", key, value);
  sh_print(line);
}

static const tflite::Model* g_model = nullptr;
static runner::OpResolver g_resolver;

// AllocateTensors (and optionally one Invoke on zeroed inputs) with exactly `size` bytes.
static bool Fits(size_t size, bool invoke, size_t* used) {
  tflite::MicroInterpreter interpreter(g_model, g_resolver, g_arena, size);
  if (interpreter.AllocateTensors() != kTfLiteOk) return false;
  if (invoke) {
    for (size_t i = 0; i < interpreter.inputs_size(); ++i) {
      TfLiteTensor* t = interpreter.input(i);
      memset(t->data.raw, 0, t->bytes);
    }
    if (interpreter.Invoke() != kTfLiteOk) return false;
  }
  if (used != nullptr) *used = interpreter.arena_used_bytes();
  return true;
}

static int RunSamples(size_t arena, const char* inputs_path) {
  tflite::MicroInterpreter interpreter(g_model, g_resolver, g_arena, arena);
  tinyq_mark();
  const TfLiteStatus allocated = interpreter.AllocateTensors();
  tinyq_mark();
  if (allocated != kTfLiteOk) {
    sh_print("error AllocateTensors failed\n");
    return 2;
  }
  PrintLine("arena_used", static_cast<long>(interpreter.arena_used_bytes()));
  size_t sample_bytes = 0;
  for (size_t i = 0; i < interpreter.inputs_size(); ++i) sample_bytes += interpreter.input(i)->bytes;
  // The inputs are read into the arena buffer's unused top: no second large buffer.
  uint8_t* inputs = g_arena + arena + 16;
  const int32_t capacity = static_cast<int32_t>(sizeof g_arena - arena - 16);
  const int32_t total = sh_read_file(inputs_path, inputs, capacity);
  if (total < 0 || sample_bytes == 0 || total % static_cast<int32_t>(sample_bytes) != 0) {
    sh_print("error cannot read the inputs file, or its size is not a whole number of samples\n");
    return 3;
  }
  const int32_t samples = total / static_cast<int32_t>(sample_bytes);
  char line[80];
  for (int32_t s = 0; s < samples; ++s) {
    const uint8_t* from = inputs + static_cast<size_t>(s) * sample_bytes;
    for (size_t i = 0; i < interpreter.inputs_size(); ++i) {
      TfLiteTensor* t = interpreter.input(i);
      memcpy(t->data.raw, from, t->bytes);
      from += t->bytes;
    }
    tinyq_mark();
    const TfLiteStatus invoked = interpreter.Invoke();
    tinyq_mark();
    if (invoked != kTfLiteOk) {
      sh_print("error Invoke failed\n");
      return 4;
    }
    for (size_t o = 0; o < interpreter.outputs_size(); ++o) {
      const TfLiteTensor* t = interpreter.output(o);
      snprintf(line, sizeof line, "y %ld %ld ", static_cast<long>(s), static_cast<long>(o));
      sh_print(line);
      size_t at = 0;
      for (size_t b = 0; b < t->bytes; ++b) {
        static const char kHex[] = "0123456789abcdef";
        line[at++] = kHex[t->data.uint8[b] >> 4];
        line[at++] = kHex[t->data.uint8[b] & 15];
        if (at + 2 >= sizeof line - 1 || b + 1 == t->bytes) {
          line[at] = 0;
          sh_print(line);
          at = 0;
        }
      }
      sh_print("\n");
    }
  }
  PrintLine("samples", samples);
  return 0;
}

static int CheckExact(size_t size, bool invoke) {
  size_t used = 0;
  g_quiet = true;
  const bool ok = size <= sizeof g_arena && Fits(size, invoke, &used);
  g_quiet = false;
  PrintLine("arena_check", static_cast<long>(size));
  PrintLine("arena_check_ok", ok ? 1 : 0);
  if (ok) PrintLine("arena_used_at_check", static_cast<long>(used));
  return 0;
}

int main() {
  RegisterDebugLogCallback(Log);
  static char cmdline[512];
  if (sh_cmdline(cmdline, sizeof cmdline) < 0) {
    sh_print("error no command line\n");
    return 1;
  }
  // argv[0] is the image path; then the mode and its arguments.
  char* words[6] = {};
  int count = 0;
  for (char* p = strtok(cmdline, " "); p != nullptr && count < 6; p = strtok(nullptr, " ")) words[count++] = p;
  if (!runner::LoadModel(count > 0 ? words[count - 1] : nullptr, &g_model)) return 1;
  if (g_model->version() != TFLITE_SCHEMA_VERSION) {
    sh_print("error the model's schema version is not the one this TFLM reads\n");
    return 1;
  }
  if (runner::RegisterOps(g_resolver) != kTfLiteOk) {
    sh_print("error registering the operators failed\n");
    return 1;
  }
  int status = 1;
  if (count >= 4 && strcmp(words[1], "run") == 0) {
    status = RunSamples(strtoul(words[2], nullptr, 10), words[3]);
  } else if (count >= 3 && strcmp(words[1], "alloc") == 0) {
    status = CheckExact(strtoul(words[2], nullptr, 10), false);
  } else if (count >= 3 && strcmp(words[1], "check") == 0) {
    status = CheckExact(strtoul(words[2], nullptr, 10), true);
  } else {
    sh_print("error usage: run ARENA INPUTS | alloc ARENA | check ARENA\n");
  }
  PrintLine("stack_bytes", static_cast<long>(stack_high_water()));
  sh_print("done\n");
  return status;
}
