public import ArgumentParser
import SluiceAPI
public import SluiceClient

extension RecordCompression: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.description) }
}

/// A client command's `--profile`, which also chooses the connection's HTTP/2 settings.
protocol ClientProfileOption {
    var profile: PerformanceProfile? { get }
}

extension ClientProfileOption {
    /// Where to connect, with the profile's HTTP/2 settings.
    func bootstrap(_ list: BrokerList) -> [BrokerAddress] {
        list.brokers.map { broker in
            profile.map { BrokerAddress(host: broker.host, port: broker.port, profile: $0) }
                ?? BrokerAddress(host: broker.host, port: broker.port)
        }
    }
}

/// `sluice produce`'s batching settings: a profile and single settings over it
/// (docs/profiles.md). A flag given always wins over the profile.
struct ProduceTuningOptions: ParsableArguments, ClientProfileOption {
    @Option(help: "latency or throughput: sets the defaults of the flags below (never acks).")
    var profile: PerformanceProfile?
    @Option(help: "Milliseconds a batch waits for more lines before it is sent (default 5; latency 0; throughput 20).")
    var lingerMs: Int?
    @Option(help: "A batch is closed once its records reach this many bytes (default 65536; latency 16384; throughput 524288).")
    var batchBytes: Int?
    @Option(help: "Compression of each batch: none, zstd or lz4 (default none; throughput lz4).")
    var compression: RecordCompression?
    @Option(help: "The codec's level (zstd -7 to 22, default 3; lz4 0 to 12, default 0).")
    var compressionLevel: Int?

    func validate() throws {
        if let lingerMs, lingerMs < 0 { throw ValidationError("--linger-ms must be 0 or more") }
        if let batchBytes, batchBytes < 1 { throw ValidationError("--batch-bytes must be positive") }
    }

    /// The producer settings: defaults, then the profile, then each flag given.
    var configuration: ProducerConfiguration {
        var configuration = profile.map(ProducerConfiguration.init(profile:)) ?? ProducerConfiguration()
        if let lingerMs { configuration.linger = .milliseconds(lingerMs) }
        if let batchBytes { configuration.maxBatchBytes = batchBytes }
        if let compression { configuration.compression = compression }
        if let compressionLevel { configuration.compressionLevel = compressionLevel }
        return configuration
    }
}

/// `sluice consume`'s push batching: a profile and single settings over it.
struct ConsumeTuningOptions: ParsableArguments, ClientProfileOption {
    @Option(help: "latency or throughput: sets the defaults of the flags below.")
    var profile: PerformanceProfile?
    @Option(help: "The broker holds a push until this many bytes are ready (default 0; throughput 65536)...")
    var minBytes: UInt32?
    @Option(help: "...or this many milliseconds passed (default 0; throughput 10).")
    var maxWaitMs: UInt32?

    var configuration: ConsumerConfiguration {
        var configuration = profile.map(ConsumerConfiguration.init(profile:)) ?? ConsumerConfiguration()
        if let minBytes { configuration.minBytes = minBytes }
        if let maxWaitMs { configuration.maxWait = .milliseconds(maxWaitMs) }
        return configuration
    }
}
