public import SluiceAPI
import SluiceCompression
public import SluiceWire

/// How a `Producer` batches, waits and retries (docs/client.md lists every setting).
public struct ProducerConfiguration: Sendable {
    /// What the broker confirms before a record counts as delivered. With `.none` nothing is
    /// confirmed: a delivery completes once the batch is written to the connection, with
    /// offset -1.
    public var acks: Acks = .all
    /// How long a partition's open batch waits for more records before it is sent. 0 sends
    /// as soon as the partition has no batch in flight (records still gather meanwhile).
    public var linger: Duration = .milliseconds(5)
    /// A batch is closed once its serialized records reach this size, or the topic's
    /// limit if that is smaller: `max.message.bytes` and `segment.bytes` less the 64-byte
    /// stored header, read from DescribeTopic. A single record bigger than that travels
    /// alone (and the broker refuses it if it exceeds the topic's limit). Only a full batch
    /// joins batches in flight (`PartitionAccumulator`), so this bounds a batch under
    /// load, not at a low rate: an idempotent producer keeps up to five of them in flight,
    /// and what a partition takes per round trip is about five times this.
    public var maxBatchBytes: Int = 256 * 1024
    /// How long a topic's description (partition count, batch limits) is used before it
    /// is read again, like Kafka's `metadata.max.age.ms`: partitions added by
    /// CreatePartitions receive records at most this long after they exist.
    public var metadataMaxAge: Duration = .seconds(300)
    /// How long `send`/`enqueue` keep trying to read a topic's description while the broker
    /// cannot be reached (started after the producer, restarting), like Kafka's
    /// `max.block.ms`; then they fail with `ProducerError.transport`. An unknown topic fails
    /// at once.
    public var maxBlock: Duration = .seconds(60)
    /// Compression of each batch's records (attribute bits 0-2); the broker stores the
    /// compressed bytes as they arrive and consumers decompress.
    public var compression: RecordCompression = .none
    /// The codec's level; nil is its default (zstd 3, lz4 0). Clamped to `compression.levels`.
    public var compressionLevel: Int?
    /// Bound on record bytes accepted but not yet answered, across all partitions.
    public var maxBufferedBytes: Int = 32 * 1024 * 1024
    /// What `send`/`enqueue` do when `maxBufferedBytes` is reached.
    public var whenBufferFull: BufferFullBehaviour = .block
    /// From `enqueue` to the final answer, retries included; past it the delivery fails
    /// with `ProducerError.deliveryTimedOut`.
    public var deliveryTimeout: Duration = .seconds(120)
    /// How long the broker may take to satisfy `acks` (sent as `timeout_ms`).
    public var requestTimeout: Duration = .seconds(30)
    /// Pause before a batch is retried; doubles per attempt up to `maxRetryBackoff`.
    public var retryBackoff: Duration = .milliseconds(100)
    public var maxRetryBackoff: Duration = .seconds(1)

    public enum BufferFullBehaviour: Sendable, Equatable {
        /// Suspend the caller until answers free enough space (or the delivery timeout passes).
        case block
        /// Throw `ProducerError.bufferFull` at once.
        case failFast
    }

    public init() {}

    /// The defaults above with `profile`'s settings on top (docs/profiles.md); set fields
    /// afterwards to override single settings. `acks` is never changed by a profile.
    ///
    /// | setting          | default | latency | throughput |
    /// |------------------|---------|---------|------------|
    /// | linger           | 5 ms    | 0       | 20 ms      |
    /// | maxBatchBytes    | 256 KiB | 64 KiB  | 512 KiB    |
    /// | compression      | none    | none    | lz4        |
    /// | maxBufferedBytes | 32 MiB  | 32 MiB  | 128 MiB    |
    public init(profile: PerformanceProfile) {
        switch profile {
        case .latency:
            linger = .zero
            maxBatchBytes = 64 * 1024
        case .throughput:
            linger = .milliseconds(20)
            maxBatchBytes = 512 * 1024
            compression = .lz4
            maxBufferedBytes = 128 * 1024 * 1024
        }
    }

    /// `init(profile: .latency)`.
    public static var latency: ProducerConfiguration { ProducerConfiguration(profile: .latency) }

    /// `init(profile: .throughput)`.
    public static var throughput: ProducerConfiguration { ProducerConfiguration(profile: .throughput) }

