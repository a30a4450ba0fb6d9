/// Which partition a record goes to (docs/partitioning.md, vectors in docs/test-vectors.json).
///
/// Keyed records: Kafka's rule, so keys keep their placement for users coming from Kafka:
/// `(murmur2(key) & 0x7fffffff) % partitionCount`. An empty key is a key like any other.
/// Keyless records: sticky batches; every keyless record goes to the topic's current sticky
/// partition until the batch being filled there is closed, then the next partition in
/// round-robin order becomes sticky. Batches stay full without a key ever pinning traffic.
public enum Partitioner {
    /// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`): 32-bit MurmurHash2
    /// with seed 0x9747b28c, little-endian 4-byte blocks, tail bytes folded in the
    /// reference order. Returned as the signed value Kafka prints.
    public static func murmur2<Bytes: Collection>(_ bytes: Bytes) -> Int32 where Bytes.Element == UInt8 {
        let m: UInt32 = 0x5bd1_e995
        let count = bytes.count
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: count)
        var index = bytes.startIndex
        var block: UInt32 = 0
        var inBlock = 0
        // Full 4-byte blocks; the tail (0-3 bytes) is left in `block`/`inBlock`.
        for _ in 0..<(count / 4) {
            var k: UInt32 = 0
            for shift in stride(from: 0, to: 32, by: 8) {
                k |= UInt32(bytes[index]) << UInt32(shift)
                index = bytes.index(after: index)
            }
            k &*= m
            k ^= k >> 24
            k &*= m
            h &*= m
            h ^= k
        }
        while index != bytes.endIndex {
            block |= UInt32(bytes[index]) << UInt32(8 * inBlock)
            inBlock += 1
            index = bytes.index(after: index)
        }
        if inBlock > 0 {
            h ^= block
            h &*= m
        }
        h ^= h >> 13
        h &*= m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    /// The partition of a keyed record; nil when `partitionCount` is not positive (a topic
    /// has at least one partition).
    public static func partition<Bytes: Collection>(forKey key: Bytes, partitionCount: Int) -> Int?
    where Bytes.Element == UInt8 {
        guard partitionCount > 0 else { return nil }
        return partition(forKey: key, ofPositive: partitionCount)
    }

    /// `partition(forKey:partitionCount:)` for a count known to be positive.
    static func partition<Bytes: Collection>(forKey key: Bytes, ofPositive partitionCount: Int) -> Int
    where Bytes.Element == UInt8 {
        assert(partitionCount > 0, "a topic has at least one partition")
        return Int(UInt32(bitPattern: murmur2(key)) & 0x7fff_ffff) % partitionCount
    }
}

/// The sticky partition of keyless records for one topic: a round-robin position that
/// moves on when the batch it was filling closes.
struct StickyPartition: Sendable {
    private(set) var current: Int

    init(start: Int) {
        current = start
    }

    /// The partition for the next keyless record.
    func partition(partitionCount: Int) -> Int {
        current % partitionCount
    }

    /// A batch closed on `partition`; if it was the sticky one, move to the next.
    mutating func batchClosed(on partition: Int, partitionCount: Int) {
        if partition == current % partitionCount {
            current = (current % partitionCount + 1) % partitionCount
        }
    }
}
