import Foundation
import SluiceAPI
import SluiceBench
import SluiceClient
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `sluice bench` against a real `sluice serve` process: its counts, and that a broker
/// paused with SIGSTOP shows in the recorded latencies. Correctness only, never speed:
/// every timing assertion is a lower bound (a loaded machine only makes latencies longer).
@Suite(.timeLimit(.minutes(3)))
struct BenchAgainstBrokerTests {
    /// A broker of its own for one test; syncs would only slow the runs down.
    static func benchBroker() async throws -> ServedBroker {
        try await ServedBroker(["--fsync", "never"], label: "sluice-bench-test")
    }

    /// A run of `mode` on `topic` of `broker`, bounded well inside the suite's time limit.
    static func settings(_ mode: BenchSettings.Mode, on topic: String, of broker: ServedBroker) -> BenchSettings {
        var settings = BenchSettings(mode: mode)
        settings.port = broker.port
        settings.topic = topic
        settings.timeLimit = .seconds(120)
        return settings
    }

    @Test func endToEndCountsEveryMessageOnceThenConsumeReadsTheBacklog() async throws {
        let broker = try await Self.benchBroker()
        defer { Task { await broker.stop() } }
        var settings = Self.settings(.endToEnd, on: "counts", of: broker)
        settings.partitions = 4
        settings.producers = 2
        settings.consumers = 3
        settings.keyed = true
        settings.messageSize = 100
        settings.messages = 3001
        let result = try await BenchRunner(settings: settings).run()
        #expect(result.errors == [])
        #expect(result.sent == 3001)
        #expect(result.acked == 3001)
        #expect(result.failed == 0)
        #expect(result.consumed == 3001)
        #expect(result.missing == 0)
        #expect(result.duplicates == 0)
        #expect(result.endToEndLatency?.count == 3001)
        #expect(result.ackLatency?.count == 3001)
        #expect(result.passed)

        // A second run on the same topic: the first run's records are not counted again.
        settings.messages = 500
        settings.producers = 1
        let second = try await BenchRunner(settings: settings).run()
        #expect(second.consumed == 500 && second.missing == 0 && second.duplicates == 0 && second.passed)

        var catchUp = Self.settings(.consume, on: "counts", of: broker)
        catchUp.consumers = 2
        let read = try await BenchRunner(settings: catchUp).run()
        #expect(read.backlog == 3501)
        #expect(read.consumed == 3501)
        #expect(read.measuredMessages == 3501)
        #expect(read.passed)
    }

    /// A produce run of `messages` against its own broker.
    func produceRun(
        topic: String, partitions: Int = 1, producers: Int, messages: Int, acks: Acks
    ) async throws -> (result: BenchResult, broker: ServedBroker) {
        let broker = try await Self.benchBroker()
        var settings = Self.settings(.produce, on: topic, of: broker)
        settings.partitions = partitions
        settings.producers = producers
        settings.messages = messages
        settings.acks = acks
        do {
            return (try await BenchRunner(settings: settings).run(), broker)
        } catch {
            await broker.stop()
            throw error
        }
    }

    @Test func produceModeStopsAtItsMessageCount() async throws {
        let (result, broker) = try await produceRun(topic: "produce-count", producers: 3, messages: 1000, acks: .durable)
        defer { Task { await broker.stop() } }
        #expect(result.sent == 1000 && result.acked == 1000 && result.failed == 0)
        #expect(result.consumed == nil && result.missing == nil)
        #expect(result.ackLatency?.count == 1000)
        #expect(result.passed)
    }

    /// With acks none nothing answers a batch, so the run ends when the log end reaches what
    /// was sent (the way the NATS peer's driver finds its end): every record is in the log
    /// when the result comes back, and the result says how the end was found.
    @Test func acksNoneEndsWhenTheLogEndReachesWhatWasSent() async throws {
        let (result, broker) = try await produceRun(topic: "acks-none", partitions: 3, producers: 2, messages: 5000, acks: .none)
        defer { Task { await broker.stop() } }
        #expect(result.sent == 5000 && result.failed == 0 && result.passed)
        #expect(result.completion == "log end")
        #expect(result.measuredMessages == 5000 && result.messagesPerSecond > 0)
        let admin = try await SluiceAdminClient(address: BrokerAddress(host: "127.0.0.1", port: broker.port))
        let topic = try await admin.describeTopic(named: "acks-none")
        await admin.close()
        #expect(topic.partitions.reduce(Int64(0)) { $0 + $1.highWatermark } == 5000)
    }

