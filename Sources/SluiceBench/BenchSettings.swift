public import SluiceAPI
public import SluiceClient
public import SluiceCompression

/// What one `sluice bench` run does (docs/bench.md lists every option).
public struct BenchSettings: Sendable {
    public enum Mode: String, Sendable, Codable, CaseIterable {
        /// Producers only; latency from the send call (or due time) to the broker's answer.
        case produce
        /// One pass over the topic's backlog from its log start to its high watermark.
        case consume
        /// Producers and subscribers at once; latency from the send call (or due time) to
        /// delivery at a subscriber, and every message checked to arrive exactly once.
        case endToEnd = "end-to-end"
    }

    public var mode: Mode
    public var host = "127.0.0.1"
    public var port = 9092
    public var topic = "sluice-bench"
    /// Partitions of the topic when it is created; an existing topic keeps its own.
    public var partitions = 1
    public var producers = 1
    public var consumers = 1
    public var messageSize = 1024
    /// Each message gets an 8-byte key (its id), so records spread over partitions by hash.
    public var keyed = false
    public var acks: Acks = .leader
    public var profile: BenchProfile?
    /// Overrides of the profile's (or the client's default) batching.
    public var batchBytes: Int?
    public var lingerMilliseconds: Int?
    /// Override of the profile's codec, so ingest can be compared with and without it.
    public var compression: RecordCompression?
    /// Bound on each producer's unanswered bytes (`maxBufferedBytes`); once reached the
    /// sender blocks, and under `rate` its overdue messages keep their due times.
    public var bufferBytes: Int?
    /// Messages per second across all producers (open loop); nil sends as fast as possible.
    public var rate: Double?
    /// Measured time, after the warm-up. With `messages` as well, whichever ends first.
    public var duration: Duration?
    /// Messages in total (produce, end-to-end: sent; consume: read).
    public var messages: Int?
    /// Sent and checked, not measured.
    public var warmup: Duration = .zero
    /// After the producers finish, how long subscribers may take to receive the rest.
    public var drainTimeout: Duration = .seconds(30)
    /// Nothing runs past this, whatever else happens (a stalled broker included).
    public var timeLimit: Duration = .seconds(600)
    public var progressInterval: Duration = .seconds(5)

    public init(mode: Mode) {
        self.mode = mode
    }

    public var address: BrokerAddress { BrokerAddress(host: host, port: port) }
    /// Bootstrap brokers tried in turn; empty: `host:port` alone.
    public var bootstrap: [BrokerAddress] = []
    /// What the clients start from: `bootstrap`, or `host:port`.
    public var brokers: [BrokerAddress] { bootstrap.isEmpty ? [address] : bootstrap }

    /// `--compression`'s codec: none, zstd or lz4; nil for any other name.
    public static func compression(named name: String) -> RecordCompression? {
        RecordCompression(name: name)
    }

    /// Why these settings cannot run, or nil.
    public var problem: String? {
        if partitions < 1 { return "--partitions must be at least 1" }
        if producers < 1 || producers >= BenchPayload.maxSenders { return "--producers must be between 1 and \(BenchPayload.maxSenders - 1)" }
        if consumers < 1 { return "--consumers must be at least 1" }
        if mode != .consume && messageSize < BenchPayload.headerBytes {
            return "--message-size must be at least \(BenchPayload.headerBytes) (the bench header: due time, id, run id)"
        }
        if let rate, !(rate > 0 && rate.isFinite) { return "--rate must be a positive number" }
        if let messages, messages < 1 { return "--messages must be at least 1" }
        if let duration, duration <= .zero { return "--duration must be positive" }
        if warmup < .zero { return "--warmup must be 0 or more" }
        if let batchBytes, batchBytes < 1 { return "--batch-bytes must be at least 1" }
        if let lingerMilliseconds, lingerMilliseconds < 0 { return "--linger-ms must be 0 or more" }
        if let bufferBytes, bufferBytes < messageSize + 256 {
            return "--buffer-bytes must hold at least one message (--message-size + 256)"
        }
        if timeLimit <= .zero { return "--time-limit must be positive" }
        return nil
    }

