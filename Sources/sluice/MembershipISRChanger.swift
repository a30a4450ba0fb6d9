import SluiceBroker
import SluiceCluster

/// How a partition leader started by `sluice serve --cluster` changes its in-sync
/// replicas: the cluster's fenced write (`PartitionISRWriter`: a Txn comparing the
/// partition key's `mod_revision` and the leader epoch) through the etcd client of this
/// broker's membership. The membership exists only once the broker listens and has
/// joined; until then, and after it has left, every change fails and the leader tries
/// again later.
struct MembershipISRChanger: ISRChanger {
    let brokerID: UInt32
    let keys: ClusterKeys
    /// The membership's etcd client; nil while there is none.
    let client: @Sendable () -> EtcdClient?

    func changeISR(topic: String, partition: UInt32, leaderEpoch: UInt32, isr: [UInt32]) async -> ISRChangeOutcome {
        guard let client = client() else {
            return .failed("broker \(brokerID) is not in the cluster (it has not joined yet, or has left)")
        }
        do {
            let written = try await PartitionISRWriter(kv: client.kv, keys: keys).changeISR(
                topic: topic, partition: partition, leader: brokerID, leaderEpoch: leaderEpoch, isr: isr)
            return written ? .written : .stale
        } catch {
            return .failed("\(error)")
        }
    }
}
