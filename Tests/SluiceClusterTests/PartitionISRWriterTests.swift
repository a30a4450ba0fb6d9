import NIOCore
import SluiceAPI
@testable import SluiceCluster
import SluiceTestSupport
import SluiceWire
import Synchronization
import Testing

/// A partition leader's fenced ISR write against a real etcd: written when the key still
/// names the leader at its epoch; nothing written when the controller moved the leader,
/// at another epoch, or when the controller wrote between the read and the Txn.
@Suite("PartitionISRWriter", .timeLimit(.minutes(1)), .enabled(if: EtcdProcess.binary != nil, Comment(rawValue: etcdMissing)))
struct PartitionISRWriterTests {
    let keys = ClusterKeys(clusterName: "isr")

    /// Topic "t" with one partition in `state`, whole by the readers' rule, as the
    /// controller would have written it.
    func putTopic(_ state: PartitionState, client: EtcdClient) async throws {
        _ = try await client.kv.txn(
            compare: [], success: [.put(keys.partition("t", 0), state.encoded()), .put(keys.topic("t"), TopicRecord(configs: [:], partitions: 1).encoded())])
    }

    func stored(_ client: EtcdClient) async throws -> (state: PartitionState?, modRevision: Int64?) {
        let kv = try await client.kv.range(key: keys.partition("t", 0)).kvs.first
        return (kv.flatMap { PartitionState(decoding: $0.value) }, kv?.modRevision)
    }

    @Test("the leader at its epoch writes the ISR, nothing else changes; the same ISR again is written without a Txn")
    func written() async throws {
        try await withEtcdClient { _, client in
            try await putTopic(PartitionState(replicas: [1, 2, 3], leader: 1, leaderEpoch: 2, isr: [1, 2, 3]), client: client)
            let writer = PartitionISRWriter(client: client, keys: keys)
            #expect(try await writer.changeISR(topic: "t", partition: 0, leader: 1, leaderEpoch: 2, isr: [1, 3]))
            let (shrunk, revision) = try await stored(client)
            #expect(shrunk == PartitionState(replicas: [1, 2, 3], leader: 1, leaderEpoch: 2, isr: [1, 3]))

            #expect(try await writer.changeISR(topic: "t", partition: 0, leader: 1, leaderEpoch: 2, isr: [1, 3]))
            #expect(try await stored(client).modRevision == revision, "already written: no second write")

            #expect(try await writer.changeISR(topic: "t", partition: 0, leader: 1, leaderEpoch: 2, isr: [1, 3, 2]))
            #expect(try await stored(client).state?.isr == [1, 3, 2])
        }
    }

    @Test("after the controller moved the leader (the old leader's broker left), the old leader's write is stale and changes nothing")
    func staleAfterFailover() async throws {
        try await withEtcdClient { _, client in
            for id in UInt32(2)...3 { try await putBroker(id, keys: keys, client: client) }
            try await putTopic(PartitionState(newOn: [1, 2, 3]), client: client)
            let (term, controller) = try await elect(BrokerInfo(id: 2, address: "127.0.0.1:9102"), keys: keys, client: client)
            // Broker 1 is not registered: the controller moves its partition.
            let moves = try await controller.reconcile()
            #expect(moves.map(\.after) == [PartitionState(replicas: [1, 2, 3], leader: 2, leaderEpoch: 1, isr: [2, 3])])
            let (before, revision) = try await stored(client)

            let writer = PartitionISRWriter(client: client, keys: keys)
            #expect(try await writer.changeISR(topic: "t", partition: 0, leader: 1, leaderEpoch: 0, isr: [1, 2]) == false)
            #expect(try await stored(client).state == before)
            #expect(try await stored(client).modRevision == revision)
            await term.keepAlive.stop()
        }
    }

    @Test("a write at an epoch other than the key's, for a partition that is gone, or with replicas the key does not hold is stale")
    func staleEpoch() async throws {
        try await withEtcdClient { _, client in
            try await putTopic(PartitionState(replicas: [1, 2, 3], leader: 1, leaderEpoch: 3, isr: [1, 2, 3]), client: client)
            let (_, revision) = try await stored(client)
            let writer = PartitionISRWriter(client: client, keys: keys)
            for epoch in [UInt32(2), 4] {
                #expect(try await writer.changeISR(topic: "t", partition: 0, leader: 1, leaderEpoch: epoch, isr: [1]) == false)
            }
            #expect(try await writer.changeISR(topic: "t", partition: 0, leader: 2, leaderEpoch: 3, isr: [2]) == false, "not the leader")
            #expect(try await writer.changeISR(topic: "t", partition: 0, leader: 1, leaderEpoch: 3, isr: [1, 4]) == false, "4 is no replica")
            #expect(try await writer.changeISR(topic: "t", partition: 1, leader: 1, leaderEpoch: 3, isr: [1]) == false, "no such partition")
            #expect(try await stored(client).modRevision == revision)
        }
    }

