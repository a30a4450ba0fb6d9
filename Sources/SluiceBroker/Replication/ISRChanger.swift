/// How a partition's leader changes its in-sync replicas. The broker layer knows nothing
/// of etcd: SluiceService gives the `Broker` one built on SluiceCluster's fenced write of
/// the partition's key (a Txn comparing the key's `mod_revision` and the leader epoch, so a
/// leader that lost its leadership, or raced the controller, writes nothing).
///
/// One change per partition is outstanding at a time; the new ISR counts (for the high
/// watermark and `min.insync.replicas`) only once the metadata shows it, as in Kafka's
/// KIP-497: a shrink is never assumed before it is committed.
public protocol ISRChanger: Sendable {
    /// Writes `isr` as the in-sync replicas of `topic`/`partition` if this broker still
    /// leads it at `leaderEpoch`.
    func changeISR(topic: String, partition: UInt32, leaderEpoch: UInt32, isr: [UInt32]) async -> ISRChangeOutcome
}

public enum ISRChangeOutcome: Sendable, Equatable {
    /// Written; the metadata will show it.
    case written
    /// The partition's state moved on (another leader, another epoch, a concurrent change):
    /// nothing was written; the leader waits for the metadata to show what happened.
    case stale
    /// etcd could not be reached or refused; the leader tries again later.
    case failed(String)
}
