import SluiceAPI
import SluiceBroker
import SluiceCluster
import Synchronization

/// Leadership as the cluster's metadata says: a broker leads a partition when the newest
/// snapshot names it the partition's leader. One lock-protected snapshot read per
/// question (`ClusterMetadataCache.snapshot`), so Produce can ask for every batch.
final class ClusterLeadership: PartitionLeadership {
    private let metadata: ClusterMetadataCache
    private let brokerID: UInt32
    /// One task per ringing stream, following the cache's snapshots.
    private let ringers = Mutex<[UInt64: Task<Void, Never>]>([:])

    init(metadata: ClusterMetadataCache, brokerID: UInt32) {
        self.metadata = metadata
        self.brokerID = brokerID
    }

    func verdict(topic: String, partition: UInt32) -> LeadershipVerdict {
        let snapshot = metadata.snapshot
        guard let state = snapshot.partition(topic, partition) else { return .unknown }
        if state.leader == brokerID { return .leads(epoch: state.leaderEpoch) }
        return .elsewhere(snapshot.leaderHint(of: topic, partition))
    }

    var localBrokerID: UInt32 { brokerID }

    func replicaSet(topic: String, partition: UInt32) -> ReplicaSet? {
        guard let state = metadata.snapshot.partition(topic, partition) else { return nil }
        return ReplicaSet(replicas: state.replicas, leader: state.leader, leaderEpoch: state.leaderEpoch, isr: state.isr)
    }

    func ringOnChange(id: UInt64, _ bell: AsyncStream<Void>.Continuation) {
        let snapshots = metadata.snapshots()
        let task = Task {
            for await _ in snapshots { bell.yield() }
        }
        let replaced = ringers.withLock { $0.updateValue(task, forKey: id) }
        assert(replaced == nil, "stream \(id) rings on leadership changes twice")
    }

    func stopRinging(id: UInt64) {
        ringers.withLock { $0.removeValue(forKey: id) }?.cancel()
    }
}

extension ClusterSnapshot {
    /// The partition's live leader as a NOT_LEADER answer names it.
    func leaderHint(of topic: String, _ partition: UInt32) -> LeaderHint? {
        leader(of: topic, partition).map { LeaderHint(brokerId: $0.broker.id, address: $0.broker.address, leaderEpoch: $0.epoch) }
    }
}
