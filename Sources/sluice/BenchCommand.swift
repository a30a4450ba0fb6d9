public import ArgumentParser
import Foundation
import SluiceAPI
import SluiceBench
import SluiceClient

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a broker: throughput and latency percentiles (docs/bench.md).",
        discussion: """
            produce: producers only, latency from the send call to the broker's answer. \
            consume: read the topic's backlog (log start to high watermark) once, report MB/s. \
            end-to-end: producers and subscribers together, latency from the send call to \
            delivery at a subscriber; every acknowledged message must arrive exactly once. \
            Under --rate the load is open loop: each message has a due time and its latency \
            counts from then, so a stalled broker shows in the percentiles. A progress line \
            goes to stderr every few seconds; the report (or with --json one object) to \
            stdout. Exits 1 when a send failed, a message was missing or repeated, or the \
            time limit was reached.
            """)

    @Argument(help: "produce, consume or end-to-end.") var mode: ModeArgument
    @Option(help: "The brokers to measure: host:port or a comma list of bootstrap brokers (a:9092,b:9092,c:9092).") var broker: BrokerList = .local
    @Option(help: "A named OpenMessaging Benchmark shape (sets defaults that other options override): \(BenchWorkload.all.map(\.name).joined(separator: ", ")).")
    var workload: String?
    @Option(help: "Topic; created if missing (produce, end-to-end). Default sluice-bench, or bench-<workload>.") var topic: String?
    @Option(help: "Partitions of the topic when it is created (default 1).") var partitions: Int?
    @Option(help: "Concurrent producers, one connection each (default 1).") var producers: Int?
    @Option(help: "Concurrent subscribers; partitions are dealt among them (default 1).") var consumers: Int?
    @Option(help: "Bytes per message value (default 1024; at least 24 for the bench header).") var messageSize: Int?
    @Flag(help: "Give every message an 8-byte key, spreading records over partitions by hash.") var keyed = false
    @Option(help: "none, leader, durable or all.") var acks: AcksArgument = AcksArgument(acks: .leader)
    @Option(help: "Client profile: throughput or latency (default: the client's defaults).") var profile: BenchProfile?
    @Option(help: "Largest producer batch in bytes (overrides the profile).") var batchBytes: Int?
    @Option(help: "Milliseconds a producer batch waits for more records (overrides the profile).") var lingerMs: Int?
    @Option(help: "Producer compression: none, zstd or lz4 (overrides the profile).") var compression: String?
    @Option(help: "Bound on each producer's unanswered bytes; the sender blocks when it is reached (default: the profile's).") var bufferBytes: Int?
    @Option(help: "Messages per second over all producers, open loop (default: as fast as possible).") var rate: Double?
    @Option(help: "Seconds measured after the warm-up (default 10 when --messages is not given).") var duration: Double?
    @Option(help: "Messages in total (sent, or read in consume mode).") var messages: Int?
    @Option(help: "Seconds sent and checked but not measured, before the measurement.") var warmup: Double = 0
    @Option(help: "Seconds after the last send that subscribers get to receive the rest (end-to-end).") var drainTimeout: Double = 30
    @Option(help: "Hard cap in seconds on the whole run (default: warm-up + duration + drain + 60, or 600).") var timeLimit: Double?
    @Option(help: "Seconds between progress lines on stderr.") var progressInterval: Double = 5
    @Flag(help: "Print one JSON object instead of the report.") var json = false

    enum ModeArgument: String, ExpressibleByArgument, CaseIterable {
        case produce, consume
        case endToEnd = "end-to-end"
    }

    func settings() throws -> BenchSettings {
        let mode: BenchSettings.Mode = switch self.mode {
        case .produce: .produce
        case .consume: .consume
        case .endToEnd: .endToEnd
        }
        var settings = BenchSettings(mode: mode)
        if let workload {
            guard let shape = BenchWorkload.named(workload) else {
                throw ValidationError("unknown workload \(workload); known: \(BenchWorkload.all.map(\.name).joined(separator: ", "))")
            }
            settings.topic = shape.topic
            settings.partitions = shape.partitions
            settings.producers = shape.producers
            settings.consumers = shape.consumers
            settings.messageSize = shape.messageSize
            settings.rate = shape.rate
        }
        settings.host = broker.brokers[0].host
        settings.port = broker.brokers[0].port
        settings.bootstrap = broker.brokers.map { BrokerAddress(host: $0.host, port: $0.port) }
        if let topic { settings.topic = topic }
        if let partitions { settings.partitions = partitions }
        if let producers { settings.producers = producers }
        if let consumers { settings.consumers = consumers }
        if let messageSize { settings.messageSize = messageSize }
        if let rate { settings.rate = rate }
        settings.keyed = keyed
        settings.acks = acks.acks
        settings.profile = profile
        settings.batchBytes = batchBytes
        settings.lingerMilliseconds = lingerMs
        if let compression {
            guard let codec = BenchSettings.compression(named: compression) else {
                throw ValidationError("--compression must be none, zstd or lz4")
            }
            settings.compression = codec
        }
        settings.bufferBytes = bufferBytes
        settings.messages = messages
        for (name, seconds) in [("--duration", duration), ("--warmup", warmup), ("--drain-timeout", drainTimeout),
                                ("--time-limit", timeLimit), ("--progress-interval", progressInterval)] {
            if let seconds, !(seconds >= 0 && seconds.isFinite) { throw ValidationError("\(name) must be 0 or more seconds") }
        }
        settings.duration = duration.map(Self.duration)
        settings.warmup = Self.duration(warmup)
        settings.drainTimeout = Self.duration(drainTimeout)
        settings.progressInterval = Self.duration(max(progressInterval, 0.1))
        if let timeLimit {
            settings.timeLimit = Self.duration(timeLimit)
        } else if let duration {
            settings.timeLimit = Self.duration(warmup + duration + drainTimeout + 60)
        }
        if let problem = settings.problem { throw ValidationError(problem) }
        return settings
    }

    func validate() throws {
        _ = try settings()
    }

    func run() async throws {
        let settings = try settings()
        let runner = BenchRunner(settings: settings) { line in
            StandardStreams.emit("sluice bench: \(line)\n", to: STDERR_FILENO)
        }
        let result: BenchResult
        do {
            result = try await runner.run()
        } catch {
            fail("bench against \(broker): \(error)")
        }
        if json {
            StandardStreams.emit(try BenchReport.json(result), to: STDOUT_FILENO)
        } else {
            StandardStreams.emit(BenchReport.text(result), to: STDOUT_FILENO)
        }
        if !result.passed { throw ExitCode(1) }
    }

    static func duration(_ seconds: Double) -> Duration {
        .nanoseconds(Int64(seconds * 1e9))
    }
}

extension BenchProfile: ExpressibleByArgument {}
