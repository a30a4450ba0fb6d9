import NIOCore
import SluiceAPI
import SluiceClient
import SluiceWire
import Testing

/// Producer and Consumer against `FakeBroker`: ordering, retries, budgets, reconnects.
@Suite("Producer and Consumer against a scripted broker", .timeLimit(.minutes(2)))
struct ProducerConsumerTests {
    func withBroker(
        partitions: Int, _ body: (FakeBroker, BrokerAddress) async throws -> Void
    ) async throws {
        let broker = FakeBroker(topic: "orders", partitionCount: partitions)
        let address = try await broker.start()
        do {
            try await body(broker, address)
        } catch {
            await broker.stop()
            throw error
        }
        await broker.stop()
    }

    func quickRetries(_ configure: (inout ProducerConfiguration) -> Void = { _ in }) -> ProducerConfiguration {
        var configuration = ProducerConfiguration()
        // The scripted broker keeps no producer sequences: these are the plain producer's
        // rules (one batch in flight per partition, at-least-once retries).
        configuration.idempotent = false
        configuration.linger = .milliseconds(1)
        configuration.retryBackoff = .milliseconds(1)
        configuration.maxRetryBackoff = .milliseconds(5)
        configure(&configuration)
        return configuration
    }

    @Test("concurrent producers: keyed records land on their murmur2 partition, each once, in per-key order")
    func keyedConcurrent() async throws {
        try await withBroker(partitions: 4) { broker, address in
            let producer = Producer(address: address, configuration: quickRetries { $0.maxBatchBytes = 512 })
            let perTask = 150
            let results = try await withThrowingTaskGroup(of: [(String, RecordMetadata)].self) { group in
                for task in 0..<3 {
                    group.addTask {
                        var deliveries: [(String, String, Delivery)] = []
                        for sequence in 0..<perTask {
                            let key = "key-\(sequence % 10)"
                            let value = "\(task):\(key):\(sequence)"
                            deliveries.append((key, value, try await producer.enqueue(
                                topic: "orders", key: ByteBuffer(string: key), value: ByteBuffer(string: value))))
                        }
                        var answers: [(String, RecordMetadata)] = []
                        for (key, value, delivery) in deliveries {
                            let metadata = try await delivery.result()
                            #expect(metadata.partition == Partitioner.partition(forKey: Array(key.utf8), partitionCount: 4))
                            answers.append((value, metadata))
                        }
                        return answers
                    }
                }
                var all: [(String, RecordMetadata)] = []
                for try await answers in group { all += answers }
                return all
            }
            await producer.close()
            #expect(results.count == 3 * perTask)
            var stored: [String: (partition: Int, offset: Int64)] = [:]
            for partition in 0..<4 {
                for (offset, value) in try await broker.values(of: partition).enumerated() {
                    #expect(stored[value] == nil, "\(value) stored twice")
                    stored[value] = (partition, Int64(offset))
                }
            }
            #expect(stored.count == 3 * perTask)
            for (value, metadata) in results {
                #expect(stored[value]?.partition == metadata.partition && stored[value]?.offset == metadata.offset)
            }
            // Per key and producer task, offsets grow with the sequence number.
            for task in 0..<3 {
                for key in 0..<10 {
                    let offsets = (0..<perTask).filter { $0 % 10 == key }.compactMap { stored["\(task):key-\(key):\($0)"]?.offset }
                    #expect(offsets == offsets.sorted() && offsets.count == perTask / 10)
                }
            }
        }
    }

