// CONTRACT (issue 15): a partition leader's fenced write of its in-sync replicas. The
// signature is fixed; the body is being written (branch `cluster`).

/// Writes a partition's ISR on behalf of its leader: reads `/sluice/<c>/partitions/<t>/<p>`,
/// checks that it still names `leader` at `leaderEpoch`, and puts the same state with the
/// new ISR in a Txn comparing the key's `mod_revision` with the one read (so a concurrent
/// change by the controller, a failover or another ISR change, wins and this writes
/// nothing). The ISR must hold the leader and be a subset of the replicas.
public struct PartitionISRWriter: Sendable {
    public let kv: EtcdKVClient
    public let keys: ClusterKeys

    public init(kv: EtcdKVClient, keys: ClusterKeys) {
        self.kv = kv
        self.keys = keys
    }

    /// True when written; false when the partition's state moved on (another leader or
    /// epoch, or a concurrent write): the caller waits for the metadata to show it.
    public func changeISR(
        topic: String, partition: UInt32, leader: UInt32, leaderEpoch: UInt32, isr: [UInt32]
    ) async throws(ControllerError) -> Bool {
        preconditionFailure("PartitionISRWriter.changeISR: being written (issue 15, branch cluster)")
    }
}
