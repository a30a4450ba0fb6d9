import Foundation
import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceWire
import Synchronization
import SluiceTestSupport
import Testing

/// A producer whose broker is not up yet (started first, or the broker is restarting)
/// waits for it, bounded by `maxBlock`, as consumers do, instead of failing its first send.
@Suite("A producer started before its broker", .serialized, .timeLimit(.minutes(2)))
struct ProducerStartsFirstTests {
    @Test("the first send retries the topic lookup until the broker is back")
    func firstSendWaitsForTheBroker() async throws {
        try await withBroker { broker in
            try await broker.createTopic("orders", partitions: 2)
            await broker.stop()

            let lines = RecordedLines()
            var logger = Logger(label: "producer-starts-first") { _ in RecordingLogHandler(lines: lines) }
            logger.logLevel = .debug
            var configuration = ProducerConfiguration()
            configuration.retryBackoff = .milliseconds(20)
            configuration.maxRetryBackoff = .milliseconds(200)
            let producer = Producer(address: broker.address, configuration: configuration, logger: logger)
            let sending = Task { try await producer.send(topic: "orders", key: ByteBuffer(string: "k"), value: ByteBuffer(string: "v")) }
            // The broker comes back only after the producer has been refused at least once.
            try await eventually("a refused lookup") { lines.contains("the broker cannot describe the topic yet") }
            try await broker.start(samePort: true)
            let placed = try await sending.value
            #expect(placed.offset == 0)
            await producer.close()
        }
    }

    @Test("a broker that stays away fails the send after maxBlock, keeping the status code")
    func unreachableBrokerKeepsTheCode() async throws {
        let broker = try await BrokerProcess()
        await broker.stop()
        var configuration = ProducerConfiguration()
        // Long enough for at least one attempt on a busy machine (each is refused at once),
        // so the status reported is an attempt's own, not the cut's.
        configuration.maxBlock = .seconds(3)
        configuration.retryBackoff = .milliseconds(20)
        let producer = Producer(address: broker.address, configuration: configuration)
        do {
            _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "v"))
            Issue.record("a send to a stopped broker succeeded")
        } catch let error as ProducerError {
            guard case .transport(let status, let context) = error else { Issue.record("expected transport, got \(error)"); return }
            #expect(status.code == .unavailable, "\(status)")
            #expect(context.contains("orders"), "\(context)")
        }
        await producer.close()
        await broker.remove()
    }

    @Test("an unknown topic still fails at once")
    func unknownTopicIsNotRetried() async throws {
        let broker = try await BrokerProcess()
        let producer = Producer(address: broker.address)
        do {
            _ = try await producer.send(topic: "nowhere", value: ByteBuffer(string: "v"))
            Issue.record("a send to an unknown topic succeeded")
        } catch let error as ProducerError {
            guard case .unknownTopic = error else { Issue.record("expected unknownTopic, got \(error)"); return }
        }
        await producer.close()
        await broker.remove()
    }
}

final class RecordedLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    func contains(_ text: String) -> Bool { lines.withLock { $0.contains { $0.contains(text) } } }
}

/// Keeps every message, so a test can wait for the line that says a step happened.
struct RecordingLogHandler: LogHandler {
    let lines: RecordedLines
    var logLevel: Logger.Level = .debug
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.append("\(event.message)")
    }
}
