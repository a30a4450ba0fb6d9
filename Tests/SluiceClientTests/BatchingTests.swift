import NIOCore
@testable import SluiceClient
import Testing

/// The producer's batching rules and the consumer's skipping rules, with time passed in.
@Suite("Producer batching and consumer positions", .timeLimit(.minutes(2)))
struct BatchingTests {
    let start = ContinuousClock.now

    func at(_ milliseconds: Int) -> ContinuousClock.Instant {
        start.advanced(by: .milliseconds(milliseconds))
    }

    @Test("an open batch goes out when its linger ends, not before")
    func linger() {
        var accumulator = PartitionAccumulator<Int>(maxBatchBytes: 1000)
        accumulator.append(1, bytes: 10, now: at(0))
        accumulator.append(2, bytes: 10, now: at(3))
        let result1 = accumulator.takeSendable(now: at(4), linger: .milliseconds(5))
        #expect(result1 == nil)
        #expect(accumulator.nextWakeup(linger: .milliseconds(5)) == at(5))
        let batch = accumulator.takeSendable(now: at(5), linger: .milliseconds(5))
        #expect(batch?.items == [1, 2])
        #expect(batch?.attempts == 1)
    }

    @Test("with no linger the first record goes at once; the rest gather while it is in flight")
    func noLinger() {
        var accumulator = PartitionAccumulator<Int>(maxBatchBytes: 1000)
        accumulator.append(1, bytes: 10, now: at(0))
        let result2 = accumulator.takeSendable(now: at(0), linger: .zero)
        #expect(result2?.items == [1])
        for item in 2...4 { accumulator.append(item, bytes: 10, now: at(1)) }
        let result3 = accumulator.takeSendable(now: at(100), linger: .zero)
        #expect(result3 == nil, "one batch in flight per partition")
        #expect(accumulator.nextWakeup(linger: .zero) == nil, "only the answer can release the next batch")
        accumulator.completed()
        let result4 = accumulator.takeSendable(now: at(1), linger: .zero)
        #expect(result4?.items == [2, 3, 4])
    }

    @Test("a full batch closes: a record that does not fit starts the next one, a huge one travels alone")
    func size() {
        var accumulator = PartitionAccumulator<Int>(maxBatchBytes: 100)
        let result5 = accumulator.append(1, bytes: 40, now: at(0))
        #expect(!result5)
        let result6 = accumulator.append(2, bytes: 40, now: at(0))
        #expect(!result6)
        let result7 = accumulator.append(3, bytes: 40, now: at(0))
        #expect(result7, "80 + 40 > 100 closes [1, 2]")
        let result8 = accumulator.append(4, bytes: 60, now: at(0))
        #expect(result8, "40 + 60 reaches 100 and closes [3, 4]")
        let result9 = accumulator.append(5, bytes: 500, now: at(0))
        #expect(result9, "a record bigger than a batch is a batch of its own")
        #expect(accumulator.open == nil)
        var sent: [[Int]] = []
        while let batch = accumulator.takeSendable(now: at(0), linger: .seconds(60)) {
            sent.append(batch.items)
            accumulator.completed()
        }
        #expect(sent == [[1, 2], [3, 4], [5]], "closed batches go without lingering, in order")
    }

    @Test("a retried batch goes first, after its backoff, ahead of newer batches")
    func retryKeepsOrder() throws {
        var accumulator = PartitionAccumulator<Int>(maxBatchBytes: 20)
        accumulator.append(1, bytes: 20, now: at(0))
        accumulator.append(2, bytes: 20, now: at(0))
        let result10 = accumulator.takeSendable(now: at(0), linger: .zero)
        let first = try #require(result10)
        #expect(first.items == [1])
        accumulator.retry(first, notBefore: at(100))
        let result11 = accumulator.takeSendable(now: at(50), linger: .zero)
        #expect(result11 == nil, "batch 2 must not overtake the retry")
        #expect(accumulator.nextWakeup(linger: .zero) == at(100))
        let result12 = accumulator.takeSendable(now: at(100), linger: .zero)
        let again = try #require(result12)
        #expect(again.items == [1] && again.attempts == 2)
        accumulator.completed()
        let result13 = accumulator.takeSendable(now: at(100), linger: .zero)
        #expect(result13?.items == [2])
    }

