// tinyq verify: the C++ runtime hooks a TFLM image needs when libstdc++ is not linked. TFLM
// never frees heap memory, but virtual destructors still name operator delete.
#include <cstddef>
#include "semihosting.h"

void operator delete(void*) noexcept { sh_print("operator delete\n"); sh_exit(97); }
void operator delete(void*, std::size_t) noexcept { sh_print("operator delete\n"); sh_exit(97); }
extern "C" void __cxa_pure_virtual() { sh_print("pure virtual call\n"); sh_exit(96); }
extern "C" void abort(void) { sh_print("abort\n"); sh_exit(95); }
void* __dso_handle = nullptr;
