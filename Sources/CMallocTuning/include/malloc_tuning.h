#ifndef BACKORDER_MALLOC_TUNING_H
#define BACKORDER_MALLOC_TUNING_H

/// Caps glibc's malloc arenas at `arenas` (mallopt M_ARENA_MAX): returns 1 when set, 0 when
/// refused, and 0 on a C library without the setting.
int backorder_limit_malloc_arenas(int arenas);

#endif
