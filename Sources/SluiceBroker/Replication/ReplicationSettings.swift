/// A partition leader's replication choices (`sluice serve --cluster`): how it changes
/// its in-sync replicas, how long a follower may lag, and the bounds of a Replicate
/// stream. The defaults, and why each is what it is, are `BrokerLimits`'s
/// (docs/limits.md). A single node ignores them: nothing replicates from it.
public struct ReplicationSettings: Sendable {
    /// Writes a partition's new ISR (SluiceService's adapter on SluiceCluster's fenced
    /// write); nil leaves the ISR as the controller wrote it (tests, a single node).
    public var isrChanger: (any ISRChanger)?
    /// A follower not caught up for this long leaves the ISR (`sluice serve --replica-lag-time-max-ms`).
    public var replicaLagTimeMaxMs: Int64 = BrokerLimits.defaults.replicaLagTimeMaxMs.value
    /// Bounds of each Replicate stream.
    public var limits = ReplicateLimits()

    public init() {}

    /// How often the leader looks for followers to drop from (or add to) the ISR: twice
    /// per lag bound, as Kafka's ReplicaManager does, so a follower is dropped at most
    /// 1.5 times the bound after it fell behind.
    var checkInterval: Duration { .milliseconds(max(1, replicaLagTimeMaxMs / 2)) }
}

/// Limits of one Replicate stream (proto section "Replicate").
public struct ReplicateLimits: Sendable {
    /// `max_wait_ms` when a request says 0.
    public var defaultMaxWait: Duration = BrokerLimits.defaults.replicateDefaultMaxWait.value
    /// `max_bytes` when a request says 0, and the most a request may ask.
    public var maxBytes: Int = BrokerLimits.defaults.replicateDefaultMaxBytes.value
    /// Partitions one stream may follow; a request adding more gets an error for each
    /// partition past the bound.
    public var maxPartitions: Int = BrokerLimits.defaults.replicateMaxPartitionsPerSession.value

    public init() {}
}
