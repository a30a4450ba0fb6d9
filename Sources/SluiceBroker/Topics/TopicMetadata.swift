/// What the broker remembers durably about one topic.
public struct TopicMetadata: Sendable, Equatable {
    public let name: String
    /// A random UUID (lowercase text), new for every creation, so a topic re-created
    /// under an old name is never confused with its predecessor's data.
    public let topicID: String
    public internal(set) var partitionCount: UInt32
    public let replicationFactor: UInt32
    /// Settings given explicitly, in canonical text; the rest are defaults.
    public private(set) var configOverrides: [String: String] = [:]
    /// The effective settings, kept in step with `configOverrides`.
    public private(set) var config = TopicConfig.defaults
    /// Creation time, ms since the Unix epoch.
    public let createdAtMs: Int64
    /// In a cluster, the partitions this broker holds a log of (those it is a replica of);
    /// nil on a single node: every partition.
    public internal(set) var localPartitions: Set<UInt32>?

    init(name: String, topicID: String, partitionCount: UInt32, replicationFactor: UInt32,
         configOverrides: [String: String], createdAtMs: Int64, localPartitions: Set<UInt32>? = nil) {
        precondition(partitionCount >= 1, "a topic has at least one partition")
        precondition(replicationFactor >= 1, "a topic has at least one replica")
        precondition(localPartitions?.allSatisfy { $0 < partitionCount } ?? true, "a local partition past the count")
        self.localPartitions = localPartitions
        self.name = name
        self.topicID = topicID
        self.partitionCount = partitionCount
        self.replicationFactor = replicationFactor
        self.createdAtMs = createdAtMs
        replaceConfigOverrides(configOverrides)
    }

    mutating func replaceConfigOverrides(_ overrides: [String: String]) {
        configOverrides = overrides
        config = TopicConfig(overrides: overrides)
    }

    /// Every setting with its effective value, defaults included (what describe shows).
    public var effectiveConfigs: [String: String] { TopicSetting.effective(configOverrides) }

    /// Whether this broker holds a log of partition `index`.
    public func holdsLog(of index: UInt32) -> Bool { localPartitions?.contains(index) ?? true }
}

extension TopicSetting {
    /// Every setting with its value under `overrides`, defaults for the rest.
    public static func effective(_ overrides: [String: String]) -> [String: String] {
        var all: [String: String] = [:]
        for setting in allCases {
            all[setting.rawValue] = overrides[setting.rawValue] ?? setting.defaultValue
        }
        return all
    }
}

/// A partition's log positions as the storage engine reports them.
public struct PartitionOffsets: Sendable, Equatable {
    public var logStartOffset: Int64
    public var logEndOffset: Int64
    public var highWatermark: Int64
    public var sizeBytes: Int64
    public var leaderEpoch: Int32
    /// Why the partition's log could not be opened; nil when it is open. The offsets
    /// of an offline partition are unknown and reported as 0.
    public var offlineReason: String?

    public init(
        logStartOffset: Int64, logEndOffset: Int64, highWatermark: Int64, sizeBytes: Int64, leaderEpoch: Int32,
        offlineReason: String? = nil
    ) {
        self.logStartOffset = logStartOffset
        self.logEndOffset = logEndOffset
        self.highWatermark = highWatermark
        self.sizeBytes = sizeBytes
        self.leaderEpoch = leaderEpoch
        self.offlineReason = offlineReason
    }

    /// An empty log that has never been written.
    public static let empty = PartitionOffsets(logStartOffset: 0, logEndOffset: 0, highWatermark: 0, sizeBytes: 0, leaderEpoch: 0)

    /// A partition whose log could not be opened: nothing about it is known but why.
    public static func offline(_ reason: String) -> PartitionOffsets {
        PartitionOffsets(logStartOffset: 0, logEndOffset: 0, highWatermark: 0, sizeBytes: 0, leaderEpoch: 0, offlineReason: reason)
    }
}

/// The seam to the storage engine for describe: where a partition's offsets come from.
/// Until partition logs are wired in, `NoPartitionLogs` answers `.empty` for every
/// partition; the broker that owns the logs will implement this protocol.
public protocol PartitionOffsetsSource: Sendable {
    func offsets(topicID: String, partition: UInt32) -> PartitionOffsets
}

public struct NoPartitionLogs: PartitionOffsetsSource {
    public init() {}
    public func offsets(topicID: String, partition: UInt32) -> PartitionOffsets { .empty }
}

/// One partition as describe shows it.
public struct PartitionDetails: Sendable, Equatable {
    public var partition: UInt32
    public var leader: UInt32
    public var replicas: [UInt32]
    public var inSyncReplicas: [UInt32]
    public var offsets: PartitionOffsets
}

/// A topic with its partitions, as describe shows it.
public struct TopicDetails: Sendable, Equatable {
    public var metadata: TopicMetadata
    public var partitions: [PartitionDetails]
}
