import Foundation
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Testing

/// Produce and Subscribe end to end over real `sluice serve` processes, with the Swift
/// client. Counts are bounded; SLUICE_E2E_RECORDS raises the per-producer record count
/// (SLUICE_SOAK=1 multiplies it by 10).
@Suite("Produce and subscribe end to end", .serialized, .timeLimit(.minutes(5)))
struct ProduceSubscribeEndToEndTests {
    static var recordsPerProducer: Int {
        let environment = ProcessInfo.processInfo.environment
        if let text = environment["SLUICE_E2E_RECORDS"], let count = Int(text), count > 0 { return count }
        return environment["SLUICE_SOAK"].map { $0 != "" && $0 != "0" } == true ? 3000 : 300
    }

    @Test("concurrent producers, keyed: a subscriber per partition and an independent one each see every record once, in per-key order",
          .timeLimit(.minutes(5)))
    func keyedConcurrent() async throws {
        try await withBroker { broker in
            let topic = "e2e-keyed"
            let partitions = 4
            try await broker.createTopic(topic, partitions: UInt32(partitions))
            let perProducer = Self.recordsPerProducer
            let producers = 3
            // Each producer its own connection; key i%16, value "producer:key:sequence".
            let acknowledged = try await withThrowingTaskGroup(of: [String: RecordMetadata].self) { group in
                for producerIndex in 0..<producers {
                    group.addTask {
                        var configuration = ProducerConfiguration()
                        configuration.maxBatchBytes = 2048
                        let producer = Producer(address: broker.address, configuration: configuration)
                        var pending: [(String, Delivery)] = []
                        for sequence in 0..<perProducer {
                            let key = "key-\(sequence % 16)"
                            let value = "\(producerIndex):\(key):\(sequence)"
                            pending.append((value, try await producer.enqueue(
                                topic: topic, key: ByteBuffer(string: key), value: ByteBuffer(string: value),
                                headers: [RecordHeader(key: "producer", value: ByteBuffer(string: "\(producerIndex)"))])))
                        }
                        var answers: [String: RecordMetadata] = [:]
                        for (value, delivery) in pending { answers[value] = try await delivery.result() }
                        await producer.close()
                        return answers
                    }
                }
                var all: [String: RecordMetadata] = [:]
                for try await answers in group { all.merge(answers) { first, _ in first } }
                return all
            }
            let total = producers * perProducer
            #expect(acknowledged.count == total)

            // A subscriber per partition, and an independent one over all partitions.
            let expectedPerPartition = Dictionary(grouping: acknowledged.values, by: \.partition).mapValues(\.count)
            let perPartition = try await withThrowingTaskGroup(of: [ConsumerRecord].self) { group in
                for partition in 0..<partitions {
                    let consumer = Consumer(address: broker.address, topic: topic, partitions: [partition: .earliest])
                    let want = expectedPerPartition[partition] ?? 0
                    group.addTask { try await read(consumer, count: want) }
                }
                var all: [ConsumerRecord] = []
                for try await records in group { all += records }
                return all
            }
            let independent = try await read(Consumer(address: broker.address, topic: topic), count: total)

            for (name, records) in [("per-partition subscribers", perPartition), ("the independent subscriber", independent)] {
                #expect(records.count == total, "\(name)")
                var seen: [String: ConsumerRecord] = [:]
                for record in records {
                    let value = String(buffer: record.value)
                    #expect(seen.updateValue(record, forKey: value) == nil, "\(name): \(value) seen twice")
                    let metadata = acknowledged[value]
                    #expect(metadata?.partition == record.partition && metadata?.offset == record.offset, "\(name): \(value)")
                    let key = try #require(record.key)
                    #expect(record.partition == Partitioner.partition(forKey: key.readableBytesView, partitionCount: partitions))
                    #expect(record.headers.first?.key == "producer")
                }
                #expect(Set(seen.keys) == Set(acknowledged.keys), "\(name): every acknowledged record, nothing else")
                // Per partition, offsets strictly increase in delivery order; per producer
                // and key, sequence numbers increase with the offset.
                for partition in 0..<partitions {
                    let offsets = records.filter { $0.partition == partition }.map(\.offset)
                    #expect(offsets == Array(0..<Int64(offsets.count)), "\(name): partition \(partition) offsets")
                }
                var lastSequence: [String: Int] = [:]
                for record in records.sorted(by: { ($0.partition, $0.offset) < ($1.partition, $1.offset) }) {
                    // "producer:key:sequence"
                    let parts = String(buffer: record.value).split(separator: ":")
                    try #require(parts.count == 3)
                    let producerKey = "\(parts[0]):\(parts[1])"
                    let sequence = Int(parts[2]) ?? -1
                    #expect(sequence > lastSequence[producerKey, default: -1], "\(name): \(producerKey) out of order")
                    lastSequence[producerKey] = sequence
                }
            }
        }
    }

