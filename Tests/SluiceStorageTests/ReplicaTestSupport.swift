import Foundation
import NIOCore
import SluiceChecksum
@testable import SluiceStorage

/// A stored batch as a leader's log would hold it (header sealed with its CRC), for
/// feeding `appendReplicated` batches no log produced: a gap, an older epoch.
func storedBatch(baseOffset: Int64, leaderEpoch: Int32, _ payload: [UInt8], count: Int32 = 1) -> ByteBuffer {
    var header = BatchHeader(
        attributes: 0, recordsLength: UInt32(payload.count), recordCount: count, baseOffset: baseOffset,
        firstTimestamp: 1_000, maxTimestamp: 1_000, producerId: -1, leaderEpoch: leaderEpoch, baseSequence: -1,
        producerEpoch: -1, recordsCRC: CRC32C.checksum(payload))
    header.headerCRC = header.computeHeaderCRC()
    var buffer = ByteBufferAllocator().buffer(capacity: BatchHeader.size + payload.count)
    buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: BatchHeader.size) { raw in
        header.encode(into: raw)
        return BatchHeader.size
    }
    buffer.writeBytes(payload)
    return buffer
}

/// `batches` back to back, as one Replicate answer carries them.
func concatenated(_ batches: [ByteBuffer]) -> ByteBuffer {
    var all = ByteBufferAllocator().buffer(capacity: batches.reduce(0) { $0 + $1.readableBytes })
    for var batch in batches { all.writeBuffer(&batch) }
    return all
}

/// `buffer` with the byte at `index` (from its reader index) flipped.
func flippingByte(_ buffer: ByteBuffer, at index: Int) -> ByteBuffer {
    var copy = buffer
    let at = copy.readerIndex + index
    copy.setInteger(copy.getInteger(at: at, as: UInt8.self)! ^ 0x01, at: at)
    return copy
}

/// Copies every batch of `leader` from `offset` into `follower` with `appendReplicated`,
/// `maxBytes` per read (as a follower fetches), up to `endOffset` (default: the leader's end).
func replicate(
    from leader: PartitionLog, to follower: PartitionLog, maxBytes: Int, upTo endOffset: Int64? = nil
) throws {
    let end = endOffset ?? leader.logEndOffset
    while follower.logEndOffset < end {
        let read = try leader.read(from: follower.logEndOffset, maxBytes: maxBytes, upTo: end)
        _ = try follower.appendReplicated(read.batches)
    }
}

/// The name and bytes of every segment and index file of a log directory.
func segmentFiles(in directory: String) throws -> [String: Data] {
    var files: [String: Data] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: directory)
    where name.hasSuffix(".log") || name.hasSuffix(".index") || name.hasSuffix(".timeindex") {
        files[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
    }
    return files
}

func replicatedConfig(fsync: FsyncPolicy = .never, segmentBytes: Int64 = 1 << 20) -> LogConfig {
    var config = smallConfig(segmentBytes: segmentBytes, fsync: fsync)
    config.replicated = true
    return config
}
