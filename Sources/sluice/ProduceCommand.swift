import ArgumentParser
import DequeModule
import Dispatch
import Foundation
import Logging
import NIOCore
import SluiceAPI
import SluiceClient

struct ProduceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Publish the lines of stdin to a topic, one record per line.",
        discussion: """
            Each line (without its newline) is a record's value. With --key-separator, the text \
            before the first separator is the key and the rest the value; a line without the \
            separator is an error. Keyed records go to the partition of their key (Kafka's \
            murmur2 rule, docs/partitioning.md), keyless ones are spread in sticky batches, and \
            --partition overrides both. When stdin ends, every record is waited for; then a \
            summary goes to stderr, or with --report one line per record to stdout: \
            partition, offset and timestamp, tab-separated, in input order. Any failure prints \
            one line to stderr and exits 1.
            """)

    @OptionGroup var options: BrokerOptions
    @Option(help: "The topic to publish to.") var topic: String
    @Option(help: "Send every record to this partition.") var partition: Int?
    @Option(help: "Split each line into key and value at the first occurrence of this text.") var keySeparator: String?
    @Option(help: "What the broker confirms before a record counts: none, leader, durable or all.") var acks: AcksArgument = .all
    @Option(name: .customLong("header"), help: "A record header key=value added to every record, repeatable.") var headers: [Setting] = []
    @OptionGroup(title: "Batching (docs/profiles.md)") var tuning: ProduceTuningOptions
    @Flag(help: "Print partition, offset and timestamp of every record to stdout.") var report = false
    @Flag(inversion: .prefixedNo, help: "Exactly-once publish: the broker drops retried duplicates, and up to five batches per partition are in flight (forces acks all). Default: on with --acks all, off otherwise.") var idempotent: Bool?
    @Option(help: "A stable idempotent producer name (implies idempotence); a restart fences the previous producer of that name.") var producerName: String?

    func validate() throws {
        if let keySeparator, keySeparator.isEmpty { throw ValidationError("--key-separator must not be empty") }
        if let partition, partition < 0 { throw ValidationError("--partition must be 0 or more") }
        if producerName != nil && idempotent == false { throw ValidationError("--producer-name needs idempotence (--no-idempotent was given)") }
        if let producerName, producerName.isEmpty || producerName.utf8.count > 249 {
            throw ValidationError("--producer-name must be 1 to 249 bytes")
        }
    }

    func run() async throws {
        var configuration = tuning.configuration
        configuration.acks = acks.acks
        // A stable name only means something to an idempotent producer.
        configuration.idempotent = idempotent ?? (producerName != nil ? true : nil)
        configuration.producerName = producerName
        configuration.requestTimeout = .milliseconds(Int64(max(options.timeout, 0.001) * 1000))
        var logger = Logger(label: "sluice")
        logger.logLevel = .critical
        let producer = Producer(
            bootstrap: tuning.bootstrap(options.broker), configuration: configuration,
            logger: logger)
        let recordHeaders = headers.map { RecordHeader(key: $0.key, value: ByteBuffer(string: $0.value)) }

        var pending: Deque<Delivery> = []
        var summary = ProduceSummary()
        var lineNumber = 0
        do {
            let input = StandardInputLines()
            while let chunk = await input.next() {
                for line in chunk {
                    lineNumber += 1
                    var key: ByteBuffer?
                    var value = line
                    if let keySeparator {
                        guard let range = line.range(of: keySeparator) else {
                            await producer.close()
                            fail("line \(lineNumber) has no key separator \"\(keySeparator)\"")
                        }
                        key = ByteBuffer(string: String(line[..<range.lowerBound]))
                        value = String(line[range.upperBound...])
                    }
                    pending.append(try await producer.enqueue(
                        topic: topic, key: key, value: ByteBuffer(string: value), headers: recordHeaders, partition: partition))
                    // Answers are reported in input order as they arrive, so memory stays bounded.
                    while let first = pending.first, first.isComplete {
                        pending.removeFirst()
                        try summary.add(try await first.result(), report: report)
                    }
                }
            }
            await producer.flush()
            while let first = pending.popFirst() {
                try summary.add(try await first.result(), report: report)
            }
        } catch let error as ProducerError {
            await producer.close()
            fail(error.description)
        } catch {
            await producer.close()
            fail("\(error)")
        }
        await producer.close()
        StandardStreams.emit("sluice: \(summary.text(topic: topic))\n", to: STDERR_FILENO)
    }
}

/// What `sluice produce` reports when stdin ends.
struct ProduceSummary {
    var count = 0
    var ranges: [Int: ClosedRange<Int64>] = [:]

    mutating func add(_ metadata: RecordMetadata, report: Bool) throws {
        count += 1
        if let existing = ranges[metadata.partition] {
            ranges[metadata.partition] = min(existing.lowerBound, metadata.offset)...max(existing.upperBound, metadata.offset)
        } else {
            ranges[metadata.partition] = metadata.offset...metadata.offset
        }
        if report { print("\(metadata.partition)\t\(metadata.offset)\t\(metadata.timestampMs)") }
    }

    func text(topic: String) -> String {
        let partitions = ranges.keys.sorted().map { partition -> String in
            guard let range = ranges[partition] else { return "" }
            if range.lowerBound < 0 { return "partition \(partition) (not acknowledged: acks none)" }
            return "partition \(partition) offsets \(range.lowerBound)-\(range.upperBound)"
        }
        return "produced \(count) record\(count == 1 ? "" : "s") to \(topic)" + (partitions.isEmpty ? "" : ": " + partitions.joined(separator: ", "))
    }
}

struct AcksArgument: ExpressibleByArgument, Sendable {
    var acks: Acks

    static let all = AcksArgument(acks: .all)

    init(acks: Acks) {
        self.acks = acks
    }

    init?(argument: String) {
        switch argument.lowercased() {
        case "none", "0": acks = .none
        case "leader", "1": acks = .leader
        case "durable": acks = .durable
        case "all", "-1": acks = .all
        default: return nil
        }
    }

    static var allValueStrings: [String] { ["none", "leader", "durable", "all"] }

    /// What `--help` shows as the default: the word a user types, not the Swift value.
    var defaultValueDescription: String {
        switch acks {
        case .none: "none"
        case .leader: "leader"
        case .durable: "durable"
        case .all, .unspecified: "all"
        case .unrecognized(let value): "\(value)"
        }
    }
}

/// The lines of stdin, read on a thread of their own (a blocking read must not hold one
/// of the few cooperative threads) and handed over in chunks, at most one chunk ahead of
/// the reader, so a fast stdin cannot fill memory.
final class StandardInputLines: Sendable {
    private static let chunkLines = 512
    private let chunks: AsyncStream<[String]>
    private let consumed = DispatchSemaphore(value: 1)

    init() {
        let (stream, continuation) = AsyncStream<[String]>.makeStream(bufferingPolicy: .unbounded)
        chunks = stream
        let consumed = consumed
        Thread {
            while true {
                consumed.wait()
                var chunk: [String] = []
                while chunk.count < Self.chunkLines, let line = readLine(strippingNewline: true) { chunk.append(line) }
                if !chunk.isEmpty { continuation.yield(chunk) }
                if chunk.count < Self.chunkLines {
                    continuation.finish()
                    return
                }
            }
        }.start()
    }

    /// The next lines; nil at the end of stdin. One caller at a time.
    func next() async -> [String]? {
        var iterator = chunks.makeAsyncIterator()
        let chunk = await iterator.next()
        // Let the reader fetch the chunk after this one while the caller works.
        if chunk != nil { consumed.signal() }
        return chunk
    }
}
