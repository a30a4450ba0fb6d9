import SluiceStorage

/// The per-topic settings, with Kafka's names, defaults and checks.
///
/// A topic stores only the settings given explicitly (its overrides, normalised to
/// canonical text); everything else takes the default below. `TopicConfig` is the
/// effective, typed view the rest of the broker reads.
///
/// | name                           | default    | accepted values                                    |
/// |--------------------------------|------------|----------------------------------------------------|
/// | retention.ms                   | 604800000  | -1 (no age limit) or 0 ... Int64.max               |
/// | retention.bytes                | -1         | -1 (no size limit) or 0 ... Int64.max              |
/// | segment.bytes                  | 1073741824 | 1024 ... 2147483647 (segment positions are 32-bit) |
/// | segment.ms                     | 604800000  | 1 ... Int64.max                                    |
/// | max.message.bytes              | 1048576    | 1 ... the broker's ceiling (wire limit - 1 KiB)    |
/// | message.timestamp.type         | CreateTime | CreateTime or LogAppendTime                        |
/// | cleanup.policy                 | delete     | delete                                             |
/// | min.insync.replicas            | 1          | 1 ... the topic's replication factor               |
/// | unclean.leader.election.enable | false      | true or false (any case)                           |
public struct TopicConfig: Sendable, Equatable {
    public enum TimestampType: String, Sendable, Equatable {
        case createTime = "CreateTime"
        case logAppendTime = "LogAppendTime"
    }

    public enum CleanupPolicy: String, Sendable, Equatable {
        case delete
    }

    /// Age limit of a closed segment in ms; nil means no limit (-1).
    public var retentionMs: Int64?
    /// Size limit of a partition in bytes; nil means no limit (-1).
    public var retentionBytes: Int64?
    public var segmentBytes: Int64
    public var segmentMs: Int64
    public var maxMessageBytes: Int
    public var messageTimestampType: TimestampType
    public var cleanupPolicy: CleanupPolicy
    public var minInsyncReplicas: Int
    /// In a cluster, whether a live replica outside the ISR may lead when no in-sync
    /// replica is live (the controller reads the topic's setting; records acknowledged
    /// only by the lost ISR are then gone). No effect on a single node.
    public var uncleanLeaderElection: Bool

    /// The effective settings of a topic with these (already validated) overrides.
    init(overrides: [String: String]) {
        var config = TopicConfig.defaults
        for (name, text) in overrides {
            // Overrides were normalised by `TopicSetting.normalize` (on every change and
            // again when loaded from disk), so names and numbers parse here.
            guard let setting = TopicSetting(rawValue: name) else {
                preconditionFailure("unvalidated topic setting \(name)")
            }
            setting.apply(text, to: &config)
        }
        self = config
    }

    /// A topic's storage defaults are the log's (`StorageLimits`).
    private init() {
        retentionMs = StorageLimits.defaults.retentionMs.value
        retentionBytes = StorageLimits.defaults.retentionBytes.value
        segmentBytes = StorageLimits.defaults.segmentBytes.value
        segmentMs = StorageLimits.defaults.segmentMs.value
        maxMessageBytes = StorageLimits.defaults.maxBatchBytes.value
        messageTimestampType = .createTime
        cleanupPolicy = .delete
        minInsyncReplicas = 1
        uncleanLeaderElection = false
    }

    public static let defaults = TopicConfig()
}

/// One named setting: its default, how its text is checked and normalised, and where
/// it lands in `TopicConfig`.
public enum TopicSetting: String, Sendable, CaseIterable {
    case retentionMs = "retention.ms"
    case retentionBytes = "retention.bytes"
    case segmentBytes = "segment.bytes"
    case segmentMs = "segment.ms"
    case maxMessageBytes = "max.message.bytes"
    case messageTimestampType = "message.timestamp.type"
    case cleanupPolicy = "cleanup.policy"
    case minInsyncReplicas = "min.insync.replicas"
    case uncleanLeaderElectionEnable = "unclean.leader.election.enable"

    public static let minimumSegmentBytes = BrokerLimits.defaults.minSegmentBytes.value
    public static let maximumSegmentBytes = BrokerLimits.defaults.maxSegmentBytes.value

