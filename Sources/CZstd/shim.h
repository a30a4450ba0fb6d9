#ifndef SLUICE_CZSTD_SHIM_H
#define SLUICE_CZSTD_SHIM_H
// The one C header SluiceCompression sees of libzstd (Debian libzstd-dev, 1.5).
#include <zstd.h>
#endif
