/*
 * The process's file descriptor table, sized once at startup.
 */
#ifndef RT_NET_FDTABLE_H
#define RT_NET_FDTABLE_H

/** Largest table reserved up front (entries; 8 bytes of kernel memory each). */
#define RT_FDTABLE_RESERVE_MAX 65536

/**
 * Grows the descriptor table to the open-file limit (at most RT_FDTABLE_RESERVE_MAX) now. Call it while the
 * process has one thread. Returns the number of descriptors the table holds, or 0 when it could not grow it.
 */
int rt__fdtable_reserve(void);

#endif
