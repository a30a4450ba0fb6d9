import Dispatch
import NIOCore
import SluiceChecksum
import SluiceStorage
import SluiceTestSupport

/// A log opened with `config` on `fileSystem` in a new temporary directory, which the
/// test removes (`defer { directory.remove() }`).
func temporaryLog(
    _ config: LogConfig = smallConfig(), fileSystem: any StorageFileSystem = PosixFileSystem()
) throws -> (directory: TemporaryDirectory, log: PartitionLog) {
    let (directory, log) = try TemporaryDirectory.holding {
        try PartitionLog.open(directory: $0.path, fileSystem: fileSystem, config: config)
    }
    return (directory, log)
}

/// A batch whose records are `payload`, with a correct CRC, timestamped now unless told.
func makeBatch(
    _ payload: [UInt8], count: Int32 = 1, firstTimestamp: Int64? = nil, maxTimestamp: Int64? = nil
) -> NewBatch {
    let firstTimestamp = firstTimestamp ?? SystemLogClock().nowMilliseconds()
    return NewBatch(
        recordCount: count, firstTimestamp: firstTimestamp, maxTimestamp: maxTimestamp ?? firstTimestamp,
        producerId: 7, producerEpoch: 1, baseSequence: 0, recordsCRC: CRC32C.checksum(payload),
        records: ByteBuffer(bytes: payload))
}

func pattern(_ seed: Int, _ size: Int) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7) }
}

func smallConfig(
    segmentBytes: Int64 = 1 << 20, indexIntervalBytes: Int = 256, fsync: FsyncPolicy = .always
) -> LogConfig {
    var config = LogConfig()
    config.segmentBytes = segmentBytes
    config.indexIntervalBytes = indexIntervalBytes
    config.fsyncPolicy = fsync
    config.retentionMs = nil
    return config
}

/// Every batch in the log from its start, read back in small steps, each verified.
func readAllBatches(_ log: PartitionLog, maxBytes: Int = 300) throws -> [StoredBatch] {
    var batches: [StoredBatch] = []
    var offset = log.logStartOffset
    while offset < log.logEndOffset {
        let result = try log.read(from: offset, maxBytes: maxBytes)
        let found = Array(StoredBatches(result.batches))
        precondition(!found.isEmpty, "a read below the log end returns at least one batch")
        for batch in found {
            precondition(batch.defect() == nil, "stored batch verifies")
            batches.append(batch)
        }
        offset = found[found.count - 1].header.nextOffset
    }
    return batches
}