    @Test("positions by offset and by timestamp land where they should", .timeLimit(.minutes(2)))
    func positions() async throws {
        try await withBroker { broker in
            let topic = "e2e-positions"
            try await broker.createTopic(topic, partitions: 2)
            var configuration = ProducerConfiguration()
            configuration.linger = .seconds(3600)  // batches close only at flush
            let producer = Producer(address: broker.address, configuration: configuration)
            let base: Int64 = 1_700_000_000_000
            // Four batches of three records on partition 1: offsets 0-2, 3-5, 6-8, 9-11,
            // timestamps base + 1000 * batch + record.
            for batch in 0..<4 {
                var deliveries: [Delivery] = []
                for record in 0..<3 {
                    deliveries.append(try await producer.enqueue(
                        topic: topic, value: ByteBuffer(string: "b\(batch)r\(record)"), partition: 1,
                        timestampMs: base + Int64(1000 * batch + record)))
                }
                await producer.flush()
                let offsets = try await deliveries.asyncMap { try await $0.result().offset }
                #expect(offsets == (0..<3).map { Int64(3 * batch + $0) })
            }
            await producer.close()

            let fromOffset = try await read(Consumer(address: broker.address, topic: topic, partitions: [1: .offset(7)]), count: 5)
            #expect(fromOffset.map(\.offset) == [7, 8, 9, 10, 11])
            #expect(String(buffer: fromOffset[0].value) == "b2r1")

            let fromTime = try await read(
                Consumer(address: broker.address, topic: topic, partitions: [1: .timestamp(base + 2001)]), count: 4)
            #expect(fromTime.map(\.offset) == [7, 8, 9, 10], "the first record at or after the time is b2r1")
            #expect(fromTime.first?.timestampMs == base + 2001)

            let fromStart = try await read(Consumer(address: broker.address, topic: topic, partitions: [1: .earliest]), count: 12)
            var expectedTimes: [Int64] = []
            for batch in 0..<4 {
                for record in 0..<3 { expectedTimes.append(base + Int64(1000 * batch + record)) }
            }
            #expect(fromStart.map(\.timestampMs) == expectedTimes)

            // Past the end: refused with OUT_OF_RANGE.
            await #expect {
                _ = try await read(Consumer(address: broker.address, topic: topic, partitions: [1: .offset(100)]), count: 1)
            } throws: { error in
                (error as? ConsumerError)?.statusCode == .outOfRange
            }
        }
    }

    @Test("a broker killed with SIGKILL and cut back to its synced files keeps every record acknowledged durable",
          .timeLimit(.minutes(3)))
    func crashKeepsDurable() async throws {
        let journal = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-journal-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: journal) }
        try await withBroker(["--fsync", "never", "--test-sync-journal", journal]) { broker in
            let topic = "e2e-crash"
            try await broker.createTopic(topic, partitions: 3)

            var durable = ProducerConfiguration()
            durable.acks = .durable
            durable.linger = .milliseconds(1)
            var leaderOnly = ProducerConfiguration()
            leaderOnly.acks = .leader
            let durableProducer = Producer(address: broker.address, configuration: durable)
            let looseProducer = Producer(address: broker.address, configuration: leaderOnly)
            var acknowledged: [String: RecordMetadata] = [:]
            let rounds = Self.recordsPerProducer / 10
            for round in 0..<rounds {
                // Interleave durable batches with leader-acked ones that the cut may drop.
                var pending: [(String, Delivery)] = []
                for index in 0..<10 {
                    let value = "durable-\(round)-\(index)"
                    pending.append((value, try await durableProducer.enqueue(
                        topic: topic, key: ByteBuffer(string: "k\(index)"), value: ByteBuffer(string: value))))
                    _ = try await looseProducer.enqueue(
                        topic: topic, key: ByteBuffer(string: "k\(index)"), value: ByteBuffer(string: "loose-\(round)-\(index)"))
                }
                for (value, delivery) in pending { acknowledged[value] = try await delivery.result() }
            }
            // A tail acknowledged by the leader only, after the last durable answer: with
            // --fsync never nothing asks to sync it, so the cut has bytes to drop (the check
            // on its report proves the cut ran; whether every tail record is gone is the
            // broker's business, not asserted here).
            var tail: [Delivery] = []
            for index in 0..<5 {
                tail.append(try await looseProducer.enqueue(
                    topic: topic, key: ByteBuffer(string: "k\(index)"), value: ByteBuffer(string: "tail-\(index)")))
            }
            await looseProducer.flush()
            for delivery in tail { _ = try await delivery.result() }
            await broker.kill()
            await durableProducer.close()
            await looseProducer.close()

            let cut = try await runSluice(
                ["debug", "cut-to-synced", "--data-dir", broker.dataDirectory, "--journal", journal], in: broker.root)
            #expect(cut.status == 0, "cut-to-synced: \(cut.stderr)")
            #expect(!cut.stdout.contains("dropped 0 byte"), "the unsynced tail was cut: \(cut.stdout)")
            try await broker.start()

            let admin = try await broker.admin()
            let description = try await admin.describeTopic(named: topic)
            await admin.close()
            var survivors: [String: ConsumerRecord] = [:]
            for partition in description.partitions where partition.highWatermark > partition.logStartOffset {
                let consumer = Consumer(address: broker.address, topic: topic, partitions: [Int(partition.partition): .earliest])
                for record in try await read(consumer, count: Int(partition.highWatermark - partition.logStartOffset)) {
                    survivors[String(buffer: record.value)] = record
                }
            }
            for (value, metadata) in acknowledged {
                let record = survivors[value]
                #expect(record != nil, "\(value), acknowledged durable, was lost")
                #expect(record?.partition == metadata.partition && record?.offset == metadata.offset, "\(value) moved")
            }
        }
    }
}

