#ifndef BACKORDER_MALLOC_TUNING_H
#define BACKORDER_MALLOC_TUNING_H

/// Caps glibc's malloc arenas at `arenas` (mallopt M_ARENA_MAX): returns 1 when set, 0 when
/// refused, and 0 on a C library without the setting.
int backorder_limit_malloc_arenas(int arenas);

/// Returns the heap's free pages to the operating system (glibc's malloc_trim); 1 if any
/// were returned. A no-op on other C libraries (musl has no malloc_trim).
int backorder_trim_malloc(void);

#endif
