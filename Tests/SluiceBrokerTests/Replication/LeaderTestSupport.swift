import Logging
import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceStorage
import SluiceTestSupport
import Synchronization
import Testing

/// Cluster metadata a test sets by hand: each partition's replica set, and a ring for
/// every stream that asked to hear of changes.
final class FakeLeadership: PartitionLeadership {
    private struct State {
        var sets: [String: ReplicaSet] = [:]
        /// What `replicaSet` answers instead (a view read a moment after the verdict's).
        var laterViews: [String: ReplicaSet?] = [:]
        var bells: [UInt64: AsyncStream<Void>.Continuation] = [:]
    }

    let localBrokerID: UInt32
    private let state = Mutex(State())

    init(localBrokerID: UInt32 = 1) { self.localBrokerID = localBrokerID }

    private static func key(_ topic: String, _ partition: UInt32) -> String { "\(topic)/\(partition)" }

    /// Sets a partition's replica set and rings every listener.
    func set(_ topic: String, _ partition: UInt32, _ replicaSet: ReplicaSet) {
        let bells = state.withLock { s in
            s.sets[Self.key(topic, partition)] = replicaSet
            return Array(s.bells.values)
        }
        for bell in bells { bell.yield() }
    }

    /// Changes only the ISR.
    func setISR(_ topic: String, _ partition: UInt32, _ isr: [UInt32]) {
        guard var replicaSet = replicaSet(topic: topic, partition: partition) else { return }
        replicaSet.isr = isr
        set(topic, partition, replicaSet)
    }

    /// The partition unknown to the metadata (the verdict is `.unknown`).
    func forget(_ topic: String, _ partition: UInt32) {
        state.withLock { s in
            s.sets[Self.key(topic, partition)] = nil
            s.laterViews[Self.key(topic, partition)] = nil
        }
    }

    /// Makes `replicaSet` answer `view` (nil: unknown) while `verdict` still answers from
    /// the set: leadership moving between the two questions.
    func answerReplicaSet(_ topic: String, _ partition: UInt32, with view: ReplicaSet?) {
        state.withLock { $0.laterViews[Self.key(topic, partition)] = .some(view) }
    }

    func verdict(topic: String, partition: UInt32) -> LeadershipVerdict {
        guard let replicaSet = state.withLock({ $0.sets[Self.key(topic, partition)] }) else { return .unknown }
        guard replicaSet.leader == localBrokerID else {
            return .elsewhere(replicaSet.leader.map {
                LeaderHint(brokerId: $0, address: "10.0.0.\($0):9092", leaderEpoch: replicaSet.leaderEpoch)
            })
        }
        return .leads(epoch: replicaSet.leaderEpoch)
    }

    func replicaSet(topic: String, partition: UInt32) -> ReplicaSet? {
        state.withLock { s in
            if let later = s.laterViews[Self.key(topic, partition)] { return later }
            return s.sets[Self.key(topic, partition)]
        }
    }

    func ringOnChange(id: UInt64, _ bell: AsyncStream<Void>.Continuation) {
        state.withLock { _ = $0.bells.updateValue(bell, forKey: id) }
    }

    func stopRinging(id: UInt64) {
        state.withLock { _ = $0.bells.removeValue(forKey: id) }
    }
}

/// Records the ISR changes asked for and, when it answers `.written`, shows them in the
/// metadata as the controller's write would.
/// A log handler keeping the messages logged at error and above, for tests of what a broker says.
final class ErrorLines: LogHandler, @unchecked Sendable {
    // @unchecked: `messages` is behind its mutex; the two settings are set once, before use.
    let messages = Mutex<[String]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .error

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    var all: [String] { messages.withLock { $0 } }

    func log(event: LogEvent) {
        guard event.level >= .error else { return }
        let details = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        messages.withLock { $0.append("\(event.message) \(details)") }
    }
}

