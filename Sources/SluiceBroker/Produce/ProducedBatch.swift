import NIOCore
import SluiceAPI
import SluiceChecksum
import SluiceCompression
import SluiceStorage

/// Checks a produced `RecordBatch` against the batch rules and the topic's settings
/// and turns it into the log's `NewBatch`. Of `records` it only counts the records
/// (walking the top-level fields of `Records`); it never decodes one.
///
/// Rules (docs/produce-subscribe.md):
/// - `format_version` 1; `record_count` >= 1; `records` not empty;
/// - attributes: bits 0-2 a known codec (0 none, 1 zstd, 2 lz4; the broker stores
///   the bytes as sent), bit 3 is broker-set (ignored on produce), bits 4
///   and up must be 0 (transactional and control batches are not supported yet);
/// - `producer_id` 0 (not idempotent), or > 0 with `producer_epoch` in 0...32767 and
///   `base_sequence` >= 0 (idempotent: the sequence and epoch rules are checked by the
///   partition as it appends, docs/idempotence.md); a negative id is INVALID_BATCH;
/// - the batch's size, the 64-byte stored header plus the `records` bytes, is at
///   most the topic's `max.message.bytes` (MESSAGE_TOO_LARGE);
/// - CreateTime: 0 <= first_timestamp_ms <= max_timestamp_ms <= 253402300799999
///   (the end of year 9999); LogAppendTime: the producer's timestamps are replaced
///   by the append time and bit 3 is set;
/// - `records_crc32c` matches `records` (checked by the log as it appends:
///   CORRUPT_BATCH);
/// - `record_count` is the number of records in `records` (decompressed first when
///   compressed, refused as MESSAGE_TOO_LARGE past `max.message.bytes`): INVALID_BATCH.
///   Offsets are assigned from `record_count`, so a batch claiming fewer records than it
///   holds would give two records one offset, and one claiming more would take offsets
///   no record holds. When this check fails the CRC is checked first, so a batch
///   damaged on the way is CORRUPT_BATCH, as it would be without the count.
enum ProducedBatch {
    static let formatVersion: UInt32 = 1
    static let codecMask: UInt32 = 0x07
    static let logAppendTimeBit: UInt32 = 0x08
    static let highestCodec: UInt32 = 2
    /// 9999-12-31T23:59:59.999Z.
    static let latestTimestampMs: Int64 = 253_402_300_799_999

