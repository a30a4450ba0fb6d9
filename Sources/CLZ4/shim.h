#ifndef SLUICE_CLZ4_SHIM_H
#define SLUICE_CLZ4_SHIM_H
// The one C header SluiceCompression sees of liblz4 (Debian liblz4-dev, 1.9): the LZ4
// frame format, which carries its own content size and checksums, as Kafka uses it.
#include <lz4frame.h>
#endif