    @Test("keyless records stick to one partition while their batch is open")
    func keylessRecordsStick() async throws {
        try await withBroker(partitions: 4) { broker, address in
            // The batch closes only when flushed: every record below joins the same open batch.
            // (Reading the sticky choice without storing it once sent each record to a random
            // partition: all 40 on one of 4 would then happen with probability 4^-39.)
            let producer = Producer(address: address, configuration: quickRetries { $0.linger = .seconds(3600) })
            var deliveries: [Delivery] = []
            for sequence in 0..<40 {
                deliveries.append(try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "r-\(sequence)")))
            }
            await producer.flush()
            var partitions: [Int] = []
            for delivery in deliveries { partitions.append(try await delivery.result().partition) }
            await producer.close()
            let first = try #require(partitions.first)
            #expect(partitions.allSatisfy { $0 == first }, "spread over \(Set(partitions))")
            #expect(try await broker.values(of: first) == (0..<40).map { "r-\($0)" })
        }
    }

    @Test("retriable errors and a dropped stream are retried in place: nothing lost, nothing reordered")
    func retriesKeepOrder() async throws {
        try await withBroker(partitions: 2) { broker, address in
            await broker.setFaults([
                0: .error(.notLeader), 2: .error(.throttled), 3: .dropStream, 6: .error(.requestTimedOut),
                9: .error(.notEnoughReplicas), 10: .dropStream,
            ])
            let producer = Producer(address: address, configuration: quickRetries { $0.maxBatchBytes = 64 })
            var deliveries: [Delivery] = []
            for sequence in 0..<60 {
                deliveries.append(try await producer.enqueue(
                    topic: "orders", value: ByteBuffer(string: "record-\(sequence)"), partition: sequence % 2))
            }
            await producer.flush()
            for delivery in deliveries { _ = try await delivery.result() }
            await producer.close()
            for partition in 0..<2 {
                let expected = stride(from: partition, to: 60, by: 2).map { "record-\($0)" }
                #expect(try await broker.values(of: partition) == expected)
            }
            // After every refused or dropped request, the next request for that partition
            // carries the same batch: the retry went first.
            let requests = await broker.received
            for failed in [0, 2, 3, 6, 9, 10] where failed < requests.count {
                let partition = requests[failed].partition
                let next = requests[(failed + 1)...].first { $0.partition == partition }
                #expect(next?.batch?.recordsCrc32c == requests[failed].batch?.recordsCrc32c, "request \(failed)")
            }
        }
    }

    @Test("a non-retriable error fails that batch's records only")
    func nonRetriable() async throws {
        try await withBroker(partitions: 1) { broker, address in
            await broker.setFaults([0: .error(.corruptBatch)])
            let producer = Producer(address: address, configuration: quickRetries { $0.linger = .zero })
            let first = try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "a"))
            await #expect(throws: ProducerError.refused(.corruptBatch, "")) { try await first.result() }
            let second = try await producer.send(topic: "orders", value: ByteBuffer(string: "b"))
            #expect(second.offset == 0)
            await producer.close()
            #expect(try await broker.values(of: 0) == ["b"])
        }
    }

    @Test("retrying stops at the delivery timeout with the last error")
    func deliveryTimeout() async throws {
        try await withBroker(partitions: 1) { broker, address in
            await broker.setFaults(Dictionary(uniqueKeysWithValues: (0..<10_000).map { ($0, .error(.notLeader)) }))
            let producer = Producer(address: address, configuration: quickRetries {
                $0.deliveryTimeout = .seconds(1)
                $0.retryBackoff = .milliseconds(10)
                $0.maxRetryBackoff = .milliseconds(20)
            })
            var failure: ProducerError?
            do {
                _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "never"))
            } catch let error as ProducerError {
                failure = error
            }
            guard case .deliveryTimedOut(let last)? = failure else {
                Issue.record("expected deliveryTimedOut, got \(String(describing: failure))")
                return
            }
            // On a loaded machine the timeout may pass before the first attempt, or while it
            // waits for its answer (a batch in flight fails at its deadline too). A second
            // attempt is only sent after the first was answered, so from then on the failure
            // names the broker's last error.
            let attempts = await broker.received.count
            if attempts >= 2 { #expect(last.contains("notLeader"), "\(last)") }
            #expect(await producer.bufferedByteCount == 0)
            await producer.close()
        }
    }

    @Test("a full buffer fails fast when so configured, and frees up as answers come")
    func failFast() async throws {
        try await withBroker(partitions: 1) { _, address in
            let producer = Producer(address: address, configuration: quickRetries {
                $0.linger = .seconds(3600)
                $0.maxBufferedBytes = 200
                $0.whenBufferFull = .failFast
            })
            var accepted: [Delivery] = []
            var refused = false
            for sequence in 0..<100 where !refused {
                do {
                    accepted.append(try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "value-\(sequence)")))
                } catch ProducerError.bufferFull {
                    refused = true
                }
            }
            #expect(refused && !accepted.isEmpty && accepted.count < 100)
            await producer.flush()
            for delivery in accepted { _ = try await delivery.result() }
            #expect(await producer.bufferedByteCount == 0)
            _ = try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "after"))
            await producer.close()
        }
    }

    @Test("a full buffer blocks the sender until answers free space")
    func blocking() async throws {
        try await withBroker(partitions: 1) { broker, address in
            let producer = Producer(address: address, configuration: quickRetries {
                $0.linger = .zero
                $0.maxBufferedBytes = 100
            })
            var deliveries: [Delivery] = []
            for sequence in 0..<40 {
                deliveries.append(try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "value-\(sequence)")))
                #expect(await producer.bufferedByteCount <= 100)
            }
            for delivery in deliveries { _ = try await delivery.result() }
            await producer.close()
            #expect(try await broker.values(of: 0).count == 40)
        }
    }

    @Test("unknown topic and partition are refused before anything is sent; acks none answers offset -1")
    func refusals() async throws {
        try await withBroker(partitions: 2) { broker, address in
            var configuration = quickRetries()
            configuration.acks = .none
            let producer = Producer(address: address, configuration: configuration)
            await #expect(throws: ProducerError.unknownTopic("nope")) {
                try await producer.send(topic: "nope", value: ByteBuffer(string: "x"))
            }
            await #expect(throws: ProducerError.unknownPartition(topic: "orders", partition: 2, partitionCount: 2)) {
                try await producer.send(topic: "orders", value: ByteBuffer(string: "x"), partition: 2)
            }
            let metadata = try await producer.send(topic: "orders", value: ByteBuffer(string: "fire"), partition: 1)
            #expect(metadata.offset == -1)
            await producer.close()
            #expect(try await broker.values(of: 1) == ["fire"])
        }
    }

    func produce(_ address: BrokerAddress, batches: [[String]], partition: Int) async throws {
        let producer = Producer(address: address, configuration: quickRetries { $0.linger = .seconds(3600) })
        for batch in batches {
            var deliveries: [Delivery] = []
            for value in batch {
                deliveries.append(try await producer.enqueue(
                    topic: "orders", key: ByteBuffer(string: "k"), value: ByteBuffer(string: value),
                    headers: [RecordHeader(key: "h", value: ByteBuffer(string: value))], partition: partition))
            }
            // One flush per batch: each list becomes one RecordBatch.
            await producer.flush()
            for delivery in deliveries { _ = try await delivery.result() }
        }
        await producer.close()
    }

    @Test("the consumer starts inside a batch at the exact offset and hands out keys, headers and positions")
    func consumeFromOffset() async throws {
        try await withBroker(partitions: 2) { _, address in
            try await produce(address, batches: [["a", "b", "c", "d", "e"], ["f", "g"]], partition: 1)
            let consumer = Consumer(address: address, topic: "orders", partitions: [1: .offset(3)])
            var iterator = consumer.makeAsyncIterator()
            var seen: [ConsumerRecord] = []
            for _ in 0..<4 { if let record = try await iterator.next() { seen.append(record) } }
            #expect(seen.map(\.offset) == [3, 4, 5, 6])
            #expect(seen.map { String(buffer: $0.value) } == ["d", "e", "f", "g"])
            #expect(seen.allSatisfy { $0.partition == 1 && $0.key == ByteBuffer(string: "k") && $0.headers.first?.value == $0.value })
            #expect(iterator.position(of: 1) == 7)
        }
    }

    @Test("after a dropped stream the consumer resubscribes at the next offset: nothing skipped, nothing repeated")
    func consumerReconnects() async throws {
        try await withBroker(partitions: 1) { broker, address in
            try await produce(address, batches: [["0", "1"], ["2", "3"], ["4"], ["5", "6", "7"]], partition: 0)
            await broker.setDropSubscription([0: 2, 1: 1])
            var configuration = ConsumerConfiguration()
            configuration.reconnectBackoff = .milliseconds(1)
            let consumer = Consumer(address: address, topic: "orders", configuration: configuration)
            var values: [String] = []
            for try await record in consumer {
                values.append(String(buffer: record.value))
                if values.count == 8 { break }
            }
            #expect(values == (0..<8).map(String.init))
            let subscriptions = await broker.subscriptions
            #expect(subscriptions.count == 3)
            #expect(subscriptions.dropFirst().map { $0.partitions.first?.start?.position } == [.offset(4), .offset(5)])
        }
    }

    @Test("a refused subscription ends the sequence with the broker's status")
    func consumerRefused() async throws {
        try await withBroker(partitions: 1) { _, address in
            let consumer = Consumer(address: address, topic: "missing")
            await #expect {
                for try await _ in consumer {}
            } throws: { error in
                (error as? ConsumerError)?.statusCode == .notFound
            }
        }
    }
}
