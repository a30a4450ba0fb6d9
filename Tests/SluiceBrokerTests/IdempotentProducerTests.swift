import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceService
import SluiceStorage
import SluiceTestSupport
import Testing

/// The Swift `Producer` with `idempotent` on, against an in-process broker: what it
/// sends, how it recovers from an expired producer id, and fencing by name. (Retries
/// after cut connections are in SluiceInteropTests' cutting-proxy test.)
@Suite(.timeLimit(.minutes(2))) struct IdempotentProducerTests {
    func producer(_ broker: InProcessBroker, name: String? = nil, acks: Acks = .all) -> Producer {
        var configuration = ProducerConfiguration()
        configuration.idempotent = true
        configuration.producerName = name
        configuration.acks = acks
        configuration.linger = .zero
        configuration.retryBackoff = .milliseconds(5)
        return Producer(address: BrokerAddress(host: "127.0.0.1", port: broker.port), configuration: configuration)
    }

    @Test func theDefaultProducerIsIdempotentAndPipelinesBatchesInOrder() async throws {
        // fsync always: each answer waits for an fdatasync, so batches pile up behind it.
        let broker = try await InProcessBroker.start()
        _ = try broker.server.broker.createTopic(named: "p", partitions: 1)
        var configuration = ProducerConfiguration()
        configuration.linger = .zero
        configuration.maxBatchBytes = 200
        #expect(configuration.isIdempotent, "acks all, the default, makes a producer idempotent")
        let producer = Producer(address: BrokerAddress(host: "127.0.0.1", port: broker.port), configuration: configuration)
        var deliveries: [Delivery] = []
        for index in 0..<400 {
            deliveries.append(try await producer.enqueue(topic: "p", value: ByteBuffer(string: "record-\(index)"), partition: 0))
        }
        for (index, delivery) in deliveries.enumerated() {
            #expect(try await delivery.result().offset == Int64(index), "stored once each, in the order sent")
        }
        let most = await producer.mostInFlight
        #expect(most > 1 && most <= 5, "several batches in flight at once, never more than five (saw \(most))")
        let state = try broker.server.broker.producerState(topic: "p", partition: 0)
        #expect(state.producers.count == 1 && state.producers.first?.value.nextSequence == 400)
        await producer.close()

        var plain = configuration
        plain.acks = .leader
        #expect(!plain.isIdempotent, "a producer asking less than acks all is not idempotent unless told")
        let leaderOnly = Producer(address: BrokerAddress(host: "127.0.0.1", port: broker.port), configuration: plain)
        var more: [Delivery] = []
        for index in 0..<100 {
            more.append(try await leaderOnly.enqueue(topic: "p", value: ByteBuffer(string: "plain-\(index)"), partition: 0))
        }
        for delivery in more { _ = try await delivery.result() }
        #expect(await leaderOnly.mostInFlight == 1)
        await leaderOnly.close()
        await broker.stopAndRemove()
    }

    @Test func batchesCarrySequencesAndAnExpiredProducerRecoversWithANewIdentity() async throws {
        let clock = ManualClock()
        let broker = try await IdempotenceTests.brokerWhoseProducersExpire(clock)
        // Acks none is overridden: idempotence needs the broker's answer.
        let producer = producer(broker, acks: .none)
        for index in 0..<3 {
            let sent = try await producer.send(topic: "t", value: ByteBuffer(string: "v\(index)"), partition: 0)
            #expect(sent.offset == Int64(index))
        }
        let before = try broker.server.broker.producerState(topic: "t", partition: 0)
        let (firstID, known) = try #require(before.producers.first)
        #expect(known.epoch == 0 && known.nextSequence == 3 && known.batches.count == 3)

        clock.advance(byMilliseconds: 60_001)
        #expect(broker.server.broker.runMaintenance().producersExpired == 1)
        // Sequence 3 is refused (UNKNOWN_PRODUCER_ID); the producer takes a new id and
        // starts again at 0, and the record is delivered once.
        let recovered = try await producer.send(topic: "t", value: ByteBuffer(string: "v3"), partition: 0)
        #expect(recovered.offset == 3)
        let after = try broker.server.broker.producerState(topic: "t", partition: 0)
        let (secondID, renewed) = try #require(after.producers.first)
        #expect(secondID != firstID && renewed.nextSequence == 1)
        await producer.close()
        #expect(try broker.server.broker.partitionLog(topic: "t", partition: 0).logEndOffset == 4)
        await broker.stopAndRemove()
    }

    @Test func aSecondProducerWithTheSameNameFencesTheFirst() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "t", partitions: 2))
        let first = producer(broker, name: "orders-writer")
        _ = try await first.send(topic: "t", value: ByteBuffer(string: "a"), partition: 0)
        let second = producer(broker, name: "orders-writer")
        _ = try await second.send(topic: "t", value: ByteBuffer(string: "b"), partition: 1)
        await #expect(throws: ProducerError.self) {
            _ = try await first.send(topic: "t", value: ByteBuffer(string: "zombie"), partition: 0)
        }
        do {
            _ = try await first.send(topic: "t", value: ByteBuffer(string: "zombie"), partition: 1)
            Issue.record("a fenced producer's send succeeded")
        } catch ProducerError.refused(let code, let message) {
            #expect(code == .producerFenced, "\(message)")
        }
        _ = try await second.send(topic: "t", value: ByteBuffer(string: "c"), partition: 0)
        let ends = try (0..<2).map { try broker.server.broker.partitionLog(topic: "t", partition: UInt32($0)).logEndOffset }
        #expect(ends == [2, 1])
        await first.close()
        await second.close()
        await broker.stopAndRemove()
    }
}