    @Test("the controller writing between the leader's read and its Txn wins, though leader and epoch stay")
    func racingControllerWins() async throws {
        try await withEtcdClient { _, client in
            for id in UInt32(1)...2 { try await putBroker(id, keys: keys, client: client) }
            try await putTopic(PartitionState(newOn: [1, 2, 3]), client: client)
            let writer = PartitionISRWriter(client: client, keys: keys)
            // The leader reads and decides to take broker 2 out...
            let plan = try await writer.plan(topic: "t", partition: 0, leader: 1, leaderEpoch: 0, isr: [1, 3])
            guard case .write(let next, let asRead) = plan else {
                Issue.record("expected a write, got \(plan)")
                return
            }
            // ...while the controller takes broker 3 out (it is not registered): same leader, same epoch.
            let (term, controller) = try await elect(BrokerInfo(id: 1, address: "127.0.0.1:9101"), keys: keys, client: client)
            let moves = try await controller.reconcile()
            let controllers = PartitionState(replicas: [1, 2, 3], leader: 1, leaderEpoch: 0, isr: [1, 2])
            #expect(moves.map(\.after) == [controllers])

            #expect(try await writer.commit(next, topic: "t", partition: 0, asRead: asRead) == false)
            #expect(try await stored(client).state == controllers, "the controller's write stands")
            await term.keepAlive.stop()
        }
    }

    @Test("an etcd that does not answer: a bounded number of attempts, then ControllerError.etcd")
    func unreachable() async throws {
        var configuration = EtcdConnector.Configuration()
        configuration.requestTimeout = .seconds(2)
        configuration.connectTimeout = .seconds(2)
        // Nothing listens there: every connection is refused.
        let port = try #require(EtcdProcess.freePorts(1).first)
        let client = EtcdClient(endpoints: [EtcdEndpoint(host: "127.0.0.1", port: port)], configuration: configuration, logger: etcdTestLogger)
        let writer = PartitionISRWriter(client: client, keys: keys)
        let outcome: Result<Bool, ControllerError>
        do throws(ControllerError) {
            outcome = .success(try await writer.changeISR(topic: "t", partition: 0, leader: 1, leaderEpoch: 0, isr: [1]))
        } catch {
            outcome = .failure(error)
        }
        await client.close()
        guard case .failure(.etcd(let detail)) = outcome else {
            Issue.record("expected ControllerError.etcd, got \(outcome)")
            return
        }
        #expect(detail.contains("UNAVAILABLE"), "\(detail)")
    }
}

/// The ISR write's retry rule on its own: only a transport failure is tried again, and at
/// most `attempts` times in all. No etcd: each attempt is a closure that counts its calls.
@Suite("Retrying transport failures", .timeLimit(.minutes(1)))
struct RetryingTransportFailuresTests {
    /// Runs `retryingTransportFailures` over `outcomes` (one per attempt, the last repeated):
    /// the result and how many attempts were made.
    func run(_ outcomes: [Result<Int, GRPCStatus>], attempts: Int = 3) async -> (Result<Int, ControllerError>, Int) {
        let calls = Mutex(0)
        let result: Result<Int, ControllerError>
        do throws(ControllerError) {
            result = .success(try await retryingTransportFailures("a test write", attempts: attempts) {
                let call = calls.withLock { count in
                    count += 1
                    return count
                }
                return try outcomes[min(call, outcomes.count) - 1].get()
            })
        } catch {
            result = .failure(error)
        }
        return (result, calls.withLock { $0 })
    }

    @Test("UNAVAILABLE and DEADLINE_EXCEEDED are tried again; an answer after them is returned")
    func transportFailuresRetried() async {
        let (result, calls) = await run([.failure(GRPCStatus(.unavailable, "cut")), .failure(GRPCStatus(.deadlineExceeded, "slow")), .success(7)])
        #expect(calls == 3)
        #expect((try? result.get()) == 7)
    }

    @Test("a transport failure every time: exactly `attempts` attempts, then .etcd")
    func bounded() async {
        let (result, calls) = await run([.failure(GRPCStatus(.unavailable, "cut"))], attempts: 3)
        #expect(calls == 3)
        guard case .failure(.etcd) = result else {
            Issue.record("expected .etcd, got \(result)")
            return
        }
    }

    @Test("etcd's refusal and a closed client are not tried again", arguments: [
        GRPCStatus(.invalidArgument, "too many operations"), GRPCStatus(.failedPrecondition, "no"), EtcdConnector.closedStatus,
    ])
    func othersNotRetried(_ status: GRPCStatus) async {
        let (result, calls) = await run([.failure(status), .success(1)])
        #expect(calls == 1)
        guard case .failure(.etcd) = result else {
            Issue.record("expected .etcd, got \(result)")
            return
        }
    }
}
