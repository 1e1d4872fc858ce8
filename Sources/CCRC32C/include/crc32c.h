#ifndef BACKORDER_CRC32C_H
#define BACKORDER_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Extends a CRC32C (Castagnoli) checksum over `length` bytes.
/// Start with `crc = 0`; feed the result back in to checksum data in pieces.
/// Uses the SSE4.2 `crc32` instruction when the CPU has it, a table otherwise.
uint32_t backorder_crc32c_extend(uint32_t crc, const void *data, size_t length);

/// 1 when the hardware path is in use, 0 for the portable table.
int backorder_crc32c_is_hardware(void);

#ifdef __cplusplus
}
#endif

#endif
