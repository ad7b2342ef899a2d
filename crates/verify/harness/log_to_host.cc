// tinyq verify: sends TFLM's MicroPrintf output to the host over semihosting, for programs
// (like the exported main.cpp) that do not register a DebugLog callback themselves.
#include "semihosting.h"
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"

__attribute__((constructor)) static void SendLogToHost() { RegisterDebugLogCallback(sh_print); }
