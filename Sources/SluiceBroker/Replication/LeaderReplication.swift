import Logging
import SluiceAPI
import SluiceStorage
import Synchronization

/// The leader's side of replication for every partition this broker leads: the
/// followers' progress (`PartitionFollowers`, one per led partition and leader epoch),
/// the replica floor it gives each log (so the high watermark is what every in-sync
/// replica holds), and the ISR changes it asks of the controller's metadata through
/// `ISRChanger`.
///
/// Three things move it: a follower's position report (`report`, from its Replicate
/// stream), a new view of the cluster (`leadershipChanged`: the ISR or the leader moved),
/// and a periodic check (`checkInSyncReplicas`, every half `replica.lag.time.max.ms`,
/// comparing times on the broker's clock). One ISR change per partition is outstanding;
/// it counts once the metadata shows it.
final class LeaderReplication: Sendable {
    let settings: ReplicationSettings
    private let leadership: any PartitionLeadership
    private let partitions: PartitionManager
    private let logger: Logger
    private let led = Mutex<[PartitionManager.PartitionKey: PartitionFollowers]>([:])
    /// ISR changes being written, so that a test (and shutdown) can wait for them.
    private let changes = Mutex<(next: UInt64, tasks: [UInt64: Task<Void, Never>])>((0, [:]))

    init(settings: ReplicationSettings, leadership: any PartitionLeadership, partitions: PartitionManager, logger: Logger) {
        self.settings = settings
        self.leadership = leadership
        self.partitions = partitions
        self.logger = logger
    }

    private var nowMs: Int64 { partitions.settings.clock.nowMilliseconds() }

    /// The followers of `partition` while this broker leads it at `replicaSet`'s epoch:
    /// the current record, or a new one if leadership began (or changed epoch) since,
    /// whose floor is set at once (an ISR of this broker alone frees the high watermark
    /// of a partition created after the last view of the cluster).
    @discardableResult
    func followers(of partition: Partition, replicaSet: ReplicaSet) -> PartitionFollowers {
        let key = PartitionManager.PartitionKey(topicID: partition.topicID, partition: partition.index)
        let epoch = replicaSet.leaderEpoch
        let (followers, created) = led.withLock { led -> (PartitionFollowers, Bool) in
            if let known = led[key], known.leaderEpoch == epoch, known.partition === partition { return (known, false) }
            let fresh = PartitionFollowers(partition: partition, leaderEpoch: epoch, local: leadership.localBrokerID, nowMs: nowMs)
            led[key] = fresh
            return (fresh, true)
        }
        if created { updateFloor(followers) }
        return followers
    }

    /// A follower's position: recorded, the floor recomputed, and the follower added to
    /// (or, when it reports damage, removed from) the ISR if it qualifies.
    func report(_ report: PositionReport, partition: Partition, replicaSet: ReplicaSet) {
        let followers = followers(of: partition, replicaSet: replicaSet)
        followers.record(report)
        updateFloor(followers)
        let inISR = replicaSet.isr.contains(report.replica)
        // Only a report that can change the ISR looks: one joining, or one turned suspect.
        guard inISR == report.position.suspect else { return }
        changeISR(followers, replicaSet: replicaSet)
    }

    /// A new view of the cluster: partitions led at a new epoch start afresh, the floors
    /// follow the new ISRs (an ISR of this broker alone frees the high watermark), and a
    /// partition no longer led here wakes its acks=all waits, which answer NOT_LEADER.
    func leadershipChanged() {
        let lost = led.withLock { led -> [PartitionFollowers] in
            var lost: [PartitionFollowers] = []
            for (key, followers) in led where !leads(followers) {
                lost.append(followers)
                led[key] = nil
            }
            return lost
        }
        for followers in lost { followers.partition.log.interruptWaits(.highWatermark) }
        forEachLed { followers, _ in updateFloor(followers) }
    }

    /// One periodic pass: every led partition's ISR checked against its followers'
    /// progress (lagging or suspect members out, caught-up replicas in).
    func checkInSyncReplicas() {
        forEachLed { followers, replicaSet in
            updateFloor(followers)
            changeISR(followers, replicaSet: replicaSet)
        }
    }

    /// An in-sync follower whose last report does not hold `offset` (its durable end under
    /// `always`), while this broker leads `partition` at `epoch`: what must never be when
    /// an acks=all answer covering `offset` goes out. Followers not yet heard at this
    /// epoch are not judged (a retried batch's original may be answered before they are).
    func memberMissing(_ offset: Int64, of partition: Partition, epoch: UInt32, isr: [UInt32]) -> (replica: UInt32, end: Int64)? {
        let key = PartitionManager.PartitionKey(topicID: partition.topicID, partition: partition.index)
        guard let followers = led.withLock({ $0[key] }), followers.leaderEpoch == epoch else { return nil }
        let durable = partition.log.config.fsyncPolicy == .always
        for member in isr where member != leadership.localBrokerID {
            guard let progress = followers.progress(of: member) else { continue }
            let end = durable ? progress.durableEnd : progress.logEnd
            if end <= offset { return (member, end) }
        }
        return nil
    }

