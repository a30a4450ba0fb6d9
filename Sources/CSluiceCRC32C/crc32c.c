// CRC32C with a runtime choice between the SSE4.2 instruction and software.
//
// The fast function is compiled for SSE4.2 through a target attribute, not a
// command-line flag, so the rest of the library stays runnable on any x86-64
// and the package needs no unsafeFlags (which would block its use as a
// dependency). It is only called after __builtin_cpu_supports says so.
#include "CSluiceCRC32C.h"

#include <string.h>

#define SLUICE_CRC32C_POLY 0x82F63B78u  // Castagnoli, bit-reflected

// Slicing-by-8 tables: table[k][b] is the CRC of byte b followed by k zero bytes,
// so eight table lookups fold in eight input bytes per step.
static uint32_t sluice_crc32c_table[8][256];
static int sluice_crc32c_hardware;

__attribute__((constructor))
static void sluice_crc32c_init(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t crc = b;
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 1) ? (crc >> 1) ^ SLUICE_CRC32C_POLY : crc >> 1;
        }
        sluice_crc32c_table[0][b] = crc;
    }
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t crc = sluice_crc32c_table[0][b];
        for (int k = 1; k < 8; k++) {
            crc = sluice_crc32c_table[0][crc & 0xFF] ^ (crc >> 8);
            sluice_crc32c_table[k][b] = crc;
        }
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    sluice_crc32c_hardware = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#else
    sluice_crc32c_hardware = 0;
#endif
}

uint32_t sluice_crc32c_update_software(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = (const unsigned char *)bytes;
    uint32_t c = ~crc;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);  // unaligned-safe; the tables assume little-endian order
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        word = __builtin_bswap64(word);
#endif
        uint32_t low = (uint32_t)word ^ c;
        uint32_t high = (uint32_t)(word >> 32);
        c = sluice_crc32c_table[7][low & 0xFF] ^ sluice_crc32c_table[6][(low >> 8) & 0xFF] ^
            sluice_crc32c_table[5][(low >> 16) & 0xFF] ^ sluice_crc32c_table[4][low >> 24] ^
            sluice_crc32c_table[3][high & 0xFF] ^ sluice_crc32c_table[2][(high >> 8) & 0xFF] ^
            sluice_crc32c_table[1][(high >> 16) & 0xFF] ^ sluice_crc32c_table[0][high >> 24];
        p += 8;
        count -= 8;
    }
    while (count > 0) {
        c = sluice_crc32c_table[0][(c ^ *p) & 0xFF] ^ (c >> 8);
        p++;
        count--;
    }
    return ~c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
static uint32_t sluice_crc32c_update_sse42(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = (const unsigned char *)bytes;
    uint64_t c = ~crc;
    // One byte at a time up to an 8-byte boundary, so the main loop's loads are aligned.
    while (count > 0 && ((uintptr_t)p & 7) != 0) {
        c = _mm_crc32_u8((uint32_t)c, *p);
        p++;
        count--;
    }
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = _mm_crc32_u64(c, word);
        p += 8;
        count -= 8;
    }
    while (count > 0) {
        c = _mm_crc32_u8((uint32_t)c, *p);
        p++;
        count--;
    }
    return ~(uint32_t)c;
}
#endif

uint32_t sluice_crc32c_update(uint32_t crc, const void *bytes, size_t count) {
#if defined(__x86_64__)
    if (sluice_crc32c_hardware) {
        return sluice_crc32c_update_sse42(crc, bytes, count);
    }
#endif
    return sluice_crc32c_update_software(crc, bytes, count);
}

int sluice_crc32c_uses_hardware(void) {
    return sluice_crc32c_hardware;
}
