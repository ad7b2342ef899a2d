// The two platform hooks TFLM leaves to each target, for a native host build: log lines go to
// stderr (silenced unless HOST_TFLM_LOG is set, since bisection makes many failing probes), and
// no timer.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include "tensorflow/lite/micro/debug_log.h"
#include "tensorflow/lite/micro/micro_time.h"

extern "C" void DebugLog(const char* format, va_list args) {
  static const bool on = std::getenv("HOST_TFLM_LOG") != nullptr;
  if (on) std::vfprintf(stderr, format, args);
}

extern "C" int DebugVsnprintf(char* buffer, size_t buf_size, const char* format, va_list vlist) {
  return std::vsnprintf(buffer, buf_size, format, vlist);
}

namespace tflite {
uint32_t ticks_per_second() { return 0; }
uint32_t GetCurrentTimeTicks() { return 0; }
}  // namespace tflite
