public import Logging
import NIOCore
import SluiceAPI
import Synchronization

/// The elected controller of a cluster, for the term that began at `electionRevision`
/// (the `create_revision` of the controller key it created).
///
/// Every write it makes is one etcd Txn whose compares are the fence,
/// `create_revision(controller) == electionRevision`, and `mod_revision(key) == ` the
/// revision it read each key at (`create_revision(key) == 0` for a key it creates). Nothing
/// else authorises a write: not its lease, not `isActive`, not a cached read. A controller
/// that was paused past its lease finds the key gone or recreated by its successor, so its
/// Txn changes nothing and it throws `ControllerError.fenced`; a compare that fails only on
/// a key's revision was a concurrent change, so it reads again and retries.
///
/// Its operations run one at a time, each reading the cluster's keys at one revision
/// first (`ClusterKeyspace`).
public final class Controller: TopicController {
    public let info: BrokerInfo
    public let electionRevision: Int64
    let client: EtcdClient
    let keys: ClusterKeys
    let logger: Logger
    private let active = Atomic<Bool>(true)
    private let queue = OneAtATime()

    public init(info: BrokerInfo, electionRevision: Int64, client: EtcdClient, keys: ClusterKeys, logger: Logger) {
        self.info = info
        self.electionRevision = electionRevision
        self.client = client
        self.keys = keys
        self.logger = logger
    }

    /// False once the controller saw itself fenced or its term ended (`deactivate()`): it
    /// then refuses to start operations. An optimisation only: the fence decides.
    public var isActive: Bool { active.load(ordering: .acquiring) }

    /// Ends the term locally: later operations throw `notController`.
    public func deactivate() {
        active.store(false, ordering: .releasing)
    }

    // MARK: Topics

    /// See `TopicController`. The service layer has checked the name (`TopicName`'s rules:
    /// never a `/`) and the partition count (at least 1) before asking; a bad one here is a
    /// bug, stopped by a precondition.
    public func createTopic(
        name: String, partitions: UInt32, replicationFactor: UInt32, configs: [String: String]
    ) async throws(ControllerError) -> ClusterTopic {
        precondition(partitions > 0, "a topic has at least one partition")
        precondition(!name.isEmpty && !name.contains("/"), "topic names never hold /: \(name)")
        return try await changing("the keys of topic \"\(name)\" kept changing while it was being created") {
            () async throws(ControllerError) -> ClusterTopic? in
            let keyspace = try await self.readForWriting()
            if keyspace.topics[name] != nil { throw .topicExists(name) }
            let placement = try keyspace.placement(partitions: partitions, replicationFactor: replicationFactor)
            let record = TopicRecord(id: TopicRecord.newID(), configs: configs, partitions: partitions)
            let topic = ClusterTopic(name: name, id: record.id ?? "", configs: configs, partitions: placement.map(PartitionState.init(newOn:)))
            let topicKey = self.keys.topic(name)
            if keyspace.partitions[name] != nil {
                // Leftovers of an earlier creation that did not finish go first.
                let prefix = self.keys.partitionsPrefix(of: name)
                guard try await self.fencedTxn([.absent(topicKey)], [.delete(prefix, rangeEnd: EtcdKVClient.prefixEnd(of: prefix))])
                else { return nil }
            }
            guard try await self.writePartitions(topic.partitions, from: 0, of: name, record: record, topicAsRead: .absent(topicKey))
            else { return nil }
            self.logger.notice("created topic \(name)", metadata: ["id": "\(topic.id)", "partitions": "\(partitions)", "replicas": "\(placement)"])
            return topic
        }
    }

    /// Writes the partition keys of `states` (partition `first` onwards) and then the topic
    /// key, so that readers see all of them or none (`ClusterKeyspace`'s rule): the
    /// partition keys go in Txns of `partitionKeysPerTxn`, each requiring `topicAsRead`
    /// (the topic key absent, or at the revision read) and its partition keys new; the last
    /// Txn also puts `record`, from which readers count the new partitions. A crash or an
    /// etcd failure before the last Txn leaves only ignored leftovers. False when a compare
    /// other than the fence failed (the caller reads again).
    func writePartitions(
        _ states: [PartitionState], from first: UInt32, of name: String, record: TopicRecord, topicAsRead: EtcdCompare
    ) async throws(ControllerError) -> Bool {
        precondition(Int(first) + states.count == Int(record.partitions), "the topic key counts exactly the partitions written")
        let perTxn = ClusterLimits.defaults.partitionKeysPerTxn.value
        for start in stride(from: 0, to: states.count, by: perTxn) {
            let end = min(start + perTxn, states.count)
            let partitionKeys = (start..<end).map { keys.partition(name, first + UInt32($0)) }
            var operations = zip(partitionKeys, states[start..<end]).map { EtcdRequestOp.put($0, $1.encoded()) }
            // The topic key last, in the last Txn: from then on readers count the partitions.
            if end == states.count { operations.append(.put(keys.topic(name), record.encoded())) }
            guard try await fencedTxn([topicAsRead] + partitionKeys.map(EtcdCompare.absent), operations) else { return false }
        }
        return true
    }