    /// The batch as the log stores it, and the append time when the topic sets it.
    static func validate(
        _ batch: RecordBatch, topic: String, config: TopicConfig, nowMs: Int64
    ) -> Result<(batch: NewBatch, logAppendTimeMs: Int64?), ProduceFailure> {
        guard !InternalTopics.isInternal(topic) else {
            return .failure(.invalidBatch("topic \(BrokerError.quoting(topic)) is internal to the broker; only the broker writes it"))
        }
        guard batch.formatVersion == formatVersion else {
            return .failure(.invalidBatch("unsupported batch format_version \(batch.formatVersion); 1 is the only one defined"))
        }
        guard batch.recordCount >= 1 else {
            return .failure(.invalidBatch("record_count is 0; a batch holds at least one record"))
        }
        guard batch.recordCount <= UInt32(Int32.max) else {
            return .failure(.invalidBatch("record_count \(batch.recordCount) is above \(Int32.max)"))
        }
        guard batch.records.readableBytes > 0 else {
            return .failure(.invalidBatch("records is empty but record_count is \(batch.recordCount)"))
        }
        guard batch.attributes & ~(codecMask | logAppendTimeBit) == 0 else {
            return .failure(.invalidBatch("attributes 0x\(String(batch.attributes, radix: 16)) set reserved bits (only bits 0-3 are defined; transactional and control batches are not supported)"))
        }
        guard batch.attributes & codecMask <= highestCodec else {
            return .failure(.invalidBatch("unknown compression codec \(batch.attributes & codecMask) in attributes"))
        }
        guard batch.producerId >= 0 else {
            return .failure(.invalidBatch("producer_id \(batch.producerId) is negative; 0 means not idempotent"))
        }
        let idempotent = batch.producerId > 0
        if idempotent {
            guard (0...Int32(Int16.max)).contains(batch.producerEpoch) else {
                return .failure(.invalidBatch("producer_epoch \(batch.producerEpoch) is out of range 0...\(Int16.max)"))
            }
            guard batch.baseSequence >= 0 else {
                return .failure(.invalidBatch("base_sequence \(batch.baseSequence) is negative"))
            }
        }
        let size = BatchHeader.size + batch.records.readableBytes
        guard size <= config.maxMessageBytes else {
            return .failure(.messageTooLarge("batch of \(size) bytes (64-byte header + \(batch.records.readableBytes) record bytes) exceeds max.message.bytes \(config.maxMessageBytes) of topic \"\(topic)\""))
        }
        var attributes = batch.attributes & codecMask
        var first = batch.firstTimestampMs
        var last = batch.maxTimestampMs
        var appendTime: Int64?
        switch config.messageTimestampType {
        case .createTime:
            guard first >= 0, first <= last, last <= latestTimestampMs else {
                return .failure(.invalidBatch("timestamps out of range: need 0 <= first_timestamp_ms (\(first)) <= max_timestamp_ms (\(last)) <= \(latestTimestampMs)"))
            }
        case .logAppendTime:
            attributes |= logAppendTimeBit
            first = nowMs
            last = nowMs
            appendTime = nowMs
        }
        if let failure = countFailure(batch, topic: topic, config: config) { return .failure(failure) }
        let newBatch = NewBatch(
            attributes: UInt16(attributes), recordCount: Int32(batch.recordCount), firstTimestamp: first,
            maxTimestamp: last, producerId: idempotent ? batch.producerId : -1,
            producerEpoch: idempotent ? Int16(batch.producerEpoch) : -1, baseSequence: idempotent ? batch.baseSequence : -1,
            recordsCRC: batch.recordsCrc32c, records: batch.records)
        return .success((newBatch, appendTime))
    }

    /// Why `record_count` cannot be trusted, or nil when it is the number of records
    /// `records` holds. A compressed batch is decompressed for this, at most to the
    /// topic's `max.message.bytes` (a bomb stops there), and the output is dropped.
    static func countFailure(_ batch: RecordBatch, topic: String, config: TopicConfig) -> ProduceFailure? {
        // When the count cannot be trusted, a batch damaged on the way is CORRUPT_BATCH.
        func refused(_ failure: ProduceFailure) -> ProduceFailure {
            CRC32C.checksum(batch.records) == batch.recordsCrc32c ? failure : .corruptBatch
        }
        guard let codec = RecordCompression(attributes: batch.attributes) else {
            preconditionFailure("the codec was validated before counting")
        }
        var serialized = batch.records
        if codec != .none {
            do throws(RecordCompressionError) {
                serialized = try codec.decompress(batch.records, maxBytes: config.maxMessageBytes)
            } catch {
                if case .tooLarge = error {
                    return refused(.messageTooLarge("records decompress (\(codec)) to more than max.message.bytes \(config.maxMessageBytes) of topic \"\(topic)\""))
                }
                return refused(.invalidBatch("records cannot be decompressed: \(error)"))
            }
        }
        guard let count = Records.count(inSerialized: serialized) else {
            return refused(.invalidBatch("records is not a serialized Records message (proto/sluice/v1/records.proto)\(codec == .none ? "" : " after \(codec) decompression")"))
        }
        guard count == Int(batch.recordCount) else {
            return refused(.invalidBatch("record_count is \(batch.recordCount) but records holds \(count) record\(count == 1 ? "" : "s")"))
        }
        return nil
    }
}
