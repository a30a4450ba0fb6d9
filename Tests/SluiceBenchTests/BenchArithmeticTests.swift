import NIOCore
import SluiceAPI
@testable import SluiceBench
import SluiceClient
import Testing

/// The bench's own arithmetic: percentiles, the open-loop schedule, payloads and the
/// exactly-once ledger. Correctness only; nothing here measures speed.
@Suite(.timeLimit(.minutes(1)))
struct BenchArithmeticTests {
    @Test func percentilesOfAKnownDistribution() {
        var recorder = LatencyRecorder()
        for value in UInt64(1)...10_000 { recorder.record(microseconds: value) }
        let summary = recorder.summary
        #expect(summary.count == 10_000)
        // Three significant digits: each value within 0.1% (plus one unit) of the truth.
        func close(_ value: UInt64, _ truth: UInt64) -> Bool {
            let tolerance = truth / 1000 + 1
            return value + tolerance >= truth && value <= truth + tolerance
        }
        #expect(close(summary.p50, 5000))
        #expect(close(summary.p95, 9500))
        #expect(close(summary.p99, 9900))
        #expect(close(summary.p999, 9990))
        #expect(close(summary.p9999, 9999))
        #expect(close(summary.max, 10_000))
        #expect(summary.min == 1)
        #expect(abs(summary.mean - 5000.5) < 5)
    }

    @Test func aSingleOutlierIsTheMaximum() {
        var recorder = LatencyRecorder()
        for _ in 0..<99_999 { recorder.record(microseconds: 100) }
        recorder.record(microseconds: 1_500_000)
        let summary = recorder.summary
        #expect(summary.p99 <= 101)
        // The maximum is reported at or above the real value, never below.
        #expect(summary.max >= 1_500_000)
        #expect(summary.max <= 1_500_000 + 1_500)
    }

    @Test func mergedRecordersAddUp() {
        var first = LatencyRecorder()
        var second = LatencyRecorder()
        for value in UInt64(1)...500 { first.record(microseconds: value) }
        for value in UInt64(501)...1000 { second.record(microseconds: value) }
        first.add(second)
        #expect(first.count == 1000)
        #expect((499...501).contains(first.summary.p50))
    }

    @Test func emptySummaryIsZero() {
        let summary = LatencyRecorder().summary
        #expect(summary.count == 0 && summary.max == 0 && summary.p99 == 0)
        #expect(LatencyRecorder().percentile(99) == nil)
    }

    @Test func nanosecondsRoundDownToMicrosecondsAndNegativeClampsToOne() {
        var recorder = LatencyRecorder()
        recorder.record(nanoseconds: 2_999)
        recorder.record(nanoseconds: -5)
        #expect(recorder.summary.max == 2)
        #expect(recorder.summary.min == 1)
    }

    @Test func scheduleDueTimes() {
        let schedule = OpenLoopSchedule(startNanoseconds: 1_000, ratePerSecond: 2000)
        #expect(schedule.dueTime(of: 0) == 1_000)
        #expect(schedule.dueTime(of: 1) == 501_000)
        #expect(schedule.dueTime(of: 2000) == 1_000 + 1_000_000_000)
        #expect(schedule.dueCount(at: 0) == 0)
        #expect(schedule.dueCount(at: 1_000) == 1)
        #expect(schedule.dueCount(at: 500_999) == 1)
        #expect(schedule.dueCount(at: 501_000) == 2)
        // A non-integral interval does not drift: message 3,000,000 at 3 per ms is due at 1 s.
        let third = OpenLoopSchedule(startNanoseconds: 0, ratePerSecond: 3_000_000)
        #expect(third.dueTime(of: 3_000_000) == 1_000_000_000)
    }

