/* tinyq verify: the line printer the exported interpreter-free main.c calls, over semihosting. */
#include "semihosting.h"

void tq_log(const char *line);

void tq_log(const char *line) { sh_print(line); }
