#ifndef SLUICE_CNGHTTP2_SHIM_H
#define SLUICE_CNGHTTP2_SHIM_H
// The one C header SluiceWire sees of libnghttp2 (Debian libnghttp2-dev, 1.52+).
#include <nghttp2/nghttp2.h>
#endif
