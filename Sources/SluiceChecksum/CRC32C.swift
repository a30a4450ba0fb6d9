import CSluiceCRC32C
public import NIOCore

/// CRC32C (Castagnoli), the checksum of every stored batch header and record bytes.
///
/// `seed` chains like zlib's `crc32`: start from 0 and pass the previous result to
/// continue, so `checksum(b, seed: checksum(a)) == checksum(a + b)`. That lets the
/// log checksum a header in two pieces around the field that holds the checksum.
public enum CRC32C {
    /// Whether the SSE4.2 instruction is in use (otherwise a table-driven loop).
    public static var usesHardware: Bool { sluice_crc32c_uses_hardware() != 0 }

    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return seed }
        return sluice_crc32c_update(seed, base, bytes.count)
    }

    /// The readable bytes of `buffer`, without moving its reader index.
    public static func checksum(_ buffer: ByteBuffer, seed: UInt32 = 0) -> UInt32 {
        buffer.withUnsafeReadableBytes { checksum($0, seed: seed) }
    }

    public static func checksum(_ bytes: some Sequence<UInt8>, seed: UInt32 = 0) -> UInt32 {
        let contiguous = Array(bytes)
        return contiguous.withUnsafeBytes { checksum($0, seed: seed) }
    }

    /// The software loop alone, whatever the CPU: for tests comparing both paths.
    public static func softwareChecksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return seed }
        return sluice_crc32c_update_software(seed, base, bytes.count)
    }
}