    /// A surge: an open-loop offer far above what a debug broker on this machine takes
    /// (a million messages per second) ends with its duration. The sender falls behind at
    /// once and stops at the end instead of sending the whole overdue backlog (which would
    /// take minutes), and everything it did send is acknowledged and received once.
    @Test func anOfferAboveCapacityEndsWithItsDuration() async throws {
        let broker = try await Self.benchBroker()
        defer { Task { await broker.stop() } }
        var settings = Self.settings(.endToEnd, on: "surge", of: broker)
        settings.producers = 2
        settings.rate = 1_000_000
        settings.duration = .seconds(2)
        let result = try await BenchRunner(settings: settings).run()
        #expect(result.sent > 0 && result.sent < 2_000_000, "sent \(result.sent) of the 2,000,000 offered")
        #expect(result.acked == result.sent && result.failed == 0)
        #expect(result.missing == 0 && result.duplicates == 0)
        #expect(!result.timeLimitReached && result.passed)
    }

    /// Open-loop honesty: the broker is stopped for a measured time while the bench sends
    /// at a fixed rate; the messages due meanwhile must carry that stall in their latency.
    /// The producer's buffer (64 KiB) fills within the first ~32 ms of the pause, so the
    /// sender itself blocks: a closed-loop sender would time the ~2,900 messages it sends
    /// after the pause from their late send and show the stall in only ~60 latencies, below
    /// p99; timed from their due times, they put p99 near the pause.
    @Test func aPausedBrokerShowsInTheLatencies() async throws {
        let broker = try await Self.benchBroker()
        defer { Task { await broker.stop() } }
        let bench = try SluiceProcess(
            ["bench", "end-to-end", "--broker", broker.argument, "--topic", "paused", "--rate", "2000",
             "--duration", "5", "--buffer-bytes", "65536", "--progress-interval", "0.2", "--time-limit", "90", "--json"],
            in: broker.directory.url)
        defer { Task { await bench.stop() } }
        // Once it reports progress, the run is sending and answers are flowing.
        var started = false
        for _ in 0..<600 where !started {
            started = bench.stderr.contains("acked") && bench.process.isRunning
            if !started { try await Task.sleep(for: .milliseconds(50)) }
        }
        try #require(started, "the bench printed no progress: \(bench.stderr)")

        let pausedAt = ContinuousClock.now
        broker.server.signal(SIGSTOP)
        // The pause itself: its length is measured below, not assumed.
        try await Task.sleep(for: .milliseconds(1500))
        broker.server.signal(SIGCONT)
        let pause = ContinuousClock.now - pausedAt
        let pauseMicroseconds = UInt64(pause.components.seconds) * 1_000_000 + UInt64(pause.components.attoseconds / 1_000_000_000_000)

        let status = await bench.exitStatus()
        let output = bench.stdout
        let result = try JSONDecoder().decode(BenchResult.self, from: Data(output.utf8))
        #expect(status == 0, "\(bench.stderr)")
        #expect(result.passed && result.missing == 0 && result.duplicates == 0)
        let endToEnd = try #require(result.endToEndLatency)
        let ack = try #require(result.ackLatency)
        // The stall happened after sending began and the schedule kept the messages due
        // meanwhile, so the worst of them waited at least the measured pause, less the
        // signal delivery gap (the stop may land up to one interval after a send).
        let slack: UInt64 = 1_000
        #expect(endToEnd.max + slack >= pauseMicroseconds, "e2e max \(endToEnd.max) us, pause \(pauseMicroseconds) us")
        #expect(ack.max + slack >= pauseMicroseconds, "ack max \(ack.max) us, pause \(pauseMicroseconds) us")
        // About 1.5 s of a 5 s run was stalled: 3,000 of 10,000 messages waited, most of
        // them far longer than the top 0.1% of a healthy run; p99.9 is within the 2 ms of
        // the pause's first messages (0.1% of 10,000 = 10 messages, 0.5 ms apart).
        #expect(endToEnd.p999 + 10_000 >= pauseMicroseconds, "e2e p99.9 \(endToEnd.p999) us, pause \(pauseMicroseconds) us")
        #expect(endToEnd.p99 >= pauseMicroseconds / 2, "e2e p99 \(endToEnd.p99) us, pause \(pauseMicroseconds) us")
    }
}
