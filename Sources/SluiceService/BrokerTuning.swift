public import SluiceAPI
import SluiceBroker
import SluiceStorage
import SluiceWire

/// The broker's throughput/latency settings, each optional: what `sluice serve` was told
/// explicitly, or what a profile sets. `BrokerServer.Configuration.apply(profile:overrides:)`
/// lays a profile over the defaults and the explicit settings over both.
///
/// | setting                 | flag                          | default | latency | throughput       |
/// |-------------------------|-------------------------------|---------|---------|------------------|
/// | groupCommitWindow       | --group-commit-window-ms      | 0       | 0       | 2 ms             |
/// | initialWindowBytes      | --initial-window-bytes        | 1 MiB   | 1 MiB   | 4 MiB            |
/// | connectionWindowBytes   | --connection-window-bytes     | 8 MiB   | 8 MiB   | 32 MiB           |
/// | maxFrameBytes           | --max-frame-bytes             | 16 KiB  | 16 KiB  | 64 KiB           |
/// | inboundBufferBytes      | --inbound-buffer-bytes        | 256 KiB | 256 KiB | 1 MiB            |
/// | subscribeDefaultMaxBytes| --subscribe-default-max-bytes | 1 MiB   | 256 KiB | 4 MiB - 64 KiB   |
///
/// Never part of a profile: the fsync policy, acks (the producer's), the memory budget.
public struct BrokerTuning: Sendable, Equatable {
    public var groupCommitWindow: Duration?
    public var initialWindowBytes: Int?
    public var connectionWindowBytes: Int?
    public var maxFrameBytes: Int?
    public var inboundBufferBytes: Int?
    /// A subscription's `max_bytes` when its request says 0.
    public var subscribeDefaultMaxBytes: Int?

    public init() {}

    /// What no profile means: every field set to its default, from the limits files
    /// (`StorageLimits`, `WireLimits`, `BrokerLimits`).
    public static let defaults: BrokerTuning = {
        var tuning = BrokerTuning()
        tuning.groupCommitWindow = StorageLimits.defaults.groupCommitWindow.value
        tuning.initialWindowBytes = WireLimits.defaults.initialWindowBytes.value
        tuning.connectionWindowBytes = WireLimits.defaults.connectionWindowBytes.value
        tuning.maxFrameBytes = WireLimits.defaults.maxFrameBytes.value
        tuning.inboundBufferBytes = WireLimits.defaults.inboundBufferBytes.value
        tuning.subscribeDefaultMaxBytes = BrokerLimits.defaults.subscribeDefaultMaxBytes.value
        return tuning
    }()

    /// The settings `profile` chooses (every field set).
    public init(profile: PerformanceProfile) {
        switch profile {
        case .latency:
            // The defaults already favour latency, but for smaller pushes.
            self = .defaults
            subscribeDefaultMaxBytes = 256 * 1024
        case .throughput:
            groupCommitWindow = .milliseconds(2)
            initialWindowBytes = 4 * 1024 * 1024
            connectionWindowBytes = 32 * 1024 * 1024
            maxFrameBytes = 64 * 1024
            inboundBufferBytes = 1024 * 1024
            subscribeDefaultMaxBytes = 4 * 1024 * 1024 - 64 * 1024
        }
    }
}

extension BrokerServer.Configuration {
    /// Applies `profile` (if any), then every setting `overrides` holds, to this
    /// configuration; settings neither names keep their values.
    public mutating func apply(profile: PerformanceProfile?, overrides: BrokerTuning = BrokerTuning()) {
        if let profile { apply(BrokerTuning(profile: profile)) }
        apply(overrides)
    }

    /// Every setting `tuning` holds replaces this configuration's.
    private mutating func apply(_ tuning: BrokerTuning) {
        if let value = tuning.groupCommitWindow { storage.groupCommitWindow = value }
        if let value = tuning.initialWindowBytes { transport.initialWindowBytes = value }
        if let value = tuning.connectionWindowBytes { transport.connectionWindowBytes = value }
        if let value = tuning.maxFrameBytes { transport.maxFrameBytes = value }
        if let value = tuning.inboundBufferBytes { transport.inboundBufferBytes = value }
        if let value = tuning.subscribeDefaultMaxBytes { subscribeLimits.defaultMaxBytes = value }
    }
}
