import Logging
import SluiceStorage
import Synchronization

/// Every partition log of the broker, opened, created, reconfigured and removed in
/// step with the topic registry.
///
/// Layout under the data directory (`DataDirectory` owns it; docs/operations.md):
///
///     <data-dir>/topics/<topic name>-<topic id>/<partition>/   one PartitionLog each
///
/// The topic id in the directory name means a topic deleted and re-created under the
/// same name never sees its predecessor's data, and a directory whose id no topic in
/// `topics.json` has is left over from a delete that crashed midway: startup removes it.
///
/// A partition whose log cannot be opened (I/O error, corruption the log refuses to
/// repair) stays offline with the reason; describe reports it offline with the reason,
/// produce answers STORAGE_ERROR for it, subscribe UNAVAILABLE, and the rest of the
/// broker runs. Only the consumer offsets log is opened again later (`reopenIfOffline`,
/// driven by the group coordinator); any other offline partition stays so until the
/// operator fixes the cause and restarts the broker.
final class PartitionManager: PartitionOffsetsSource {
    let root: String
    let settings: StorageSettings
    private let logger: Logger
    private let partitions = Mutex<[PartitionKey: PartitionSlot]>([:])
    /// Serialises admin changes (create, grow, alter, delete), which do file I/O, so
    /// that produce and subscribe lookups never wait for them.
    private let adminLock = Mutex<Void>(())

    struct PartitionKey: Hashable, Sendable {
        var topicID: String
        var partition: UInt32
    }

    enum PartitionSlot: Sendable {
        case online(Partition)
        case offline(reason: String)
    }

    init(dataDirectory: String, settings: StorageSettings, logger: Logger) {
        root = DataDirectory.logsPath(of: dataDirectory)
        self.settings = settings
        self.logger = logger
    }

    static func topicDirectoryName(_ topic: TopicMetadata) -> String { topic.name + "-" + topic.topicID }

    func topicDirectory(_ topic: TopicMetadata) -> String { root + "/" + Self.topicDirectoryName(topic) }

    // MARK: Lookup

    func slot(topicID: String, partition: UInt32) -> PartitionSlot? {
        partitions.withLock { $0[PartitionKey(topicID: topicID, partition: partition)] }
    }

    func allPartitions() -> [Partition] {
        partitions.withLock { slots in
            slots.values.compactMap { slot in
                if case .online(let partition) = slot { return partition }
                return nil
            }
        }
    }

    func offsets(topicID: String, partition: UInt32) -> PartitionOffsets {
        let log: Partition
        switch slot(topicID: topicID, partition: partition) {
        case .online(let partition)?: log = partition
        case .offline(let reason)?: return .offline(reason)
        case nil: return .empty  // created a moment ago, not open yet
        }
        let start = log.log.logStartOffset
        let end = log.log.logEndOffset
        let size = (try? log.log.sizeInBytes()) ?? 0
        return PartitionOffsets(
            logStartOffset: start, logEndOffset: end, highWatermark: log.highWatermark, sizeBytes: size,
            leaderEpoch: max(0, log.log.latestLeaderEpoch))
    }

    // MARK: Startup

    /// Opens (recovering where needed) every partition of `topics`, creating missing
    /// ones, and removes topic directories that belong to no topic.
    func openAll(_ topics: [TopicMetadata]) throws(BrokerError) {
        let fileSystem = settings.fileSystem
        do throws(StorageIOError) {
            try createDurably(root)
            let known = Set(topics.map(Self.topicDirectoryName))
            for name in try fileSystem.listDirectory(root) where !known.contains(name) {
                logger.warning("removing the data of a deleted topic", metadata: ["directory": "\(root)/\(name)"])
                try removeTree(root + "/" + name)
                try fileSystem.syncDirectory(root)
            }
        } catch {
            throw BrokerError(.storageFailed, "cannot prepare \(root): \(error)")
        }
        adminLock.withLock { _ in
            for topic in topics { openPartitions(of: topic, range: 0..<topic.partitionCount) }
        }
    }

    // MARK: Admin changes

    /// Creates (or opens, if a crash left them) the logs of partitions `range`.
    func createPartitions(of topic: TopicMetadata, range: Range<UInt32>) {
        adminLock.withLock { _ in openPartitions(of: topic, range: range) }
    }

    /// Tries once more to open partition `index` of `topic` if it is offline (the cause
    /// may be gone: space freed, a file repaired). An online partition is left alone.
    func reopenIfOffline(_ topic: TopicMetadata, index: UInt32) {
        adminLock.withLock { _ in
            let key = PartitionKey(topicID: topic.topicID, partition: index)
            let wasOffline = partitions.withLock { slots -> Bool in
                guard case .offline? = slots[key] else { return false }
                slots[key] = nil
                return true
            }
            if wasOffline { openPartitions(of: topic, range: index..<(index + 1)) }
        }
    }

