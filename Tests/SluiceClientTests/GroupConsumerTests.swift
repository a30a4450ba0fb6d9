import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Synchronization
import Testing

/// A value shared with handlers (a Mutex cannot be captured by an escaping closure).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func get() -> Value { mutex.withLock { $0 } }
    func set(_ value: Value) { mutex.withLock { $0 = value } }
    func append<Element>(_ element: Element) where Value == [Element] { mutex.withLock { $0.append(element) } }
}

/// The group member's protocol against a scripted coordinator (FakeGroupsBroker): where
/// partitions start, when offsets are committed under each delivery setting, cooperative
/// revocation (commit before the acknowledgement, kept partitions keep their stream), and
/// rejoining after the session expired.
@Suite("Group consumer protocol", .serialized, .timeLimit(.minutes(3)))
struct GroupConsumerTests {
    /// What the handler saw, and what the consumer reported.
    final class Seen: Sendable {
        let records = Mutex<[String]>([])
        let events = Mutex<[RebalanceEvent]>([])
        var values: [String] { records.withLock { $0 } }
        var reported: [RebalanceEvent] { events.withLock { $0 } }
    }

    struct Running {
        let fake: FakeGroupsBroker
        let consumer: GroupConsumer
        let run: Task<Void, any Error>
        let seen: Seen
    }

    /// Starts a fake with `t` (two partitions) and a consumer running `handler` after recording.
    func start(
        delivery: DeliverySemantics = .atLeastOnce(commit: .auto), resetPolicy: OffsetResetPolicy = .earliest,
        instanceId: String? = nil, prepare: (FakeGroupsBroker) async -> Void = { _ in },
        configure: (inout GroupConsumerConfiguration) -> Void = { _ in },
        handler: @escaping @Sendable (GroupBatch) async throws -> Void = { _ in }
    ) async throws -> Running {
        let fake = FakeGroupsBroker(topic: "t", partitionCount: 2)
        await prepare(fake)
        let address = try await fake.start()
        var configuration = GroupConsumerConfiguration(group: "g", topics: ["t"])
        configuration.delivery = delivery
        configuration.resetPolicy = resetPolicy
        configuration.instanceId = instanceId
        configure(&configuration)
        let seen = Seen()
        var logger = Logger(label: "sluice.test.group-consumer")
        logger.logLevel = .critical
        let consumer = GroupConsumer(address: address, configuration: configuration, logger: logger, onEvent: { event in
            seen.events.withLock { $0.append(event) }
        })
        let run = Task {
            try await consumer.run { batch in
                let lines = batch.records.map { "p\($0.partition)@\($0.offset)=\(String(buffer: $0.value))" }
                seen.records.withLock { $0.append(contentsOf: lines) }
                try await handler(batch)
            }
        }
        try await eventually("the member joins") { await fake.sessionCount == 1 }
        return Running(fake: fake, consumer: consumer, run: run, seen: seen)
    }

    static func assignment(_ generation: Int32, _ partitions: [UInt32]) -> CoordinatorMessage.Kind {
        .assignment(Assignment(generation: generation, partitions: [TopicPartitions(topic: "t", partitions: partitions)]))
    }

    static func joined(_ member: String) -> CoordinatorMessage.Kind {
        .joined(Joined(memberId: member, sessionTimeoutMs: 10_000, heartbeatIntervalMs: 100, strategy: .sticky))
    }

    func finish(_ running: Running) async throws {
        await running.consumer.close()
        try await running.run.value
        await running.fake.stop()
    }

