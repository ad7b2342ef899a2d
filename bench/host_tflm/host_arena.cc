// The smallest tensor arena TFLM accepts for a model, built natively for this host (64-bit):
// a plain MicroAllocator (no recording, no compression), as a firmware build of the same sources
// would have. Usage: host_arena MODEL.tflite  →  {"min_arena": N, "arena_used": M}
// Each probe runs in a forked child (some kernels' Prepare dereferences a temporary tensor the
// allocator could not give them, so a too-small arena can crash): it builds an interpreter on a
// fresh 16-byte aligned buffer, allocates the tensors and invokes once on zero inputs. The
// smallest size that succeeds is found by bisection.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#include "host_ops.inc"  // kHostOps and AddHostOps(resolver), written by bench/host_tflm.py

using Resolver = tflite::MicroMutableOpResolver<kHostOps>;

static bool FitsHere(const tflite::Model* model, const Resolver& resolver, size_t size, size_t* used) {
  auto* arena = static_cast<uint8_t*>(::operator new(size, std::align_val_t(16)));
  bool ok = false;
  {
    tflite::MicroInterpreter interpreter(model, resolver, arena, size);
    if (interpreter.AllocateTensors() == kTfLiteOk) {
      for (size_t i = 0; i < interpreter.inputs_size(); ++i) {
        TfLiteTensor* t = interpreter.input(i);
        std::memset(t->data.raw, 0, t->bytes);
      }
      ok = interpreter.Invoke() == kTfLiteOk;
      *used = interpreter.arena_used_bytes();
    }
  }
  ::operator delete(arena, std::align_val_t(16));
  return ok;
}

// FitsHere in a child process; `used` comes back through a pipe.
static bool Fits(const tflite::Model* model, const Resolver& resolver, size_t size, size_t* used) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    size_t u = 0;
    bool ok = FitsHere(model, resolver, size, &u);
    if (ok && write(fds[1], &u, sizeof u) != static_cast<ssize_t>(sizeof u)) ok = false;
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  size_t u = 0;
  bool got = read(fds[0], &u, sizeof u) == static_cast<ssize_t>(sizeof u);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  bool ok = got && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (ok) *used = u;
  return ok;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: host_arena MODEL.tflite\n");
    return 2;
  }
  FILE* f = std::fopen(argv[1], "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "cannot open %s\n", argv[1]);
    return 2;
  }
  std::vector<uint8_t> bytes;
  uint8_t buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  std::fclose(f);
  const tflite::Model* model = tflite::GetModel(bytes.data());
  static Resolver resolver;
  AddHostOps(resolver);
  size_t used = 0;
  size_t hi = 1 << 12;
  while (!Fits(model, resolver, hi, &used)) {
    if (hi >= (size_t{1} << 28)) {
      std::printf("{\"min_arena\": null, \"arena_used\": null}\n");
      return 1;
    }
    hi *= 2;
  }
  size_t lo = 0;  // lo fails (or is 0), hi fits
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    size_t u = 0;
    if (Fits(model, resolver, mid, &u)) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  Fits(model, resolver, hi, &used);
  std::printf("{\"min_arena\": %zu, \"arena_used\": %zu}\n", hi, used);
  return 0;
}