extension ProduceSubscribeEndToEndTests {
    @Test("a consumer and a producer ride out a broker kill and restart: nothing lost, nothing repeated, order kept",
          .timeLimit(.minutes(3)))
    func reconnects() async throws {
        try await withBroker { broker in
            let topic = "e2e-restart"
            try await broker.createTopic(topic, partitions: 2)
            var configuration = ProducerConfiguration()
            configuration.acks = .durable
            let producer = Producer(address: broker.address, configuration: configuration)
            func produce(_ range: Range<Int>) async throws {
                var pending: [Delivery] = []
                for index in range {
                    pending.append(try await producer.enqueue(
                        topic: topic, key: ByteBuffer(string: "k\(index % 5)"), value: ByteBuffer(string: "\(index)")))
                }
                for delivery in pending { _ = try await delivery.result() }
            }
            try await produce(0..<40)

            var consumerConfiguration = ConsumerConfiguration()
            consumerConfiguration.maxReconnectAttempts = 20
            consumerConfiguration.maxReconnectBackoff = .milliseconds(500)
            let consumer = Consumer(address: broker.address, topic: topic, configuration: consumerConfiguration)
            var iterator = consumer.makeAsyncIterator()
            var seen: [ConsumerRecord] = []
            for _ in 0..<25 { if let record = try await iterator.next() { seen.append(record) } }

            // Kill and restart on the same port; the consumer is mid-stream, the producer
            // idle. Everything was acknowledged durable, so the restart loses nothing.
            await broker.kill()
            try await broker.start(samePort: true)
            try await produce(40..<80)
            while seen.count < 80, let record = try await iterator.next() { seen.append(record) }
            await producer.close()

            #expect(seen.count == 80)
            #expect(Set(seen.map { String(buffer: $0.value) }) == Set((0..<80).map(String.init)), "each record exactly once")
            for partition in 0..<2 {
                let offsets = seen.filter { $0.partition == partition }.map(\.offset)
                #expect(offsets == Array(0..<Int64(offsets.count)), "partition \(partition): in order, no gaps, no repeats")
            }
            for key in 0..<5 {
                let values = seen.filter { $0.key == ByteBuffer(string: "k\(key)") }.compactMap { Int(String(buffer: $0.value)) }
                #expect(values == values.sorted(), "key k\(key) in production order")
            }
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        result.reserveCapacity(count)
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