    /// The producer settings this run uses: the profile's, then the explicit overrides.
    public var producerConfiguration: ProducerConfiguration {
        var configuration = (profile ?? .default).producerConfiguration
        configuration.acks = acks
        if let batchBytes { configuration.maxBatchBytes = batchBytes }
        if let lingerMilliseconds { configuration.linger = .milliseconds(lingerMilliseconds) }
        if let compression { configuration.compression = compression }
        if let bufferBytes { configuration.maxBufferedBytes = bufferBytes }
        // A stalled broker must not hold a run past its time limit.
        configuration.deliveryTimeout = min(configuration.deliveryTimeout, timeLimit)
        return configuration
    }

    public var consumerConfiguration: ConsumerConfiguration {
        (profile ?? .default).consumerConfiguration
    }
}

/// `--profile`: a named set of client settings.
///
/// The ONE place that maps a profile to client settings. It takes SluiceClient's own
/// `ProducerConfiguration.latency` / `.throughput`, so when the profiles work redefines
/// those (linger, batch bytes, compression, window sizes) the bench follows without change.
public enum BenchProfile: String, Sendable, Codable, CaseIterable {
    case `default`
    case throughput
    case latency

    public var producerConfiguration: ProducerConfiguration {
        switch self {
        case .default: ProducerConfiguration()
        case .throughput: .throughput
        case .latency: .latency
        }
    }

    public var consumerConfiguration: ConsumerConfiguration {
        // Push batching stays at the broker's "push as soon as appended" default for both:
        // a catch-up read fills each push anyway, and a tailing one should not wait.
        ConsumerConfiguration()
    }
}

/// The OpenMessaging Benchmark shapes that publications quote (`--workload NAME`). Each
/// sets defaults that explicit options still override.
public struct BenchWorkload: Sendable, Equatable {
    public var name: String
    public var summary: String
    public var partitions: Int
    public var producers: Int
    public var consumers: Int
    public var messageSize: Int
    public var rate: Double?

    public static let all: [BenchWorkload] = [
        BenchWorkload(name: "1-topic-1-partition-1kb", summary: "1 topic, 1 partition, 1 KiB at 50,000 msg/s",
                      partitions: 1, producers: 1, consumers: 1, messageSize: 1024, rate: 50_000),
        BenchWorkload(name: "1-topic-16-partitions-1kb", summary: "1 topic, 16 partitions, 1 KiB at 50,000 msg/s",
                      partitions: 16, producers: 1, consumers: 1, messageSize: 1024, rate: 50_000),
        BenchWorkload(name: "1-topic-100-partitions-1kb-4p-4c", summary: "1 topic, 100 partitions, 1 KiB at 50,000 msg/s, 4 producers, 4 consumers",
                      partitions: 100, producers: 4, consumers: 4, messageSize: 1024, rate: 50_000),
        BenchWorkload(name: "max-rate-100b", summary: "1 topic, 1 partition, 100 B, as fast as possible",
                      partitions: 1, producers: 1, consumers: 1, messageSize: 100, rate: nil),
        BenchWorkload(name: "max-rate-1kb", summary: "1 topic, 1 partition, 1 KiB, as fast as possible",
                      partitions: 1, producers: 1, consumers: 1, messageSize: 1024, rate: nil),
        BenchWorkload(name: "max-rate-64kb", summary: "1 topic, 1 partition, 64 KiB, as fast as possible",
                      partitions: 1, producers: 1, consumers: 1, messageSize: 64 * 1024, rate: nil),
    ]

    public static func named(_ name: String) -> BenchWorkload? {
        all.first { $0.name == name }
    }

    /// Its own topic, so a workload never reuses another's partition count.
    public var topic: String { "bench-\(name)" }
}
