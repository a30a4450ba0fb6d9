/// Every time and count limit of a broker's dealings with etcd, with its default and why it
/// is that value: the one place they are stated, like `WireLimits`, `StorageLimits` and
/// `BrokerLimits`. `EtcdConnector.Configuration`, `EtcdWatch.Options`,
/// `EtcdLeaseKeepAlive`, `BrokerRegistration`, the controller (`Controller`), a partition
/// leader's ISR write (`PartitionISRWriter`) and `sluice serve --lease-ttl` take their
/// defaults from here; docs/limits.md ("Cluster") shows this table.
///
/// Each limit is `(value, why)`; read the value as `ClusterLimits.defaults.NAME.value`.
public struct ClusterLimits: Sendable {
    public static let defaults = ClusterLimits()
    private init() {}

    public let brokerLeaseTTLSeconds = (value: Int64(10), why: "how long a broker that stopped renewing (SIGKILL, a pause, a network cut) still counts as live: several renewals and an etcd leader election (about a second) fit in it, and a dead broker is noticed within seconds")
    public let renewalsPerTTL = (value: 3, why: "a lease is renewed every third of its time to live, as etcd's own client does: two renewals in a row can be lost before it expires")
    public let etcdRequestTimeout = (value: Duration.seconds(5), why: "a unary etcd call's deadline: above etcd's own proposal timeout, so a stuck member fails a metadata operation instead of hanging it")
    public let etcdConnectTimeout = (value: Duration.seconds(3), why: "TCP connect and etcd's HTTP/2 SETTINGS, per endpoint tried: a live member on a LAN answers in milliseconds, so the next endpoint is tried soon")
    public let watchReconnectFor = (value: Duration.seconds(60), why: "how long a watch keeps reconnecting before it gives up: a member restart or a leader election takes seconds; past a minute the watcher reads the state again instead")
    public let retryPauseCap = (value: Duration.seconds(5), why: "the longest pause between attempts to reach an etcd that does not answer (registering again, reading the brokers again): retries stay cheap for etcd and recovery stays prompt")
    public let partitionKeysPerTxn = (value: 100, why: "partition keys one controller Txn writes (a topic's creation, a failover): with the controller's fence and the topic key's compare it stays under etcd's default --max-txn-ops of 128, which limits a Txn's compares and its operations each")
    public let controllerAttempts = (value: 5, why: "how many times a controller operation reads the keys again and retries after a compare on a key's revision failed (a concurrent change, not the fence): one controller makes every write, so a second conflict in a row is rare and a fifth means something else keeps writing")
    public let controlledShutdownTimeout = (value: Duration.seconds(10), why: "how long a broker stopping with SIGTERM waits, after leaving etcd and while still serving, for the controller to move the partitions it leads to other in-sync replicas (a controlled shutdown): a move takes one etcd round trip and a watch event; past it the broker stops anyway, as if killed")
    public let leaderRebalanceInterval = (value: Duration.seconds(300), why: "how often the controller moves leadership back to each partition's preferred replica (the first, where placement spread leaders) once it is live and in sync, as Kafka's leader.imbalance.check.interval.seconds: after a failover and a restart leadership stays on the brokers that stayed until then, and each move makes producers and followers find the new leader, so it is not done at once")
    public let isrWriteAttempts = (value: 3, why: "how many times a partition leader's ISR write (PartitionISRWriter) reads the key and sends its Txn when etcd did not answer: a member restart or an etcd leader election passes within them; past that the leader is told and tries again later, so a change is never lost, only late")
}