    @Test func aStallShowsInTheLatencyOfEveryOverdueMessage() {
        // 1,000 msgs/s; the sender stalls from 10 ms to 1,510 ms, then catches up at once.
        let schedule = OpenLoopSchedule(startNanoseconds: 0, ratePerSecond: 1000)
        let stallEnd: Int64 = 1_510_000_000
        var recorder = LatencyRecorder()
        var sent = 0
        // Before the stall each message is sent on time and answered 100 us later.
        while schedule.dueTime(of: sent) < 10_000_000 {
            recorder.record(nanoseconds: schedule.latency(of: sent, answeredAt: schedule.dueTime(of: sent) + 100_000))
            sent += 1
        }
        // After it, everything due is sent together and answered at the end of the stall.
        let overdue = schedule.dueCount(at: stallEnd)
        #expect(overdue == 1511)
        for index in sent..<overdue {
            recorder.record(nanoseconds: schedule.latency(of: index, answeredAt: stallEnd + 100_000))
        }
        let summary = recorder.summary
        // The first overdue message waited the whole stall; half the stall's messages
        // waited more than half of it: the stall is in the percentiles, not hidden.
        #expect(summary.max >= 1_500_000)
        #expect(summary.p50 >= 700_000)
        #expect(summary.count == 1511)
    }

    @Test func payloadRoundTrip() {
        let filler = BenchPayload.filler(size: 100, seed: 42)
        #expect(filler.count == 100 - BenchPayload.headerBytes)
        #expect(Set(filler).count > 10)
        let header = BenchPayload.Header(dueNanoseconds: 123_456_789, sender: 7, sequence: (1 << 40) - 1, runID: 99)
        let buffer = BenchPayload.encode(header, filler: filler, allocator: ByteBufferAllocator())
        #expect(buffer.readableBytes == 100)
        #expect(buffer.getInteger(at: 0, as: Int64.self) == 123_456_789)
        #expect(BenchPayload.decode(buffer) == header)
        #expect(BenchPayload.decode(ByteBuffer(string: "short")) == nil)
    }

    @Test func ledgerCountsMissingAndRepeats() {
        var acked = MessageLedger(senders: 2)
        for sequence in 0..<1000 {
            acked.mark(sender: 0, sequence: sequence)
            acked.mark(sender: 1, sequence: sequence)
        }
        var first = MessageLedger(senders: 2)
        var second = MessageLedger(senders: 2)
        for sequence in 0..<600 { first.mark(sender: 0, sequence: sequence) }
        for sequence in 590..<1000 { second.mark(sender: 0, sequence: sequence) }
        for sequence in 0..<997 { second.mark(sender: 1, sequence: sequence) }
        #expect(second.mark(sender: 1, sequence: 5) == false)
        first.merge(second)
        #expect(first.repeats == 10 + 1)
        #expect(first.count == 1997)
        #expect(first.missing(from: acked) == 3)
        #expect(first.contains(sender: 1, sequence: 996))
        #expect(!first.contains(sender: 1, sequence: 997))
    }

    @Test func summaryLineHasKafkasShape() {
        var result = BenchResult(settings: BenchSettings(mode: .produce))
        result.measuredMessages = 500_000
        result.messagesPerSecond = 98_425.2
        result.megabytesPerSecond = 96.12
        var recorder = LatencyRecorder()
        for value in UInt64(1)...10_000 { recorder.record(microseconds: value) }
        result.ackLatency = recorder.summary
        let line = BenchReport.summaryLine(result)
        #expect(line.hasPrefix("500000 records sent, 98425.2 records/sec (96.12 MB/sec), 5.00 ms avg latency, "))
        #expect(line.contains(" ms 50th, ") && line.contains(" ms 99.9th, ") && line.hasSuffix(" ms 99.99th."))
    }

    @Test func workloadsAndValidation() {
        #expect(BenchWorkload.named("1-topic-100-partitions-1kb-4p-4c")?.producers == 4)
        #expect(BenchWorkload.named("max-rate-64kb")?.rate == nil)
        var settings = BenchSettings(mode: .endToEnd)
        #expect(settings.problem == nil)
        settings.messageSize = 10
        #expect(settings.problem != nil)
        settings = BenchSettings(mode: .produce)
        settings.profile = .latency
        settings.lingerMilliseconds = 3
        settings.acks = .durable
        #expect(settings.producerConfiguration.linger == .milliseconds(3))
        #expect(settings.producerConfiguration.acks == .durable)
        #expect(settings.producerConfiguration.maxBatchBytes == BenchProfile.latency.producerConfiguration.maxBatchBytes)
    }
}