final class FakeISRChanger: ISRChanger {
    private let asked = Mutex<[[UInt32]]>([])
    let leadership: FakeLeadership
    let outcome: ISRChangeOutcome
    /// False: a write answers `.written` but the metadata never shows it (another write put
    /// the old ISR back before the broker saw the new one).
    let showsWrites: Bool

    init(leadership: FakeLeadership, outcome: ISRChangeOutcome = .written, showsWrites: Bool = true) {
        self.leadership = leadership
        self.outcome = outcome
        self.showsWrites = showsWrites
    }

    /// The ISRs asked for, in order.
    var changes: [[UInt32]] { asked.withLock { $0 } }

    func changeISR(topic: String, partition: UInt32, leaderEpoch: UInt32, isr: [UInt32]) async -> ISRChangeOutcome {
        asked.withLock { $0.append(isr) }
        if outcome == .written, showsWrites, leadership.replicaSet(topic: topic, partition: partition)?.leaderEpoch == leaderEpoch {
            leadership.setISR(topic, partition, isr)
        }
        return outcome
    }
}

/// Broker 1 leading partition 0 of topic "t" (replicas 1, 2, 3) over a fake leadership,
/// with replicated logs on a manual clock, driven by hand: Replicate streams, produce.
struct LeaderUnderTest: Sendable {
    static let topic = "t"

    let broker: Broker
    let leadership: FakeLeadership
    let directory: TemporaryDirectory
    /// The followers' streams opened, for `stop()` to close.
    private let followers = FollowerCalls()

    final class FollowerCalls: Sendable {
        let calls = Mutex<[ReplicaCall]>([])
    }

    /// The ISR writer and clock the broker was given.
    var changer: FakeISRChanger { broker.replicationSettings.isrChanger as! FakeISRChanger }
    var clock: ManualClock { broker.storage.clock as! ManualClock }

    /// A Replicate stream of follower `replica`, closed by `stop()`.
    func follower(_ replica: UInt32, limits: ReplicateLimits = ReplicateLimits()) -> ReplicaCall {
        let call = ReplicaCall(broker, replica: replica, limits: limits)
        followers.calls.withLock { $0.append(call) }
        return call
    }

    static func start(
        isr: [UInt32] = [1, 2, 3], epoch: UInt32 = 3, fsync: FsyncPolicy = .never, minInsync: Int = 1,
        lagMaxMs: Int64 = 600_000, changeOutcome: ISRChangeOutcome = .written, showsWrites: Bool = true,
        errors: ErrorLines? = nil
    ) throws -> LeaderUnderTest {
        let leadership = FakeLeadership()
        leadership.set(topic, 0, ReplicaSet(replicas: [1, 2, 3], leader: 1, leaderEpoch: epoch, isr: isr))
        let changer = FakeISRChanger(leadership: leadership, outcome: changeOutcome, showsWrites: showsWrites)
        let clock = ManualClock()
        var storage = StorageSettings()
        storage.fsyncPolicy = fsync
        storage.clock = clock
        storage.maintenanceInterval = nil
        storage.replicated = true
        var replication = ReplicationSettings()
        replication.isrChanger = changer
        replication.replicaLagTimeMaxMs = lagMaxMs
        var logger = errors.map { lines in Logger(label: "leader-test") { _ in lines } } ?? Logger(label: "leader-test")
        logger.logLevel = errors == nil ? .critical : .error
        let directory = TemporaryDirectory()
        let broker = try Broker(
            directory: DataDirectory.open(directory.path), storage: storage, leadership: leadership, replication: replication,
            logger: logger)
        _ = try broker.createTopic(
            named: topic, partitions: 1, replicationFactor: 3, configs: ["min.insync.replicas": "\(minInsync)"], localPartitions: [0])
        return LeaderUnderTest(broker: broker, leadership: leadership, directory: directory)
    }

    var log: PartitionLog { get throws { try broker.partitionLog(topic: Self.topic, partition: 0) } }

