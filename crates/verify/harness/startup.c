/* tinyq verify: reset and fault handling for a bare-metal Cortex-M4 image on QEMU mps2-an386.
 * Copies .data, clears .bss, fills the free stack with a pattern (for the stack high-water
 * mark), turns the FPU on (the image is built hard-float), runs C++ constructors, calls main()
 * and passes its return value to QEMU as the exit status. A fault prints the faulting PC and
 * exits with status 99. */
#include <stdint.h>
#include "semihosting.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern uint32_t __stack_bottom, __stack_top;
extern void (*__init_array_start[])(void), (*__init_array_end[])(void);
int main(void);

#define STACK_PATTERN 0x5AA5C33Cu

__attribute__((optimize("no-tree-loop-distribute-patterns"))) void reset_handler(void) {
    for (uint32_t *from = &__data_load, *to = &__data_start; to < &__data_end;) *to++ = *from++;
    for (uint32_t *p = &__bss_start; p < &__bss_end;) *p++ = 0;
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = &__stack_bottom; p < sp - 32; ++p) *p = STACK_PATTERN;
    /* CPACR: full access to coprocessors 10 and 11 (the FPU). */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm__ volatile("dsb\n isb");
    for (void (**ctor)(void) = __init_array_start; ctor < __init_array_end; ++ctor) (*ctor)();
    sh_exit(main());
}

/* Bytes of stack ever written since reset (from the bottom, the first overwritten pattern). */
uint32_t stack_high_water(void) {
    uint32_t *p = &__stack_bottom;
    while (p < &__stack_top && *p == STACK_PATTERN) ++p;
    return (uint32_t)((uint8_t *)&__stack_top - (uint8_t *)p);
}

void report_fault(const uint32_t *frame) {
    sh_print("fault at pc ");
    sh_print_int((int32_t)frame[6]);
    sh_print("\n");
    sh_exit(99);
}

__attribute__((naked)) void fault_handler(void) {
    __asm__ volatile("tst lr, #4\n ite eq\n mrseq r0, msp\n mrsne r0, psp\n b report_fault\n");
}

void unexpected_interrupt(void) {
    sh_print("unexpected interrupt\n");
    sh_exit(98);
}

__attribute__((section(".vectors"), used)) const void *const vector_table[16] = {
    &__stack_top,         reset_handler,        unexpected_interrupt, fault_handler,
    fault_handler,        fault_handler,        fault_handler,        0,
    0,                    0,                    0,                    unexpected_interrupt,
    unexpected_interrupt, 0,                    unexpected_interrupt, unexpected_interrupt,
};
