/// A committed offset with what was kept alongside it.
public struct CommittedOffsetValue: Sendable, Equatable {
    /// The next offset to read (one past the last processed record).
    public var offset: Int64
    public var metadata: String
    public var commitTimeMs: Int64
}

/// One change to committed offsets, as the offsets log records it.
public enum OffsetChange: Sendable, Equatable {
    case commit(group: String, partition: GroupPartition, value: CommittedOffsetValue)
    /// The group's offset for the partition is gone (group deleted).
    case tombstone(group: String, partition: GroupPartition)
}

/// Where committed offsets are made durable. `OffsetLog` keeps them in the internal topic
/// `__consumer_offsets`; state-machine tests pass none (offsets then live in memory).
public protocol OffsetJournal: Sendable {
    /// Every live offset, read at startup.
    func load() throws(BrokerError) -> [String: [GroupPartition: CommittedOffsetValue]]
    /// Appends `changes` as one unit (whole or not at all) without waiting for the disk;
    /// returns what to pass to `waitUntilDurable`.
    func append(_ changes: [OffsetChange]) throws(BrokerError) -> Int64
    /// Returns once everything up to the token `append` returned is on disk.
    func waitUntilDurable(_ token: Int64) async throws(BrokerError)
    /// Called after appends with every live offset; may rewrite them as a snapshot and
    /// drop what the snapshot makes redundant.
    func compactIfNeeded(live: () -> [OffsetChange])
}

/// Committed offsets in memory, by group then partition: the coordinator's view, kept
/// equal to what the journal holds (memory changes only after the journal accepted).
struct OffsetStore {
    private(set) var offsets: [String: [GroupPartition: CommittedOffsetValue]] = [:]

    init(_ offsets: [String: [GroupPartition: CommittedOffsetValue]] = [:]) {
        self.offsets = offsets.filter { !$0.value.isEmpty }
    }

    func hasOffsets(_ group: String) -> Bool { offsets[group] != nil }

    func committed(_ group: String) -> [GroupPartition: CommittedOffsetValue] { offsets[group] ?? [:] }

    mutating func apply(_ change: OffsetChange) {
        switch change {
        case .commit(let group, let partition, let value):
            offsets[group, default: [:]][partition] = value
        case .tombstone(let group, let partition):
            offsets[group]?.removeValue(forKey: partition)
            if offsets[group]?.isEmpty == true { offsets.removeValue(forKey: group) }
        }
    }

    /// Every live offset as commits, sorted (a snapshot's content).
    var live: [OffsetChange] {
        offsets.keys.sorted().flatMap { group in
            (offsets[group] ?? [:]).sorted { $0.key < $1.key }.map { OffsetChange.commit(group: group, partition: $0.key, value: $0.value) }
        }
    }
}