    /// Exactly-once publish (docs/idempotence.md): the broker deduplicates retried batches
    /// by a per-partition sequence, so a retry after a lost answer is stored once, and up
    /// to `maxInFlightPerPartition` batches may be in flight per partition without a retry
    /// reordering them. `true` forces `acks` to all; nil (the default) means on exactly when
    /// `acks` is all, as Kafka 3 does: a producer asking for less than all did not ask for
    /// the broker's durable answer idempotence needs. `false` turns it off.
    public var idempotent: Bool?
    /// With idempotence: batches per partition sent before the first is answered (Kafka's
    /// `max.in.flight.requests.per.connection`, 5). The broker remembers each producer's
    /// last five batches per partition (`StorageLimits.producerRetainedBatches`), so a
    /// retry of any batch still in flight is recognised; more than that is refused by
    /// `Producer`. Without idempotence one batch is in flight per partition, whatever this
    /// says: a retry behind a later batch would reorder the partition.
    public var maxInFlightPerPartition: Int = 5

    /// Whether this producer is idempotent: `idempotent`, or when nil, `acks` being all.
    public var isIdempotent: Bool { idempotent ?? (acks == .all) }

    /// The most batches one partition has in flight at once.
    var inFlightLimit: Int { isIdempotent ? maxInFlightPerPartition : 1 }
    /// With `idempotent`: a stable name, so a restarted producer gets the same id back
    /// with a higher epoch, fencing its older incarnation. nil: a fresh id per producer.
    public var producerName: String?
}

/// Where a record landed.
public struct RecordMetadata: Sendable, Equatable {
    public var topic: String
    public var partition: Int
    /// -1 with `acks` none.
    public var offset: Int64
    /// The record's timestamp: the broker's append time for LogAppendTime topics, else the
    /// producer's (CreateTime).
    public var timestampMs: Int64

    /// For tests of code that handles answers: an answer as the producer would give it.
    public init(topic: String, partition: Int, offset: Int64, timestampMs: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestampMs = timestampMs
    }
}

/// Why a record was not delivered.
public enum ProducerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The broker refused the batch with a non-retriable error.
    case refused(ErrorCode, String)
    /// Retriable failures went on past `deliveryTimeout`; `last` says which.
    case deliveryTimedOut(last: String)
    /// `maxBufferedBytes` is reached and `whenBufferFull` is `.failFast`.
    case bufferFull
    /// One record is bigger than `maxBufferedBytes`.
    case recordTooLarge(bytes: Int, limit: Int)
    /// The topic does not exist.
    case unknownTopic(String)
    /// The partition is not below the topic's partition count.
    case unknownPartition(topic: String, partition: Int, partitionCount: Int)
    /// The broker could not be reached or a gRPC call failed in a way retrying cannot fix:
    /// `status` is the call's status (its code says which: UNAVAILABLE, DEADLINE_EXCEEDED,
    /// PERMISSION_DENIED, ...), `context` what the producer was doing.
    case transport(GRPCStatus, context: String)
    /// `close()` was called.
    case closed
    /// A record header key holds a NUL byte: it would be cut there on the wire, and
    /// consumers refuse such batches.
    case invalidHeaderKey(String)
    /// The configuration cannot work (a size that is not positive, ...); thrown by the first
    /// `send` or `enqueue`.
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case .refused(let code, let message): "refused by the broker: \(code)\(message.isEmpty ? "" : ": \(message)")"
        case .deliveryTimedOut(let last): "not delivered within the delivery timeout (last error: \(last))"
        case .bufferFull: "the producer's buffer is full"
        case .recordTooLarge(let bytes, let limit): "a record of \(bytes) bytes is larger than the producer's buffer (\(limit) bytes)"
        case .unknownTopic(let topic): "topic \(topic) does not exist"
        case .unknownPartition(let topic, let partition, let count): "topic \(topic) has no partition \(partition) (it has \(count))"
        case .transport(let status, let context):
            "\(context): \(status.message.isEmpty ? "\(status.code)" : "\(status.message) (\(status.code))")"
        case .closed: "the producer is closed"
        case .invalidConfiguration(let reason): "invalid producer configuration: \(reason)"
        case .invalidHeaderKey(let key):
            "record header key \"\(key.prefix(64).unicodeScalars.map { $0 == "\0" ? "\\0" : String($0) }.joined())\" contains a NUL byte"
        }
    }

    /// Errors worth retrying: the batch may succeed unchanged later.
    static func isRetriable(_ code: ErrorCode) -> Bool {
        switch code {
        case .notLeader, .requestTimedOut, .throttled, .notEnoughReplicas: true
        default: false
        }
    }
}