    /// Applies the topic's (altered) settings to its open logs.
    func reconfigure(_ topic: TopicMetadata) {
        let config = settings.logConfig(for: topic.config)
        adminLock.withLock { _ in
            for index in 0..<topic.partitionCount {
                guard case .online(let partition)? = slot(topicID: topic.topicID, partition: index) else { continue }
                do throws(LogError) {
                    try partition.log.reconfigure(config)
                } catch {
                    logger.error("cannot apply topic settings to a partition", metadata: [
                        "topic": "\(topic.name)", "partition": "\(index)", "error": "\(error)"])
                }
            }
        }
    }

    /// Closes the topic's logs (waking their streams, which then end) and removes its
    /// directory. The registry has already forgotten the topic, so a crash midway
    /// leaves a directory that the next startup removes.
    func removeTopic(_ topic: TopicMetadata) async {
        let removed = adminLock.withLock { _ in
            partitions.withLock { slots -> [PartitionSlot] in
                (0..<topic.partitionCount).compactMap {
                    slots.removeValue(forKey: PartitionKey(topicID: topic.topicID, partition: $0))
                }
            }
        }
        for slot in removed {
            guard case .online(let partition) = slot else { continue }
            partition.markClosed()
            do throws(LogError) {
                try await partition.log.close()
            } catch {
                logger.warning("closing a deleted partition's log failed", metadata: ["error": "\(error)"])
            }
        }
        do throws(StorageIOError) {
            let directory = topicDirectory(topic)
            if settings.fileSystem.fileExists(directory) {
                try removeTree(directory)
                try settings.fileSystem.syncDirectory(root)
            }
        } catch {
            logger.error("cannot remove a deleted topic's data; the next start retries", metadata: [
                "topic": "\(topic.name)", "error": "\(error)"])
        }
    }

    /// Closes every log (clean shutdown: synced, checkpointed, marked clean).
    func closeAll() async {
        let all = partitions.withLock { slots -> [PartitionSlot] in
            defer { slots.removeAll() }
            return Array(slots.values)
        }
        let online = all.compactMap { slot -> Partition? in
            guard case .online(let partition) = slot else { return nil }
            return partition
        }
        // Closed `closeConcurrency` at a time: each close waits for its own syncs (files,
        // directory), and one after another 10,000 freshly written partitions took 24 s
        // of fdatasync latency in a row; the disk takes many at once.
        let logger = self.logger
        await withTaskGroup(of: Void.self) { group in
            var next = online.makeIterator()
            func closeNext() -> Bool {
                guard let partition = next.next() else { return false }
                group.addTask { await Self.close(partition, logger: logger) }
                return true
            }
            for _ in 0..<Self.closeConcurrency where !closeNext() { break }
            while await group.next() != nil { _ = closeNext() }
        }
    }

    /// Partitions closed at once at shutdown: above the storage's sync threads, so a sync
    /// is always queued behind the one running.
    static let closeConcurrency = 16

    private static func close(_ partition: Partition, logger: Logger) async {
        partition.markClosed()
        if partition.log.fenceError == nil { partition.snapshotAtClose() }
        do throws(LogError) {
            try await partition.log.close()
        } catch {
            logger.error("closing a partition log failed", metadata: [
                "topic": "\(partition.topicName)", "partition": "\(partition.index)", "error": "\(error)"])
        }
    }

    // MARK: Maintenance

    /// One pass of background maintenance over every open log: expire idle
    /// idempotent producers, roll active segments older than `segment.ms` (an idle
    /// partition would otherwise never roll), then delete segments past
    /// `retention.ms` / `retention.bytes`.
    func runMaintenance() -> MaintenanceReport {
        var report = MaintenanceReport()
        let producerCutoffMs = settings.clock.nowMilliseconds() - settings.producerIdExpiryMs
        for partition in allPartitions() where !partition.isClosed {
            report.producersExpired += partition.expireProducers(lastAppendBefore: producerCutoffMs)
            do throws(LogError) {
                if try partition.rollIfAged() { report.segmentsRolled += 1 }
                let result = try partition.log.enforceRetention()
                if result.segmentsDeleted > 0 {
                    report.segmentsDeleted += result.segmentsDeleted
                    report.bytesDeleted += result.bytesDeleted
                    logger.info("retention deleted segments", metadata: [
                        "topic": "\(partition.topicName)", "partition": "\(partition.index)",
                        "segments": "\(result.segmentsDeleted)", "bytes": "\(result.bytesDeleted)",
                        "logStart": "\(result.logStartOffset)"])
                }
            } catch {
                if partition.isClosed { continue }  // deleted meanwhile
                report.failures += 1
                logger.error("retention failed", metadata: [
                    "topic": "\(partition.topicName)", "partition": "\(partition.index)", "error": "\(error)"])
            }
        }
        return report
    }

    // MARK: Internals

