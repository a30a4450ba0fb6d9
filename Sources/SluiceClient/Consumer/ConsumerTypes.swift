public import NIOCore
public import SluiceAPI
public import SluiceWire

/// One record as a consumer hands it out.
public struct ConsumerRecord: Sendable, Equatable {
    public var topic: String
    public var partition: Int
    public var offset: Int64
    /// Milliseconds since the Unix epoch: the producer's (CreateTime) or the broker's
    /// append time (LogAppendTime topics).
    public var timestampMs: Int64
    /// nil for a record produced without a key (not the same as an empty key).
    public var key: ByteBuffer?
    public var value: ByteBuffer
    public var headers: [RecordHeader]

    public init(topic: String, partition: Int, offset: Int64, timestampMs: Int64, key: ByteBuffer?, value: ByteBuffer, headers: [RecordHeader]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestampMs = timestampMs
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// Where a consumer starts reading a partition.
public enum ConsumerStart: Sendable, Equatable {
    /// The oldest retained record.
    case earliest
    /// Only records appended after the subscription starts.
    case latest
    /// This offset exactly: records before it in the same batch are skipped by the client.
    case offset(Int64)
    /// The first record whose timestamp is at or after this time (ms since the epoch).
    case timestamp(Int64)

    var protobuf: StartPosition {
        switch self {
        case .earliest: StartPosition(position: .earliest(true))
        case .latest: StartPosition(position: .latest(true))
        case .offset(let offset): StartPosition(position: .offset(offset))
        case .timestamp(let milliseconds): StartPosition(position: .timestampMs(milliseconds))
        }
    }
}

public struct ConsumerConfiguration: Sendable {
    /// Push batching on the broker (SubscribeRequest.min_bytes / max_wait_ms); 0 and zero
    /// push every batch as soon as it is appended.
    public var minBytes: UInt32 = 0
    public var maxWait: Duration = .zero
    /// Upper bound on one push; 0 is the broker's default (1 MiB).
    public var maxBytes: UInt32 = 0
    /// Largest decompressed `records` of one batch the consumer accepts: a zstd or lz4
    /// batch that would inflate past it is a `corruptBatch` error, not an allocation.
    public var maxDecompressedBatchBytes: Int = RecordBatchCodec.defaultMaxDecompressedBytes
    /// Reconnects in a row without receiving anything before giving up.
    public var maxReconnectAttempts = 8
    /// Pause before the first reconnect; doubles per attempt up to `maxReconnectBackoff`.
    public var reconnectBackoff: Duration = .milliseconds(100)
    public var maxReconnectBackoff: Duration = .seconds(5)
    /// Bound on one attempt to connect: TCP connect plus the broker's HTTP/2 SETTINGS. An
    /// attempt past it fails like an unreachable broker and counts towards
    /// `maxReconnectAttempts`, so a first `next()` against a broker that never answers throws
    /// `reconnectsExhausted` after at most (`maxReconnectAttempts` + 1) attempts.
    public var connectTimeout: Duration = .seconds(10)
    /// Bound on the one request a subscription makes besides `Subscribe` (DescribeTopic, when
    /// resuming every partition after a reconnect).
    public var requestTimeout: Duration = .seconds(30)

    public init() {}

    /// The defaults above with `profile`'s push batching on top (docs/profiles.md); set
    /// fields afterwards to override single settings.
    ///
    /// | setting  | default       | latency | throughput        |
    /// |----------|---------------|---------|-------------------|
    /// | minBytes | 0             | 0       | 64 KiB            |
    /// | maxWait  | 0             | 0       | 10 ms             |
    /// | maxBytes | 0 (1 MiB)     | 0       | 4 MiB - 64 KiB    |
    public init(profile: PerformanceProfile) {
        switch profile {
        case .latency:
            minBytes = 0
            maxWait = .zero
        case .throughput:
            minBytes = 64 * 1024
            maxWait = .milliseconds(10)
            maxBytes = 4 * 1024 * 1024 - 64 * 1024
        }
    }
}

/// Why a subscription ended.
public enum ConsumerError: Error, Sendable, CustomStringConvertible {
    /// The broker ended the subscription with a status retrying cannot fix: NOT_FOUND
    /// (unknown topic), OUT_OF_RANGE (position below the log start or past the end),
    /// INVALID_ARGUMENT (e.g. unknown partition).
    case refused(GRPCStatus)
    /// A batch failed its CRC32C or did not decode.
    case corruptBatch(partition: Int, RecordBatchCodec.DecodingError)
    /// The connection kept failing; `last` is the final failure.
    case reconnectsExhausted(attempts: Int, last: String)

    public var description: String {
        switch self {
        case .refused(let status): "\(status.message.isEmpty ? "subscription refused" : status.message) (\(status.code))"
        case .corruptBatch(let partition, let error): "partition \(partition): \(error)"
        case .reconnectsExhausted(let attempts, let last): "gave up after \(attempts) reconnect attempts: \(last)"
        }
    }

    /// The gRPC status code when the broker refused.
    public var statusCode: GRPCStatus.Code? {
        if case .refused(let status) = self { return status.code }
        return nil
    }
}
