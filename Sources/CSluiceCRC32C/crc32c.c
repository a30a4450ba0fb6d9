// Placeholder: replaced by the CRC32C implementation.
