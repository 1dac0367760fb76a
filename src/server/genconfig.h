/* `realtime genconfig` (genconfig.c). */
#ifndef RT_SERVER_GENCONFIG_H
#define RT_SERVER_GENCONFIG_H

#include <stdio.h>

/** Writes a starter configuration (JSON, random API key and token secret) to out. 0, or -1 without randomness. */
int rt_genconfig(FILE *out);

#endif
