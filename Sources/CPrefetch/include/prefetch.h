#ifndef BACKORDER_PREFETCH_H
#define BACKORDER_PREFETCH_H

/// Asks the processor to bring the cache line holding `address` in, without waiting for
/// it: a walk through memory in an order the hardware cannot predict (a memtable's
/// entries in key order) asks for the line it will need a few steps ahead. Swift has no
/// prefetch; a load whose value is used stalls retirement until the line arrives. Never
/// faults, whatever the address.
static inline void backorder_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
