import ArgumentParser
import Foundation
import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceWire
import Synchronization

struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Print the records of a topic.",
        discussion: """
            Reads the chosen partitions (all by default) from --from and prints one line per \
            record. text: partition, offset, timestamp (ms), key and value, tab-separated (an \
            absent key prints as nothing). json: one object per line with topic, partition, \
            offset, timestamp_ms, key (null when absent), value and headers; bytes that are not \
            UTF-8 appear as key_base64/value_base64 instead. Without --follow it stops at the \
            end of the log as it was when it started (or after --idle-timeout seconds without \
            a record, for a time: start past the last record); with --follow it waits for new \
            records until interrupted or --max-messages. Failures print one line to stderr and exit 1.
            """)

    @OptionGroup var options: BrokerOptions
    @Option(help: "The topic to read.") var topic: String
    @Option(name: .customLong("partition"), help: "A partition to read, repeatable; default all.") var partitions: [Int] = []
    @Option(help: "Where to start: earliest, latest, an offset, or time:<ms since the epoch>.") var from: StartArgument = .init(start: .earliest)
    @Flag(help: "Keep waiting for new records.") var follow = false
    @Option(help: "Stop after this many records.") var maxMessages: Int?
    @Option(help: "Output format: text or json.") var format: OutputFormat = .text
    @Option(help: "Without --follow: seconds without a record after which reading stops.") var idleTimeout: Double = 5
    @OptionGroup(title: "Push batching (docs/profiles.md)") var tuning: ConsumeTuningOptions
    @OptionGroup(title: "Consumer group (see docs/consumer-groups.md)") var groupOptions: GroupConsumeOptions

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    func validate() throws {
        if let maxMessages, maxMessages < 1 { throw ValidationError("--max-messages must be at least 1") }
        if partitions.contains(where: { $0 < 0 }) { throw ValidationError("--partition must be 0 or more") }
        guard idleTimeout > 0, idleTimeout.isFinite else { throw ValidationError("--idle-timeout must be positive") }
        try validateGroupOptions()
    }

    func run() async throws {
        if groupOptions.group != nil {
            try await runInGroup()
            return
        }
        let description = await options.withAdminClient { try await $0.describeTopic(named: topic) }
        let count = Int(description.partitionCount)
        for partition in partitions where partition >= count {
            fail("topic \(topic) has no partition \(partition) (it has \(count))")
        }
        let chosen = partitions.isEmpty ? Array(0..<count) : Array(Set(partitions)).sorted()
        // An offline partition is not empty: its records are there but cannot be read.
        for partition in description.partitions where partition.offline && chosen.contains(Int(partition.partition)) {
            fail("partition \(partition.partition) of topic \(topic) is offline: \(partition.offlineReason)")
        }
        // Without --follow: the end of each partition now, and the offset reading starts at,
        // when known, decide when there is nothing more to read.
        var remaining: [Int: Int64] = [:]
        if !follow {
            for partition in description.partitions where chosen.contains(Int(partition.partition)) {
                let end = partition.highWatermark
                let start: Int64? = switch from.start {
                case .earliest: partition.logStartOffset
                case .latest: end
                case .offset(let offset): offset
                case .timestamp: nil
                }
                if start.map({ $0 < end }) ?? (end > partition.logStartOffset) { remaining[Int(partition.partition)] = end }
            }
            if remaining.isEmpty { return }
        }

        var logger = Logger(label: "sluice")
        logger.logLevel = .critical
        // Without --partition the subscription names none, so with --follow it also reads
        // partitions added while it runs. An offset or time start is listed per partition:
        // the consumer skips the records before it in the first batch only for those.
        let followsTopic: Bool = switch from.start {
        case .earliest, .latest: partitions.isEmpty
        case .offset, .timestamp: false
        }
        let consumer = Consumer(
            bootstrap: tuning.bootstrap(options.broker), topic: topic,
            partitions: followsTopic ? nil : Dictionary(uniqueKeysWithValues: chosen.map { ($0, from.start) }),
            defaultStart: from.start, configuration: tuning.configuration, logger: logger)
        let lastRecord = LastRecordClock()
        let follow = follow
        let maxMessages = maxMessages
        let format = format
        let topicName = topic
        let ends = remaining
        let reading = Task { () throws -> Void in
            var printed = 0
            var remaining = ends
            for try await record in consumer {
                lastRecord.touch()
                print(Self.line(record, format: format, topic: topicName))
                printed += 1
                if let maxMessages, printed >= maxMessages { return }
                if !follow {
                    if let end = remaining[record.partition], record.offset + 1 >= end { remaining[record.partition] = nil }
                    if remaining.isEmpty { return }
                }
            }
        }
        if !follow {
            let bound = Duration.milliseconds(Int64(idleTimeout * 1000))
            Task {
                // A bound on waiting for records that may never come, not synchronisation.
                while !Task.isCancelled {
                    let idle = ContinuousClock.now - lastRecord.instant
                    if idle >= bound {
                        reading.cancel()
                        return
                    }
                    try? await Task.sleep(for: bound - idle)
                }
            }
        }
        do {
            try await reading.value
        } catch is CancellationError {
            return
        } catch let error as ConsumerError {
            fail(error.description)
        } catch {
            fail("\(error)")
        }
    }

    static func line(_ record: ConsumerRecord, format: OutputFormat, topic: String) -> String {
        switch format {
        case .text:
            let key = record.key.map { String(decoding: $0.readableBytesView, as: UTF8.self) } ?? ""
            let value = String(decoding: record.value.readableBytesView, as: UTF8.self)
            return "\(record.partition)\t\(record.offset)\t\(record.timestampMs)\t\(key)\t\(value)"
        case .json:
            var object = JSONRecord(topic: topic, partition: record.partition, offset: record.offset, timestamp_ms: record.timestampMs)
            if let key = record.key {
                if let text = key.getString(at: key.readerIndex, length: key.readableBytes), text.utf8.elementsEqual(key.readableBytesView) {
                    object.key = text
                } else {
                    object.key_base64 = Data(key.readableBytesView).base64EncodedString()
                }
            }
            let value = record.value
            if let text = value.getString(at: value.readerIndex, length: value.readableBytes), text.utf8.elementsEqual(value.readableBytesView) {
                object.value = text
            } else {
                object.value_base64 = Data(value.readableBytesView).base64EncodedString()
            }
            object.headers = record.headers.map { header in
                let bytes = header.value
                if let text = bytes.getString(at: bytes.readerIndex, length: bytes.readableBytes), text.utf8.elementsEqual(bytes.readableBytesView) {
                    return JSONHeader(key: header.key, value: text)
                }
                return JSONHeader(key: header.key, value_base64: Data(bytes.readableBytesView).base64EncodedString())
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            guard let data = try? encoder.encode(object) else { return "{}" }
            return String(decoding: data, as: UTF8.self)
        }
    }
}

