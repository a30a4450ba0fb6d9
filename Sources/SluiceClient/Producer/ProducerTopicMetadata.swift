import SluiceAPI

/// What a producer knows of one topic from DescribeTopic, and until when it trusts it.
///
/// Two things come from the broker rather than from the producer's own settings:
/// - the partition count, which CreatePartitions raises while producers run: the
///   description is refreshed once it is older than `metadataMaxAge` (Kafka's
///   `metadata.max.age.ms`), so new partitions get records within that interval;
/// - the largest batch the topic stores. The broker refuses a batch whose 64-byte
///   stored header plus records exceed `max.message.bytes` (MESSAGE_TOO_LARGE), or
///   which would not fit in one segment (`segment.bytes`); so batches are closed at the
///   smaller of `maxBatchBytes` and both limits less the header, and a topic with small
///   limits works without the caller knowing them.
struct ProducerTopicMetadata: Sendable, Equatable {
    var partitionCount: Int
    /// Records bytes of one batch the topic accepts; nil when the description says nothing.
    var topicBatchLimit: Int?
    /// When the description was fetched (or a failed refresh was last tried).
    var fetchedAt: ContinuousClock.Instant

    /// The stored batch header the broker puts in front of the records (docs/storage-format.md).
    static let storedHeaderBytes = 64

    init(_ description: TopicDescription, fetchedAt: ContinuousClock.Instant) {
        partitionCount = Int(description.partitionCount)
        topicBatchLimit = Self.batchLimit(configs: description.configs)
        self.fetchedAt = fetchedAt
    }

    /// The records bytes of the largest batch a topic with `configs` accepts.
    static func batchLimit(configs: [String: String]) -> Int? {
        let limits = ["max.message.bytes", "segment.bytes"].compactMap { configs[$0].flatMap { Int64($0) } }
        guard let smallest = limits.min() else { return nil }
        return Int(clamping: max(1, smallest - Int64(storedHeaderBytes)))
    }

    /// Where a batch for this topic is closed: the producer's own bound, lowered to the topic's.
    func batchBytes(producerMaximum: Int) -> Int {
        min(producerMaximum, topicBatchLimit ?? producerMaximum)
    }

    func isFresh(now: ContinuousClock.Instant, maxAge: Duration) -> Bool {
        now < fetchedAt.advanced(by: maxAge)
    }
}