    public func deleteTopic(name: String) async throws(ControllerError) {
        try await changing("the key of topic \"\(name)\" kept changing while it was being deleted") {
            () async throws(ControllerError) -> Void? in
            let keyspace = try await self.readForWriting()
            guard let record = keyspace.topics[name] else { throw .unknownTopic(name) }
            let prefix = self.keys.partitionsPrefix(of: name)
            // The topic key and its partitions in one Txn, however many: a range
            // delete is one operation.
            guard try await self.fencedTxn(
                [.modRevision(self.keys.topic(name), .equal, record.modRevision)],
                [.delete(self.keys.topic(name)), .delete(prefix, rangeEnd: EtcdKVClient.prefixEnd(of: prefix))])
            else { return nil }
            self.logger.notice("deleted topic \(name)")
            return ()
        }
    }

    // MARK: Fencing

    /// Runs one Txn of `operations` if `compares` and the fence hold. True when applied;
    /// false when only `compares` failed (a concurrent change: read again). Throws
    /// `.fenced` when the controller key is gone or belongs to another term, and marks this
    /// controller inactive.
    func fencedTxn(_ compares: [EtcdCompare], _ operations: [EtcdRequestOp]) async throws(ControllerError) -> Bool {
        let fence = EtcdCompare.createRevision(keys.controller, .equal, electionRevision)
        let response = try await etcd {
            try await self.client.kv.txn(compare: [fence] + compares, success: operations, failure: [.range(self.keys.controller)])
        }
        if response.succeeded { return true }
        let holder = response.responses.first?.range?.kvs.first
        guard holder?.createRevision == electionRevision else {
            deactivate()
            let successor = holder.map { "\(BrokerInfo(decoding: $0.value).map { "\($0)" } ?? "an unreadable value") elected at revision \($0.createRevision)" }
            logger.error(
                "fenced: this controller (elected at revision \(electionRevision)) lost its lease; its write changed nothing",
                metadata: ["controller key": "\(successor ?? "absent")"])
            throw .fenced(electionRevision: electionRevision)
        }
        return false
    }

    /// Deletes the controller key if it is still this term's (a fenced Txn), so the next
    /// election need not wait for the lease to expire. Throws `.fenced` when a successor
    /// holds it; tries up to `attempts` times when etcd does not answer (a connection that
    /// died while the process was paused), then throws `.etcd`.
    public func stepDown(attempts: Int = ClusterLimits.defaults.controllerAttempts.value) async throws(ControllerError) {
        deactivate()
        var failure = ControllerError.etcd("no attempt")
        for _ in 0..<attempts {
            do throws(ControllerError) {
                _ = try await fencedTxn([], [.delete(keys.controller)])
                return
            } catch .etcd(let detail) {
                failure = .etcd(detail)
            }
        }
        throw failure
    }

    /// The cluster's keys, read at one revision, once this controller may still act.
    func readForWriting() async throws(ControllerError) -> ClusterKeyspace {
        let keyspace = try await etcd { try await ClusterKeyspace.read(client: self.client, keys: self.keys) }
        guard isActive else { throw .notController(current: keyspace.controller?.value ?? nil) }
        return keyspace
    }

    /// `body`'s result; any error but a `ControllerError` becomes `.etcd`.
    func etcd<Value>(_ body: () async throws -> Value) async throws(ControllerError) -> Value {
        do {
            return try await body()
        } catch let error as ControllerError {
            throw error
        } catch {
            throw .etcd("\(error)")
        }
    }

    /// Runs `attempt` after every operation started before it has finished, again while
    /// it answers nil (a concurrent change of a key it read: it reads again), up to
    /// `controllerAttempts` times; then throws `.etcd(stillChanging)`.
    func changing<Value: Sendable>(
        _ stillChanging: String, _ attempt: @escaping @Sendable () async throws(ControllerError) -> Value?
    ) async throws(ControllerError) -> Value {
        try await serially { () async throws(ControllerError) -> Value in
            for _ in 0..<ClusterLimits.defaults.controllerAttempts.value {
                if let done = try await attempt() { return done }
            }
            throw .etcd(stillChanging)
        }
    }

    /// Runs `body` after every operation started before it has finished.
    func serially<Value: Sendable>(_ body: @escaping @Sendable () async throws(ControllerError) -> Value) async throws(ControllerError) -> Value {
        try await queue.run(body).get()
    }
}

/// Runs operations one at a time, in the order they were started.
final class OneAtATime: Sendable {
    private let tail = Mutex<Task<Void, Never>?>(nil)

    func run<Value: Sendable, Failure: Error>(
        _ body: @escaping @Sendable () async throws(Failure) -> Value
    ) async -> Result<Value, Failure> {
        let task = tail.withLock { tail -> Task<Result<Value, Failure>, Never> in
            let previous = tail
            let task = Task { () async -> Result<Value, Failure> in
                await previous?.value
                do throws(Failure) { return .success(try await body()) } catch { return .failure(error) }
            }
            tail = Task { _ = await task.value }
            return task
        }
        return await task.value
    }
}