/// When the last record arrived (for --idle-timeout).
final class LastRecordClock: Sendable {
    private let last = Mutex(ContinuousClock.now)

    func touch() {
        last.withLock { $0 = .now }
    }

    var instant: ContinuousClock.Instant { last.withLock { $0 } }
}

/// One line of `sluice consume --format json`.
struct JSONRecord: Encodable {
    var topic: String
    var partition: Int
    var offset: Int64
    var timestamp_ms: Int64
    var key: String?
    var key_base64: String?
    var value: String?
    var value_base64: String?
    var headers: [JSONHeader] = []

    enum CodingKeys: String, CodingKey {
        case topic, partition, offset, timestamp_ms, key, key_base64, value, value_base64, headers
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(topic, forKey: .topic)
        try container.encode(partition, forKey: .partition)
        try container.encode(offset, forKey: .offset)
        try container.encode(timestamp_ms, forKey: .timestamp_ms)
        // An absent key is null (not the same as an empty key); base64 only when needed.
        if let key_base64 {
            try container.encode(key_base64, forKey: .key_base64)
        } else {
            try container.encode(key, forKey: .key)
        }
        if let value_base64 {
            try container.encode(value_base64, forKey: .value_base64)
        } else {
            try container.encode(value ?? "", forKey: .value)
        }
        try container.encode(headers, forKey: .headers)
    }
}

struct JSONHeader: Encodable {
    var key: String
    var value: String?
    var value_base64: String?
}

/// `--from`: earliest, latest, an offset, or time:<ms>.
struct StartArgument: ExpressibleByArgument, Sendable {
    var start: ConsumerStart

    init(start: ConsumerStart) {
        self.start = start
    }

    init?(argument: String) {
        switch argument {
        case "earliest": start = .earliest
        case "latest": start = .latest
        default:
            if argument.hasPrefix("time:"), let milliseconds = Int64(argument.dropFirst(5)) {
                start = .timestamp(milliseconds)
            } else if let offset = Int64(argument), offset >= 0 {
                start = .offset(offset)
            } else {
                return nil
            }
        }
    }

    static var defaultValueDescription: String { "earliest|latest|OFFSET|time:MS" }

    /// What `--help` shows as the default: the word a user types, not the Swift value.
    var defaultValueDescription: String {
        switch start {
        case .earliest: "earliest"
        case .latest: "latest"
        case .offset(let offset): "\(offset)"
        case .timestamp(let milliseconds): "time:\(milliseconds)"
        }
    }
}
