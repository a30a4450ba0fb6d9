import NIOCore
import SluiceAPI
@testable import SluiceBroker
import SluiceClient
import SluiceService
import SluiceStorage
import SluiceTestSupport
import SluiceWire
import Testing

/// The broker-wide produce memory budget: charges, FIFO waiting, cancellation, and a
/// Produce stream that stops being read (flow control) while its batches wait for a sync.
@Suite(.timeLimit(.minutes(2))) struct ProduceMemoryBudgetTests {
    @Test func chargesFitUpToTheLimitAndWaitersAreAdmittedInOrder() async throws {
        let budget = ProduceMemoryBudget(limitBytes: 100)
        try await budget.acquire(60)
        #expect(budget.snapshot.usedBytes == 60)
        // 50 does not fit: it waits; 10 would fit but must not overtake it.
        let big = Task { try await budget.acquire(50) }
        try await eventually("the 50-byte charge waits") { budget.snapshot.waits == 1 }
        let small = Task { try await budget.acquire(10) }
        try await eventually("the 10-byte charge waits behind it") { budget.snapshot.waits == 2 }
        #expect(budget.snapshot.usedBytes == 60)
        budget.release(60)
        try await big.value
        try await small.value
        #expect(budget.snapshot.usedBytes == 60)
        #expect(budget.snapshot.peakBytes == 60)
        budget.release(60)
        #expect(budget.snapshot.usedBytes == 0)
    }

    @Test func aCancelledWaiterLeavesNothingChargedAndLetsTheNextOneIn() async throws {
        let budget = ProduceMemoryBudget(limitBytes: 100)
        try await budget.acquire(90)
        let blocked = Task { try await budget.acquire(100) }
        try await eventually("the 100-byte charge waits") { budget.snapshot.waits == 1 }
        let next = Task { try await budget.acquire(5) }
        try await eventually("the 5-byte charge waits behind it") { budget.snapshot.waits == 2 }
        blocked.cancel()
        await #expect(throws: CancellationError.self) { try await blocked.value }
        try await next.value
        #expect(budget.snapshot.usedBytes == 95)
        budget.release(95)
        #expect(budget.snapshot.usedBytes == 0)
    }

    @Test func aStreamStopsBeingReadWhileTheBudgetIsSpentAndResumesWhenSyncsFinish() async throws {
        let fileSystem = GatedFileSystem()
        let budget = ProduceMemoryBudget(limitBytes: 64 * 1024)
        let broker = try await InProcessBroker.start {
            $0.storage.fileSystem = fileSystem.fileSystem
            $0.produceLimits.memoryBudget = budget
        }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "surge", partitions: 1))
        fileSystem.closeGate()
        var producer = try await ProduceStream(broker.connection)
        // 40 batches of about 8 KiB: five times the budget, all sent before any answer.
        let value = String(repeating: "v", count: 8 * 1024)
        let count = 40
        let call = producer.call
        let sender = Task {
            for index in 0..<count {
                try await call.send(ProduceRequest(
                    correlationId: UInt64(index), topic: "surge", acks: .durable, timeoutMs: 120_000,
                    batch: TestBatches.batch([value])).protobufBytes())
            }
        }
        try await eventually("a sync is blocked and the budget is spent") {
            fileSystem.blockedSyncs > 0 && budget.snapshot.waits > 0
        }
        // The broker appended only what the budget admitted and holds no more than it.
        let appended = try await broker.admin.describeTopic(named: "surge").partitions[0].logEndOffset
        #expect(appended <= Int64(64 * 1024 / (8 * 1024)))
        #expect(budget.snapshot.usedBytes <= 64 * 1024)
        fileSystem.openGate()
        try await sender.value
        for index in 0..<count {
            let answer = try #require(try await producer.next())
            #expect(answer.correlationId == UInt64(index) && answer.error == .none, "\(answer.errorMessage)")
        }
        #expect(budget.snapshot.peakBytes <= 64 * 1024)
        try await eventually("every charge is returned") { budget.snapshot.usedBytes == 0 }
        try await producer.close()
        await broker.stopAndRemove()
    }

    @Test func aBatchLargerThanTheWholeBudgetIsThrottled() async throws {
        let budget = ProduceMemoryBudget(limitBytes: 1024)
        let broker = try await InProcessBroker.start { $0.produceLimits.memoryBudget = budget }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "big", partitions: 1))
        var producer = try await ProduceStream(broker.connection)
        let answer = try await producer.produce("big", partition: 0, correlationID: 1, TestBatches.batch([String(repeating: "x", count: 2000)]))
        #expect(answer.error == .throttled && answer.errorMessage.contains("--max-inflight-bytes"), "\(answer.errorMessage)")
        let small = try await producer.produce("big", partition: 0, correlationID: 2, TestBatches.batch(["ok"]))
        #expect(small.error == .none && small.baseOffset == 0, "the stream goes on")
        try await producer.close()
        #expect(budget.snapshot.usedBytes == 0)
        await broker.stopAndRemove()
    }
}