    /// Follows the cluster's views and runs the periodic check, until cancelled.
    func run(ringID: UInt64) async {
        let (rings, bell) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        leadership.ringOnChange(id: ringID, bell)
        defer { leadership.stopRinging(id: ringID) }
        let interval = settings.checkInterval
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in rings { self.leadershipChanged() }
            }
            group.addTask {
                while (try? await Task.sleep(for: interval)) != nil { self.checkInSyncReplicas() }
            }
            await group.next()
            group.cancelAll()
        }
        await changesSettled()
    }

    /// Waits for the ISR changes under way (tests; shutdown).
    func changesSettled() async {
        while true {
            let tasks = changes.withLock { Array($0.tasks.values) }
            guard !tasks.isEmpty else { return }
            for task in tasks { await task.value }
        }
    }

    /// Sets `followers`' floor from the ISR the metadata shows now, if it still names this
    /// broker leader at their epoch.
    private func updateFloor(_ followers: PartitionFollowers) {
        let (topic, index, epoch) = (followers.partition.topicName, followers.partition.index, followers.leaderEpoch)
        followers.updateFloor { [leadership] in
            guard let replicaSet = leadership.replicaSet(topic: topic, partition: index), replicaSet.leaderEpoch == epoch,
                  replicaSet.leader == leadership.localBrokerID
            else { return nil }
            return replicaSet.isr
        }
    }

    private func leads(_ followers: PartitionFollowers) -> Bool {
        let partition = followers.partition
        return !partition.isClosed
            && leadership.verdict(topic: partition.topicName, partition: partition.index) == .leads(epoch: followers.leaderEpoch)
    }

    /// Calls `body` for every open partition this broker leads whose replicas the metadata knows.
    private func forEachLed(_ body: (PartitionFollowers, ReplicaSet) -> Void) {
        for partition in partitions.allPartitions() {
            guard case .leads(let epoch) = leadership.verdict(topic: partition.topicName, partition: partition.index),
                  let replicaSet = leadership.replicaSet(topic: partition.topicName, partition: partition.index),
                  replicaSet.leaderEpoch == epoch
            else { continue }
            body(followers(of: partition, replicaSet: replicaSet), replicaSet)
        }
    }

    private func changeISR(_ followers: PartitionFollowers, replicaSet: ReplicaSet) {
        guard let changer = settings.isrChanger,
              let wanted = followers.nextChange(
                replicas: replicaSet.replicas, isr: replicaSet.isr, highWatermark: followers.partition.highWatermark,
                nowMs: nowMs, lagMaxMs: settings.replicaLagTimeMaxMs)
        else { return }
        let partition = followers.partition
        let (topic, index, epoch, logger) = (partition.topicName, partition.index, followers.leaderEpoch, logger)
        logger.info("changing the in-sync replicas", metadata: [
            "topic": "\(topic)", "partition": "\(index)", "leaderEpoch": "\(epoch)", "from": "\(replicaSet.isr)", "to": "\(wanted)"])
        changes.withLock { changes in
            let id = changes.next
            changes.next += 1
            changes.tasks[id] = Task { [weak self] in
                let outcome = await changer.changeISR(topic: topic, partition: index, leaderEpoch: epoch, isr: wanted)
                switch outcome {
                case .written:
                    break  // counts once the metadata shows it
                case .stale:
                    followers.changeNotWritten(wanted)
                case .failed(let reason):
                    followers.changeNotWritten(wanted)
                    logger.warning("could not change the in-sync replicas; the next check tries again", metadata: [
                        "topic": "\(topic)", "partition": "\(index)", "reason": "\(reason)"])
                }
                _ = self?.changes.withLock { $0.tasks.removeValue(forKey: id) }
            }
        }
    }
}

extension Broker {
    /// One pass of the periodic ISR check now, and the ISR changes it starts written (a
    /// test moves its manual clock and calls this instead of waiting for the period).
    public func checkInSyncReplicas() async {
        replicas?.checkInSyncReplicas()
        await replicas?.changesSettled()
    }

    /// What a new view of the cluster does (floors follow the ISRs, lost leaderships wake
    /// their acks=all waits), now, and the ISR changes under way written (for tests whose
    /// leadership the broker does not follow by itself).
    public func replicaSetsChanged() async {
        replicas?.leadershipChanged()
        await replicas?.changesSettled()
    }
}
