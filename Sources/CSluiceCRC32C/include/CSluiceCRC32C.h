// CRC32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), as used by
// iSCSI, ext4, Kafka's record batches and Sluice's batch headers.
//
// `crc` chains like zlib's crc32(): pass 0 to start, and the previous result to
// continue, so update(update(0, a), b) == update(0, a ++ b).
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// CRC32C of `count` bytes, continuing from `crc`. Uses the SSE4.2 crc32
/// instruction when the CPU has it, otherwise a table-driven software loop.
uint32_t sluice_crc32c_update(uint32_t crc, const void *bytes, size_t count);

/// The same result computed by the portable software loop only (for tests
/// that compare the two paths, and for benchmarks).
uint32_t sluice_crc32c_update_software(uint32_t crc, const void *bytes, size_t count);

/// 1 when `sluice_crc32c_update` uses the CPU instruction, 0 otherwise.
int sluice_crc32c_uses_hardware(void);

#ifdef __cplusplus
}
#endif
