import SluiceBroker

/// How a follower fetches from its leaders (`ReplicaFetcher`). Every wait it makes is
/// bounded by one of these, and every answer it holds by `maxBytes`.
public struct ReplicaFetcherSettings: Sendable {
    /// `ReplicateRequest.max_wait_ms`: how long a leader holds a request it has nothing
    /// for. Also how late a follower notices a partition whose hold ended (it asks again
    /// only when the answer comes).
    public var maxWait: Duration = BrokerLimits.defaults.replicateDefaultMaxWait.value
    /// `ReplicateRequest.max_bytes`: record bytes in one answer (at least one whole batch
    /// of the first partition with data, even a bigger one).
    public var maxBytes: Int = 4 * 1024 * 1024
    /// The largest message the follower's connection accepts: `maxBytes` plus the largest
    /// single batch a leader may send beyond it (the broker's own receive limit) and the
    /// answer's framing.
    public var maxReceiveMessageBytes: Int = 4 * 1024 * 1024 + 4 * 1024 * 1024 + 64 * 1024
    /// How long an answer may take beyond `maxWait` before the stream is given up as dead
    /// and the follower reconnects (a leader that stopped without closing its socket).
    public var answerSlack: Duration = .seconds(15)
    /// The first pause before reconnecting to a leader, doubled after each failure up to
    /// `maxReconnectBackoff`, back to this after an answer.
    public var reconnectBackoff: Duration = .milliseconds(100)
    public var maxReconnectBackoff: Duration = .seconds(5)
    /// How long a partition the leader answered UNKNOWN_LEADER_EPOCH (or another
    /// retriable refusal) for waits before it is asked for again.
    public var retryDelay: Duration = .milliseconds(200)
    /// How long a partition refused NOT_LEADER or FENCED_LEADER_EPOCH waits for new
    /// metadata before it is asked for again anyway (a new leader epoch ends it sooner).
    public var fencedRetryDelay: Duration = .seconds(5)
    /// Partitions one stream follows; more are left out (and logged) until some leave.
    /// The leader's bound on a session, so a leader never refuses one for its size.
    public var maxPartitionsPerLeader: Int = BrokerLimits.defaults.replicateMaxPartitionsPerSession.value
    /// Stored bytes the scrub reads per step (`PartitionLog.verifyStoredBatches`), so it
    /// never holds a log's lock for long.
    public var scrubStepBytes: Int = 1024 * 1024

    public init() {}

    /// The bound on one answer: the leader's hold plus the slack.
    var answerBound: Duration { maxWait + answerSlack }
}
