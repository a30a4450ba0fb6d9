import Logging
import SluiceBroker
import SluiceCluster
import SluiceStorage
import Synchronization

/// A follower's side of replication: from each snapshot of the cluster's metadata, the
/// partitions this broker must copy (it is a replica, another live broker leads, and its
/// local log is open), grouped by leader; one `ReplicaFetcher` per leader broker, told
/// which partitions it follows. A partition this broker now leads, or whose leader left,
/// leaves its fetcher before `apply` returns (the fetcher appends under the same lock its
/// set is changed under), so nothing fetched from a former leader is appended after.
///
/// `BrokerServer` applies each snapshot after `LocalTopicFollower` has (so the logs of a
/// new topic exist), and stops the manager before the partitions close.
final class ReplicaFetcherManager: Sendable {
    private struct State {
        var fetchers: [UInt32: ReplicaFetcher] = [:]
        /// By topic id and partition: each local copy's health, kept while this broker is
        /// a replica, so a copy scrubbed once is not scrubbed again when leadership moves.
        var health: [LocalReplica: ReplicaHealth] = [:]
        var stopped = false
    }

    private struct LocalReplica: Hashable {
        let topicID: String
        let partition: UInt32
    }

    private let state = Mutex(State())
    private let broker: Broker
    private let brokerID: UInt32
    private let settings: ReplicaFetcherSettings
    private let scrubber: ReplicaScrubber
    /// What each new fetcher is given.
    private let fetching: ReplicaFetcher.Context
    private let logger: Logger

    init(broker: Broker, brokerID: UInt32, settings: ReplicaFetcherSettings, logger: Logger) {
        self.broker = broker
        self.brokerID = brokerID
        self.settings = settings
        self.logger = logger
        fetching = ReplicaFetcher.Context(
            brokerID: brokerID, leadership: broker.leadership, clock: broker.storage.clock, settings: settings, logger: logger)
        scrubber = ReplicaScrubber(broker: broker, stepBytes: settings.scrubStepBytes, logger: logger)
    }

    /// Brings the fetchers in line with `snapshot`.
    func apply(_ snapshot: ClusterSnapshot) {
        guard snapshot.revision > 0 else { return }
        let (wanted, replicas) = followed(in: snapshot)
        var stale: [ReplicaFetcher] = []
        state.withLock { s in
            guard !s.stopped else { return }
            s.health = s.health.filter { replicas.contains($0.key) }
            for (leader, fetcher) in s.fetchers where wanted[leader] == nil || snapshot.brokers[leader]?.address != fetcher.leader.address {
                // Emptied first, under its lock: nothing more is appended for it.
                fetcher.follow([:])
                stale.append(fetcher)
                s.fetchers[leader] = nil
            }
            for (leader, partitions) in wanted {
                var targets: [ReplicaKey: FollowTarget] = [:]
                for (key, found) in partitions {
                    let local = LocalReplica(topicID: found.partition.topicID, partition: found.partition.index)
                    let health = s.health[local] ?? {
                        let fresh = ReplicaHealth()
                        s.health[local] = fresh
                        // An empty copy (a new partition) has nothing to check: it must not
                        // report itself suspect, which would take it out of the ISR at once.
                        let log = found.partition.log
                        if log.logEndOffset == log.logStartOffset {
                            fresh.scrubFinished()
                        } else {
                            scrubber.enqueue(found.partition, fresh)
                        }
                        return fresh
                    }()
                    targets[key] = FollowTarget(partition: found.partition, leaderEpoch: found.epoch, health: health)
                }
                let fetcher = s.fetchers[leader] ?? {
                    let info = snapshot.brokers[leader]!
                    let fresh = ReplicaFetcher(leader: info, context: fetching)
                    s.fetchers[leader] = fresh
                    return fresh
                }()
                fetcher.follow(targets)
                fetcher.start()
            }
        }
        for fetcher in stale { Task { await fetcher.stop() } }
    }

    /// Stops every fetcher and the scrub, and waits for them.
    func stop() async {
        let fetchers = state.withLock { s -> [ReplicaFetcher] in
            s.stopped = true
            defer { s.fetchers = [:] }
            return Array(s.fetchers.values)
        }
        for fetcher in fetchers { fetcher.follow([:]) }
        for fetcher in fetchers { await fetcher.stop() }
        await scrubber.stop()
    }

    /// The partitions to follow, by leader, and every local copy this broker is a replica of.
    private func followed(in snapshot: ClusterSnapshot)
        -> (wanted: [UInt32: [ReplicaKey: (partition: Partition, epoch: UInt32)]], replicas: Set<LocalReplica>)
    {
        var wanted: [UInt32: [ReplicaKey: (partition: Partition, epoch: UInt32)]] = [:]
        var replicas = Set<LocalReplica>()
        for topic in snapshot.topics.values {
            for (index, state) in topic.partitions.enumerated() where state.replicas.contains(brokerID) {
                // A log not open yet (the topic just created) is followed from the next snapshot.
                guard let partition = try? broker.followedPartition(topic: topic.name, index: UInt32(index)) else { continue }
                replicas.insert(LocalReplica(topicID: partition.topicID, partition: partition.index))
                guard let leader = state.leader, leader != brokerID, snapshot.brokers[leader] != nil else { continue }
                let key = ReplicaKey(topic: topic.name, partition: UInt32(index))
                guard wanted[leader, default: [:]].count < settings.maxPartitionsPerLeader else {
                    logger.error("too many partitions to follow from one leader; this one is not copied", metadata: [
                        "partition": "\(key)", "leader": "\(leader)", "limit": "\(settings.maxPartitionsPerLeader)"])
                    continue
                }
                wanted[leader, default: [:]][key] = (partition, state.leaderEpoch)
            }
        }
        return (wanted, replicas)
    }
}