    /// Opens each partition of `range`; called with `adminLock` held.
    private func openPartitions(of topic: TopicMetadata, range: Range<UInt32>) {
        let config = settings.logConfig(for: topic.config)
        let directory = topicDirectory(topic)
        do throws(StorageIOError) {
            if !settings.fileSystem.fileExists(directory) {
                try settings.fileSystem.createDirectory(directory)
                try settings.fileSystem.syncDirectory(root)
            }
        } catch {
            for index in range { store(topic, index, .offline(reason: "cannot create \(directory): \(error)")) }
            return
        }
        // In a cluster, only the partitions this broker is a replica of have a log here.
        for index in range where topic.holdsLog(of: index) {
            let key = PartitionKey(topicID: topic.topicID, partition: index)
            if partitions.withLock({ $0[key] }) != nil { continue }
            do throws(LogError) {
                let log = try PartitionLog.open(
                    directory: directory + "/" + String(index), fileSystem: settings.fileSystem, config: config,
                    clock: settings.clock)
                logRecovery(log.recovery, topic: topic.name, index: index)
                let producers = try recoverProducers(log, topic: topic, index: index)
                store(topic, index, .online(Partition(
                    topicName: topic.name, topicID: topic.topicID, index: index, log: log, producerState: producers,
                    logger: logger)))
            } catch {
                logger.error("partition is offline: its log cannot be opened", metadata: [
                    "topic": "\(topic.name)", "partition": "\(index)", "error": "\(error)"])
                store(topic, index, .offline(reason: "\(error)"))
            }
        }
    }

    /// One line per opened log, at a level an operator can alert on: a warning only when
    /// recovery cut bytes, info for an unclean shutdown that lost nothing, and nothing above
    /// debug for a log created now (a new partition or a first start is not a recovery).
    private func logRecovery(_ recovery: LogRecoveryReport, topic: String, index: UInt32) {
        let metadata: Logger.Metadata = [
            "topic": "\(topic)", "partition": "\(index)",
            "segmentsChecked": "\(recovery.segmentsChecked)", "bytesTruncated": "\(recovery.bytesTruncated)"]
        if recovery.created {
            logger.debug("partition log created", metadata: metadata)
        } else if recovery.cleanShutdown {
            return
        } else if recovery.bytesTruncated > 0 {
            var metadata = metadata
            metadata["reason"] = "\(recovery.truncationReason ?? "unknown")"
            logger.warning("partition recovered after an unclean shutdown: a torn tail was cut", metadata: metadata)
        } else {
            logger.info("partition recovered after an unclean shutdown: every batch checked, nothing cut", metadata: metadata)
        }
    }

    /// The partition's idempotent-producer state from its snapshot and log, less
    /// producers idle past the expiry.
    private func recoverProducers(_ log: PartitionLog, topic: TopicMetadata, index: UInt32) throws(LogError) -> ProducerState {
        let now = settings.clock.nowMilliseconds()
        var recovery = try log.recoverProducerState(replayTimeMs: now)
        let expired = recovery.state.expire(lastAppendBefore: now - settings.producerIdExpiryMs)
        for reason in recovery.discarded {
            logger.notice("discarded a producer state snapshot", metadata: [
                "topic": "\(topic.name)", "partition": "\(index)", "reason": "\(reason)"])
        }
        if recovery.batchesScanned > 0 || expired > 0 {
            logger.debug("rebuilt producer state", metadata: [
                "topic": "\(topic.name)", "partition": "\(index)",
                "snapshot": "\(recovery.snapshotOffset.map(String.init) ?? "none")",
                "batchesScanned": "\(recovery.batchesScanned)", "producers": "\(recovery.state.producers.count)",
                "expired": "\(expired)"])
        }
        return recovery.state
    }

    private func store(_ topic: TopicMetadata, _ index: UInt32, _ slot: PartitionSlot) {
        partitions.withLock { $0[PartitionKey(topicID: topic.topicID, partition: index)] = slot }
    }

    /// mkdir -p, then an fsync of the parent of every directory it created, so a power
    /// cut cannot take back a directory that logs were created in.
    private func createDurably(_ path: String) throws(StorageIOError) {
        let fileSystem = settings.fileSystem
        func parent(_ path: String) -> String {
            guard let slash = path.lastIndex(of: "/") else { return "." }
            return slash == path.startIndex ? "/" : String(path[..<slash])
        }
        var missing: [String] = []
        var current = path
        while current != "/", current != ".", !current.isEmpty, !fileSystem.fileExists(current) {
            missing.append(current)
            current = parent(current)
        }
        guard !missing.isEmpty else { return }
        try fileSystem.createDirectory(path)
        for directory in missing.reversed() { try fileSystem.syncDirectory(parent(directory)) }
    }

    /// rm -r through the storage file layer (so it works on every file system).
    private func removeTree(_ path: String) throws(StorageIOError) {
        let fileSystem = settings.fileSystem
        let names = (try? fileSystem.listDirectory(path)) ?? []
        for name in names {
            let child = path + "/" + name
            if (try? fileSystem.listDirectory(child)) != nil {
                try removeTree(child)
            } else {
                try fileSystem.remove(child)
            }
        }
        try fileSystem.remove(path)
    }
}

/// What one maintenance pass did.
public struct MaintenanceReport: Sendable, Equatable {
    public var segmentsRolled = 0
    public var segmentsDeleted = 0
    public var bytesDeleted: Int64 = 0
    public var failures = 0
    /// Idempotent producers forgotten on some partition after idling past the expiry.
    public var producersExpired = 0

    public init() {}
}