    /// Ends every follower's stream, closes the broker and removes its directory.
    func stop() async throws {
        for follower in followers.calls.withLock({ $0 }) { try await follower.close() }
        await broker.close()
        directory.remove()
    }

    /// Produces `values` as one batch with `acks`, returning its answer.
    func produce(_ values: [String], acks: Acks = .leader, timeoutMs: UInt32 = 0) async throws -> ProduceResponse {
        let stream = ProduceCall(broker)
        stream.send(ProduceRequest(
            topic: Self.topic, partition: 0, acks: acks, timeoutMs: timeoutMs, batch: TestBatches.batch(values)))
        let answer = try await stream.next()
        try await stream.close()
        return answer
    }

    /// The position of follower `replica` at `logEnd` (durable there too), with the epochs given.
    static func position(
        _ logEnd: Int64, lastFetchedEpoch: Int32 = -1, currentEpoch: UInt32 = 3, suspect: Bool = false
    ) -> ReplicaPosition {
        ReplicaPosition(
            topic: topic, partition: 0, logEndOffset: logEnd, durableEndOffset: logEnd, lastFetchedEpoch: lastFetchedEpoch,
            currentLeaderEpoch: currentEpoch, suspect: suspect)
    }
}

/// One bidirectional stream on a `Broker` (Produce, Replicate), driven in process:
/// requests sent one by one, answers read in order.
final class InProcessCall<Request: Sendable, Response: Sendable>: Sendable {
    private let requests: AsyncStream<Request>.Continuation
    private let answers: AsyncStream<Response>
    private let task: Task<Void, any Error>

    init(_ serve: @escaping @Sendable (AsyncStream<Request>, @escaping @Sendable (Response) async throws -> Void) async throws -> Void) {
        let (requestStream, requests) = AsyncStream<Request>.makeStream()
        let (answers, answer) = AsyncStream<Response>.makeStream()
        self.requests = requests
        self.answers = answers
        task = Task {
            defer { answer.finish() }
            try await serve(requestStream) { answer.yield($0) }
        }
    }

    func send(_ request: Request) { requests.yield(request) }

    /// The next answer.
    func next() async throws -> Response {
        var iterator = answers.makeAsyncIterator()
        return try #require(await iterator.next(), "the stream ended without an answer")
    }

    /// Ends the request stream and waits for the broker to end its side.
    func close() async throws {
        requests.finish()
        try await task.value
    }
}

typealias ProduceCall = InProcessCall<ProduceRequest, ProduceResponse>

extension InProcessCall where Request == ProduceRequest, Response == ProduceResponse {
    convenience init(_ broker: Broker) {
        self.init { requests, respond in try await broker.produce(requests, respond: respond) }
    }
}

/// One follower's Replicate stream on a `Broker`: each `ask` sends a request and returns
/// its one answer.
struct ReplicaCall: Sendable {
    let replica: UInt32
    private let call: InProcessCall<ReplicateRequest, ReplicateResponse>

    init(_ broker: Broker, replica: UInt32, limits: ReplicateLimits) {
        self.replica = replica
        call = InProcessCall { requests, respond in try await broker.replicate(requests, limits: limits, respond: respond) }
    }

    /// Sends a request without waiting for its answer.
    func send(_ positions: [ReplicaPosition], maxWaitMs: UInt32 = 60_000, maxBytes: UInt32 = 0) {
        call.send(ReplicateRequest(replicaId: replica, partitions: positions, maxWaitMs: maxWaitMs, maxBytes: maxBytes))
    }

    /// The answer to the request sent last.
    func answer() async throws -> ReplicateResponse { try await call.next() }

    func ask(_ positions: [ReplicaPosition], maxWaitMs: UInt32 = 60_000, maxBytes: UInt32 = 0) async throws -> ReplicateResponse {
        send(positions, maxWaitMs: maxWaitMs, maxBytes: maxBytes)
        return try await answer()
    }

    func close() async throws { try await call.close() }
}