    @Test("new partitions start at the committed offset or the reset policy; auto commit after the handler; GroupReader on Subscribe")
    func startsAndCommits() async throws {
        let running = try await start(prepare: { fake in
            await fake.append(partition: 0, values: ["a", "b", "c"])
            await fake.append(partition: 1, values: ["x", "y"])
            await fake.setInitialOffsets([0: 1])
        })
        let fake = running.fake
        await fake.send(Self.joined("m-1"), session: 0)
        await fake.send(Self.assignment(1, [0, 1]), session: 0)
        try await eventually("every committed record handled") { running.seen.values.count == 4 }
        #expect(Set(running.seen.values) == ["p0@1=b", "p0@2=c", "p1@0=x", "p1@1=y"], "p0 from its committed offset 1")
        try await eventually("both partitions committed") { await fake.committed == [0: 3, 1: 2] }
        let events = await fake.events
        #expect(events.contains("subscribe p=0 member=m-1 g=1 start=1"))
        #expect(events.contains("subscribe p=1 member=m-1 g=1 start=earliest"))
        #expect(events.filter { $0.hasPrefix("commit") }.allSatisfy { $0.hasPrefix("commit member=m-1 g=1 ") })
        try await finish(running)
        #expect(await fake.events.last == "leave", "close() leaves the group")
        let sessionEnds = running.seen.reported.filter {
            switch $0 {
            case .left, .lost: true
            default: false
            }
        }
        #expect(sessionEnds.count == 1, "\(sessionEnds)")
        #expect(sessionEnds.allSatisfy { if case .left = $0 { true } else { false } },
                "a graceful close is reported as leaving, never as a loss: \(sessionEnds)")
    }

    @Test("a revocation waits for the handler, commits, then acknowledges; a kept partition keeps its stream")
    func cooperativeRevocation() async throws {
        let (gate, open) = AsyncStream<Void>.makeStream()
        let entered = Locked(false)
        let running = try await start(handler: { batch in
            guard batch.records.contains(where: { String(buffer: $0.value) == "hold" }) else { return }
            entered.set(true)
            for await _ in gate { break }
        })
        let fake = running.fake
        await fake.append(partition: 0, values: ["a"])
        await fake.send(Self.joined("m-1"), session: 0)
        await fake.send(Self.assignment(1, [0, 1]), session: 0)
        try await eventually("p0 handled and committed") { await fake.committed[0] == 1 }
        await fake.append(partition: 1, values: ["x", "hold"])
        try await eventually("the handler holds p1's batch") { entered.get() }

        await fake.send(.revocation(Revocation(generation: 2, partitions: [TopicPartitions(topic: "t", partitions: [1])])), session: 0)
        await fake.send(Self.assignment(2, [0]), session: 0)
        // The acknowledgement must wait for the handler: p1's batch is not processed yet.
        #expect(!(await fake.events).contains { $0.hasPrefix("ack") })
        open.yield()
        try await eventually("the revocation is acknowledged") { await fake.events.contains("ack g=2 p=1") }
        let events = await fake.events
        let commitIndex = events.firstIndex { $0.hasPrefix("commit") && $0.contains("p1=2") }
        let ackIndex = events.firstIndex(of: "ack g=2 p=1")
        #expect(commitIndex != nil && commitIndex! < ackIndex!, "p1 committed before the acknowledgement: \(events)")

        await fake.append(partition: 0, values: ["b"])
        try await eventually("p0 keeps being read under generation 2") { await fake.committed[0] == 2 }
        let after = await fake.events
        #expect(after.filter { $0.hasPrefix("subscribe p=0") }.count == 1, "the kept partition was never resubscribed: \(after)")
        #expect(after.contains { $0.hasPrefix("commit member=m-1 g=2 p0=2") }, "\(after)")
        #expect(running.seen.reported.contains(.revoked(generation: 2, partitions: [TopicPartition(topic: "t", partition: 1)])))
        try await finish(running)
    }

    @Test("at-most-once: committed before the handler sees the batch; a refused commit hides the batch")
    func atMostOnce() async throws {
        let committedFirst = Locked<[Bool]>([])
        let fakeBox = Locked<FakeGroupsBroker?>(nil)
        let running = try await start(delivery: .atMostOnce, prepare: { fake in
            await fake.setCommitErrors([1: .notAssigned])
            fakeBox.set(fake)
        }, handler: { batch in
            guard let fake = fakeBox.get() else { return }
            let committed = await fake.committed[batch.topicPartition.partition]
            committedFirst.append(committed == batch.nextOffset)
        })
        let fake = running.fake
        await fake.send(Self.joined("m-1"), session: 0)
        await fake.send(Self.assignment(1, [0, 1]), session: 0)
        await fake.append(partition: 1, values: ["refused"])
        try await eventually("p1's commit is refused") { await fake.events.contains { $0.contains("p1=1!") } }
        await fake.append(partition: 0, values: ["a"])
        await fake.append(partition: 0, values: ["b"])
        try await eventually("p0 handled") { running.seen.values.count == 2 }
        #expect(running.seen.values == ["p0@0=a", "p0@1=b"], "the batch whose commit was refused is never handed out")
        #expect(committedFirst.get() == [true, true], "the broker had the offset before the handler ran")
        #expect(running.seen.reported.contains { if case .commitRefused([TopicPartition(topic: "t", partition: 1)], _) = $0 { true } else { false } })
        try await finish(running)
    }

    @Test("at-most-once: a revocation arriving while a batch's commit is in flight waits, and the batch is still handed out")
    func atMostOnceRevocationDuringCommit() async throws {
        let running = try await start(delivery: .atMostOnce)
        let fake = running.fake
        await fake.send(Self.joined("m-1"), session: 0)
        await fake.send(Self.assignment(1, [0]), session: 0)
        await fake.setHoldCommits(true)
        await fake.append(partition: 0, values: ["a", "b"])
        try await eventually("the commit before delivery is in flight") { await fake.heldCommitCount == 1 }
        await fake.send(.revocation(Revocation(generation: 2, partitions: [TopicPartitions(topic: "t", partitions: [0])])), session: 0)
        await fake.send(Self.assignment(2, []), session: 0)
        await fake.releaseCommits()
        try await eventually("the revocation is acknowledged") { await fake.events.contains("ack g=2 p=0") }
        #expect(running.seen.values == ["p0@0=a", "p0@1=b"], "a committed batch is never dropped (that would lose it)")
        let events = await fake.events
        let commit = events.firstIndex { $0.contains("p0=2") }
        let ack = events.firstIndex(of: "ack g=2 p=0")
        #expect(commit != nil && ack != nil && commit! < ack!, "\(events)")
        try await finish(running)
    }

    @Test("an expired session (FAILED_PRECONDITION) loses the partitions and rejoins with a fresh member id")
    func rejoinAfterExpiry() async throws {
        let running = try await start(instanceId: "worker-1")
        let fake = running.fake
        await fake.append(partition: 0, values: ["a"])
        await fake.send(Self.joined("m-1"), session: 0)
        await fake.send(Self.assignment(1, [0]), session: 0)
        try await eventually("a committed") { await fake.committed[0] == 1 }

        await fake.end(session: 0, with: GRPCStatus(.failedPrecondition, "session expired"))
        try await eventually("the member rejoins") { await fake.sessionCount == 2 }
        #expect(running.seen.reported.contains { if case .lost([TopicPartition(topic: "t", partition: 0)], _) = $0 { true } else { false } })
        #expect(await fake.joins.map(\.instanceId) == ["worker-1", "worker-1"])
        await fake.setInitialOffsets([0: 1])
        await fake.send(Self.joined("m-2"), session: 1)
        await fake.send(Self.assignment(5, [0]), session: 1)
        await fake.append(partition: 0, values: ["b"])
        try await eventually("b handled in the new session") { await fake.committed[0] == 2 }
        #expect(running.seen.values == ["p0@0=a", "p0@1=b"])
        #expect(await fake.events.contains("subscribe p=0 member=m-2 g=5 start=1"))
        try await finish(running)
    }

    @Test("a second run throws alreadyRunning instead of trapping")
    func runTwiceThrows() async throws {
        let running = try await start()
        do {
            try await running.consumer.run { _ in }
            Issue.record("a second run was accepted")
        } catch GroupConsumerError.alreadyRunning {
        }
        try await finish(running)
    }

    @Test("the group reader bounds decompression by subscription.maxDecompressedBatchBytes")
    func decompressionIsBounded() async throws {
        let running = try await start(configure: { $0.subscription.maxDecompressedBatchBytes = 4096 })
        let fake = running.fake
        await fake.append(partition: 0, values: [String(repeating: "z", count: 64 * 1024)], compression: .zstd)
        await fake.send(Self.joined("m-1"), session: 0)
        await fake.send(Self.assignment(1, [0]), session: 0)
        do {
            try await running.run.value
            Issue.record("run went on past a batch that decompresses beyond the bound")
        } catch GroupConsumerError.corruptBatch(let partition, _) {
            #expect(partition == TopicPartition(topic: "t", partition: 0))
        }
        #expect(running.seen.values.isEmpty, "the oversized batch was not handed out")
        await fake.stop()
    }

    @Test("reset policy error: a partition without a committed offset ends run with noValidOffset")
    func resetPolicyError() async throws {
        let running = try await start(resetPolicy: .error)
        await running.fake.send(Self.joined("m-1"), session: 0)
        await running.fake.send(Self.assignment(1, [1]), session: 0)
        await #expect {
            try await running.run.value
        } throws: { error in
            guard case GroupConsumerError.noValidOffset(let partition, committed: nil) = error else { return false }
            return partition == TopicPartition(topic: "t", partition: 1)
        }
        await running.fake.stop()
    }

    @Test("manual commit commits what was handed out, only when asked")
    func manualCommit() async throws {
        let running = try await start(delivery: .atLeastOnce(commit: .manual))
        let fake = running.fake
        await fake.send(Self.joined("m-1"), session: 0)
        await fake.send(Self.assignment(1, [0]), session: 0)
        await fake.append(partition: 0, values: ["a", "b"])
        try await eventually("handled") { running.seen.values.count == 2 }
        #expect(await fake.committed.isEmpty, "nothing committed before commit()")
        let committed = try await running.consumer.commit()
        #expect(committed == [TopicPartition(topic: "t", partition: 0): 2])
        #expect(await fake.committed == [0: 2])
        try await finish(running)
    }
}