    /// `TopicConfig.defaults`' value, as the setting's text.
    public var defaultValue: String {
        let defaults = TopicConfig.defaults
        return switch self {
        case .retentionMs: String(defaults.retentionMs ?? -1)
        case .retentionBytes: String(defaults.retentionBytes ?? -1)
        case .segmentBytes: String(defaults.segmentBytes)
        case .segmentMs: String(defaults.segmentMs)
        case .maxMessageBytes: String(defaults.maxMessageBytes)
        case .messageTimestampType: defaults.messageTimestampType.rawValue
        case .cleanupPolicy: defaults.cleanupPolicy.rawValue
        case .minInsyncReplicas: String(defaults.minInsyncReplicas)
        case .uncleanLeaderElectionEnable: String(defaults.uncleanLeaderElection)
        }
    }

    /// The setting of this name, or `.invalidConfig` naming the known ones.
    public static func named(_ name: String) throws(BrokerError) -> TopicSetting {
        guard let setting = TopicSetting(rawValue: name) else {
            let known = allCases.map(\.rawValue).joined(separator: ", ")
            throw BrokerError(.invalidConfig, "unknown topic setting \(BrokerError.quoting(name)); known settings are \(known)")
        }
        return setting
    }

    /// Checks `value` and returns its canonical text. Relations between settings
    /// (min.insync.replicas against the replication factor) are checked by the registry.
    public func normalize(_ value: String, maxMessageBytesCeiling: Int) throws(BrokerError) -> String {
        switch self {
        case .retentionMs, .retentionBytes:
            return String(try integer(value, in: -1...Int64.max))
        case .segmentBytes:
            return String(try integer(value, in: Self.minimumSegmentBytes...Self.maximumSegmentBytes))
        case .segmentMs:
            return String(try integer(value, in: 1...Int64.max))
        case .maxMessageBytes:
            return String(try integer(value, in: 1...Int64(maxMessageBytesCeiling)))
        case .minInsyncReplicas:
            return String(try integer(value, in: 1...Int64(Int32.max)))
        case .messageTimestampType:
            guard let type = TopicConfig.TimestampType(rawValue: value) else {
                throw invalid(value, "expected CreateTime or LogAppendTime")
            }
            return type.rawValue
        case .cleanupPolicy:
            guard let policy = TopicConfig.CleanupPolicy(rawValue: value) else {
                throw invalid(value, "the only supported policy is delete")
            }
            return policy.rawValue
        case .uncleanLeaderElectionEnable:
            // Kafka's booleans: either word, in any case.
            guard let enabled = Bool(value.lowercased()) else { throw invalid(value, "expected true or false") }
            return String(enabled)
        }
    }

    private func integer(_ value: String, in range: ClosedRange<Int64>) throws(BrokerError) -> Int64 {
        guard let number = Int64(value) else {
            throw invalid(value, "expected a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        guard range.contains(number) else {
            throw invalid(value, "must be from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    private func invalid(_ value: String, _ reason: String) -> BrokerError {
        BrokerError(.invalidConfig, "invalid value \(BrokerError.quoting(value)) for \(rawValue): \(reason)")
    }

    /// Stores normalised text into the typed config.
    fileprivate func apply(_ text: String, to config: inout TopicConfig) {
        switch self {
        case .retentionMs:
            let value = Int64(text) ?? -1
            config.retentionMs = value < 0 ? nil : value
        case .retentionBytes:
            let value = Int64(text) ?? -1
            config.retentionBytes = value < 0 ? nil : value
        case .segmentBytes:
            config.segmentBytes = Int64(text) ?? config.segmentBytes
        case .segmentMs:
            config.segmentMs = Int64(text) ?? config.segmentMs
        case .maxMessageBytes:
            config.maxMessageBytes = Int(text) ?? config.maxMessageBytes
        case .messageTimestampType:
            config.messageTimestampType = TopicConfig.TimestampType(rawValue: text) ?? config.messageTimestampType
        case .cleanupPolicy:
            config.cleanupPolicy = TopicConfig.CleanupPolicy(rawValue: text) ?? config.cleanupPolicy
        case .minInsyncReplicas:
            config.minInsyncReplicas = Int(text) ?? config.minInsyncReplicas
        case .uncleanLeaderElectionEnable:
            config.uncleanLeaderElection = Bool(text) ?? config.uncleanLeaderElection
        }
    }
}