    @Test("with a limit of three, three batches go before an answer; the fourth waits for one")
    func pipelinesUpToTheLimit() {
        var accumulator = PartitionAccumulator<Int>(maxBatchBytes: 10)
        for item in 1...4 { accumulator.append(item, bytes: 10, now: at(0)) }
        var sent: [[Int]] = []
        while let batch = accumulator.takeSendable(now: at(0), linger: .zero, maxInFlight: 3) { sent.append(batch.items) }
        #expect(sent == [[1], [2], [3]] && accumulator.inFlightCount == 3)
        #expect(accumulator.nextWakeup(linger: .zero, maxInFlight: 3) == nil, "only an answer frees a place")
        accumulator.completed()
        let fourth = accumulator.takeSendable(now: at(0), linger: .zero, maxInFlight: 3)
        #expect(fourth?.items == [4] && fourth?.sendOrder == 3)
        #expect(accumulator.takeSendable(now: at(0), linger: .zero) == nil, "the default limit is one")
        accumulator.completed()
        accumulator.completed()
        accumulator.append(5, bytes: 5, now: at(1))
        #expect(accumulator.takeSendable(now: at(9), linger: .zero, maxInFlight: 3) == nil,
                "an open batch does not join batches in flight: it grows until they are answered or it fills")
        #expect(accumulator.nextWakeup(linger: .zero, maxInFlight: 3) == nil)
        accumulator.append(6, bytes: 5, now: at(2))
        let full = accumulator.takeSendable(now: at(9), linger: .zero, maxInFlight: 3)
        #expect(full?.items == [5, 6], "a full one does")
        accumulator.append(7, bytes: 5, now: at(3))
        accumulator.completed()
        accumulator.completed()
        let alone = accumulator.takeSendable(now: at(9), linger: .zero, maxInFlight: 3)
        #expect(alone?.items == [7], "with nothing in flight the open batch goes at once")
    }

    func take(_ accumulator: inout PartitionAccumulator<Int>) throws -> PartitionAccumulator<Int>.Batch {
        let batch = accumulator.takeSendable(now: at(0), linger: .zero, maxInFlight: 5)
        return try #require(batch)
    }

    @Test("retries of pipelined batches go again in their first order, alone, ahead of new batches")
    func pipelinedRetriesKeepTheirOrder() throws {
        var accumulator = PartitionAccumulator<Int>(maxBatchBytes: 10)
        for item in 1...3 { accumulator.append(item, bytes: 10, now: at(0)) }
        let first = try take(&accumulator)
        let second = try take(&accumulator)
        let third = try take(&accumulator)
        accumulator.append(4, bytes: 10, now: at(1))
        // The answers come back in any order: the stream ended, say.
        accumulator.retry(third, notBefore: at(0))
        #expect(accumulator.retryWaits(before: 2) == false)
        accumulator.retry(first, notBefore: at(0))
        #expect(accumulator.retryWaits(before: 2) && accumulator.retryWaits(before: 1) && !accumulator.retryWaits(before: 0))
        #expect(accumulator.takeSendable(now: at(0), linger: .zero, maxInFlight: 5) == nil,
                "a retry waits while a batch sent before it is unanswered")
        accumulator.retry(second, notBefore: at(0))
        var order: [[Int]] = []
        for _ in 0..<2 {
            let again = try take(&accumulator)
            order.append(again.items)
            #expect(again.attempts == 2)
            #expect(accumulator.takeSendable(now: at(0), linger: .zero, maxInFlight: 5) == nil, "a retry goes alone")
            accumulator.completed()
        }
        let last = try take(&accumulator)
        order.append(last.items)
        #expect(order == [[1], [2], [3]])
        let fresh = try take(&accumulator)
        #expect(fresh.items == [4] && fresh.attempts == 1, "a new batch may follow the last retry at once")
    }

    @Test("flush closes the open batch; expiry removes batches past the delivery timeout")
    func flushAndExpire() {
        var accumulator = PartitionAccumulator<Int>(maxBatchBytes: 1000)
        accumulator.append(1, bytes: 10, now: at(0))
        accumulator.closeOpenBatch()
        let result14 = accumulator.takeSendable(now: at(0), linger: .seconds(60))
        #expect(result14?.items == [1])
        accumulator.append(2, bytes: 10, now: at(10))
        accumulator.append(3, bytes: 10, now: at(20))
        let result15 = accumulator.expire(now: at(500), deliveryTimeout: .seconds(1))
        #expect(result15.isEmpty)
        let result16 = accumulator.expire(now: at(1010), deliveryTimeout: .seconds(1))
        #expect(result16.map(\.items) == [[2, 3]])
        accumulator.completed()
        #expect(accumulator.isEmpty)
    }

    func record(_ offset: Int64, _ timestamp: Int64) -> RecordBatchCodec.DecodedRecord {
        RecordBatchCodec.DecodedRecord(offset: offset, timestampMs: timestamp, key: nil, value: ByteBuffer(), headers: [])
    }

    @Test("records before a requested offset are skipped; the position follows what was handed out")
    func offsetStart() {
        var positions = ConsumerPositions(starts: [0: .offset(12), 1: .earliest])
        let accepted = (10...14).filter { positions.accept(record(Int64($0), 0), partition: 0) }
        #expect(accepted == [12, 13, 14])
        #expect(positions.resumeStart(0, original: .offset(12)) == .offset(15))
        #expect(positions.resumeStart(1, original: .earliest) == .earliest, "nothing read yet: the original start")
        let accepted101 = positions.accept(record(0, 0), partition: 1)
        #expect(accepted101)
        #expect(positions.resumeStart(1, original: .earliest) == .offset(1))
        let accepted102 = positions.accept(record(14, 0), partition: 0)
        #expect(!accepted102, "a redelivered record after a reconnect is dropped")
    }

    @Test("a timestamp start skips older records of the first batch only")
    func timestampStart() {
        var positions = ConsumerPositions(starts: [0: .timestamp(1000)])
        let accepted103 = positions.accept(record(0, 990), partition: 0)
        #expect(!accepted103)
        let accepted104 = positions.accept(record(1, 1000), partition: 0)
        #expect(accepted104)
        let accepted105 = positions.accept(record(2, 995), partition: 0)
        #expect(accepted105, "after the first record, CreateTime may go back")
    }
}
