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

// The crc32 instruction has a latency of three cycles but issues one per cycle, so
// one dependent chain runs at a third of its speed. The fast path therefore runs
// three independent chains over three adjacent blocks and joins them: the CRC
// register is linear over GF(2), so the state after A then B equals the state after
// A advanced over |B| zero bytes, XOR the state of B started from zero. Advancing
// over a fixed number of zeros is a 32x32 bit matrix, applied bytewise through four
// 256-entry tables built at load time (the method of Mark Adler's crc32c.c).
#define SLUICE_CRC32C_LONG 8192
#define SLUICE_CRC32C_SHORT 256

static uint32_t sluice_crc32c_long[4][256];
static uint32_t sluice_crc32c_short[4][256];

static uint32_t gf2_matrix_times(const uint32_t *matrix, uint32_t vector) {
    uint32_t sum = 0;
    while (vector) {
        if (vector & 1) sum ^= *matrix;
        vector >>= 1;
        matrix++;
    }
    return sum;
}

static void gf2_matrix_square(uint32_t *square, const uint32_t *matrix) {
    for (int n = 0; n < 32; n++) square[n] = gf2_matrix_times(matrix, matrix[n]);
}

// The operator that advances a CRC register over `length` zero bytes (a power of two).
static void sluice_crc32c_zeros_operator(uint32_t *even, size_t length) {
    uint32_t odd[32];
    odd[0] = SLUICE_CRC32C_POLY;  // one zero bit
    uint32_t row = 1;
    for (int n = 1; n < 32; n++) {
        odd[n] = row;
        row <<= 1;
    }
    gf2_matrix_square(even, odd);  // two zero bits
    gf2_matrix_square(odd, even);  // four zero bits
    // Each squaring doubles the span: odd now covers one zero byte.
    do {
        gf2_matrix_square(even, odd);
        length >>= 1;
        if (length == 0) return;
        gf2_matrix_square(odd, even);
        length >>= 1;
    } while (length);
    for (int n = 0; n < 32; n++) even[n] = odd[n];
}

static void sluice_crc32c_zeros(uint32_t zeros[][256], size_t length) {
    uint32_t op[32];
    sluice_crc32c_zeros_operator(op, length);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = gf2_matrix_times(op, n);
        zeros[1][n] = gf2_matrix_times(op, n << 8);
        zeros[2][n] = gf2_matrix_times(op, n << 16);
        zeros[3][n] = gf2_matrix_times(op, n << 24);
    }
}

static uint32_t sluice_crc32c_shift(uint32_t zeros[][256], uint32_t crc) {
    return zeros[0][crc & 0xFF] ^ zeros[1][(crc >> 8) & 0xFF] ^ zeros[2][(crc >> 16) & 0xFF] ^ zeros[3][crc >> 24];
}

__attribute__((constructor))
static void sluice_crc32c_init_shifts(void) {
    sluice_crc32c_zeros(sluice_crc32c_long, SLUICE_CRC32C_LONG);
    sluice_crc32c_zeros(sluice_crc32c_short, SLUICE_CRC32C_SHORT);
}

static inline uint64_t sluice_load64(const unsigned char *p) {
    uint64_t word;
    memcpy(&word, p, 8);
    return word;
}

__attribute__((target("sse4.2")))
static uint32_t sluice_crc32c_update_sse42(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = (const unsigned char *)bytes;
    uint64_t crc0 = ~crc;
    // One byte at a time up to an 8-byte boundary, so the main loops' loads are aligned.
    while (count > 0 && ((uintptr_t)p & 7) != 0) {
        crc0 = _mm_crc32_u8((uint32_t)crc0, *p);
        p++;
        count--;
    }
    // Three chains of LONG bytes, then of SHORT bytes, joined by shifting.
    while (count >= 3 * SLUICE_CRC32C_LONG) {
        uint64_t crc1 = 0, crc2 = 0;
        const unsigned char *end = p + SLUICE_CRC32C_LONG;
        do {
            crc0 = _mm_crc32_u64(crc0, sluice_load64(p));
            crc1 = _mm_crc32_u64(crc1, sluice_load64(p + SLUICE_CRC32C_LONG));
            crc2 = _mm_crc32_u64(crc2, sluice_load64(p + 2 * SLUICE_CRC32C_LONG));
            p += 8;
        } while (p < end);
        crc0 = sluice_crc32c_shift(sluice_crc32c_long, (uint32_t)crc0) ^ crc1;
        crc0 = sluice_crc32c_shift(sluice_crc32c_long, (uint32_t)crc0) ^ crc2;
        p += 2 * SLUICE_CRC32C_LONG;
        count -= 3 * SLUICE_CRC32C_LONG;
    }
    while (count >= 3 * SLUICE_CRC32C_SHORT) {
        uint64_t crc1 = 0, crc2 = 0;
        const unsigned char *end = p + SLUICE_CRC32C_SHORT;
        do {
            crc0 = _mm_crc32_u64(crc0, sluice_load64(p));
            crc1 = _mm_crc32_u64(crc1, sluice_load64(p + SLUICE_CRC32C_SHORT));
            crc2 = _mm_crc32_u64(crc2, sluice_load64(p + 2 * SLUICE_CRC32C_SHORT));
            p += 8;
        } while (p < end);
        crc0 = sluice_crc32c_shift(sluice_crc32c_short, (uint32_t)crc0) ^ crc1;
        crc0 = sluice_crc32c_shift(sluice_crc32c_short, (uint32_t)crc0) ^ crc2;
        p += 2 * SLUICE_CRC32C_SHORT;
        count -= 3 * SLUICE_CRC32C_SHORT;
    }
    while (count >= 8) {
        crc0 = _mm_crc32_u64(crc0, sluice_load64(p));
        p += 8;
        count -= 8;
    }
    while (count > 0) {
        crc0 = _mm_crc32_u8((uint32_t)crc0, *p);
        p++;
        count--;
    }
    return ~(uint32_t)crc0;
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
