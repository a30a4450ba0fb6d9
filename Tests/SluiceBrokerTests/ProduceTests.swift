import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceService
import SluiceStorage
import SluiceTestSupport
import SluiceWire
import Testing

@Suite(.timeLimit(.minutes(2))) struct ProduceTests {
    @Test func producedBatchesComeBackVerbatimWithTheirOffsets() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "orders", partitions: 2))
        var producer = try await ProduceStream(broker.connection)
        let sent = [TestBatches.batch(["a", "b", "c"]), TestBatches.batch(["d", "e"]), TestBatches.batch(["f"])]
        var offsets: [Int64] = []
        for (index, batch) in sent.enumerated() {
            let answer = try await producer.produce("orders", partition: 1, correlationID: UInt64(100 + index), batch)
            #expect(answer.error == .none, "\(answer.errorMessage)")
            #expect(answer.correlationId == UInt64(100 + index))
            #expect(answer.topic == "orders" && answer.partition == 1)
            #expect(answer.logAppendTimeMs == -1)
            #expect(answer.logStartOffset == 0)
            offsets.append(answer.baseOffset)
        }
        #expect(offsets == [0, 3, 5])
        try await producer.close()

        var subscriber = try await SubscribeStream(
            broker.connection, SubscribeRequest(topic: "orders", partitions: [.init(partition: 1, start: .earliest)]))
        var received: [RecordBatch] = []
        while received.count < 3 {
            guard let response = try await subscriber.next() else { break }
            #expect(response.partition == 1)
            #expect(response.highWatermark == 6)
            received += response.batches
        }
        #expect(received.map(\.baseOffset) == [0, 3, 5])
        for (stored, original) in zip(received, sent) {
            var expected = original
            expected.baseOffset = stored.baseOffset
            #expect(stored == expected)  // every field and the record bytes, unchanged
        }
        subscriber.call.cancel()

        let described = try await broker.admin.describeTopic(named: "orders")
        let partition = try #require(described.partitions.first { $0.partition == 1 })
        #expect(partition.logStartOffset == 0 && partition.logEndOffset == 6 && partition.highWatermark == 6)
        #expect(partition.sizeBytes == Int64(sent.reduce(0) { $0 + 64 + $1.records.readableBytes }))
        #expect(described.partitions.first { $0.partition == 0 }?.logEndOffset == 0)
        await broker.stopAndRemove()
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "pipe", partitions: 3))
        var producer = try await ProduceStream(broker.connection)
        let count = 300
        // Everything is sent before any answer is read: the broker must keep reading
        // (up to its bound) and answer in request order, whatever each request's acks.
        let call = producer.call
        let sender = Task {
            for index in 0..<count {
                let acks: Acks = [.durable, .leader, .all][index % 3]
                let partition = UInt32(index % 7 == 6 ? 9 : index % 3)  // every 7th is refused
                try await call.send(ProduceRequest(
                    correlationId: UInt64(index), topic: "pipe", partition: partition, acks: acks,
                    batch: TestBatches.batch(["\(index)"])).protobufBytes())
            }
            try await call.finishSending()
        }
        var nextOffset: [UInt32: Int64] = [:]
        for index in 0..<count {
            let answer = try #require(try await producer.next())
            #expect(answer.correlationId == UInt64(index))
            if index % 7 == 6 {
                #expect(answer.error == .unknownPartition)
            } else {
                #expect(answer.error == .none)
                #expect(answer.baseOffset == nextOffset[answer.partition, default: 0])
                nextOffset[answer.partition, default: 0] += 1
            }
        }
        #expect(try await producer.next() == nil)
        try await sender.value
        try await eventually("the stream's tasks end") { broker.server.broker.counters.snapshot.produceStreamsActive == 0 }
        await broker.stopAndRemove()
    }

    @Test func everyBadBatchGetsItsErrorAndTheStreamGoesOn() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "t", partitions: 1, configs: ["max.message.bytes": "200"]))
        var producer = try await ProduceStream(broker.connection)
        let good = TestBatches.batch(["ok"])

        var badCRC = good
        badCRC.recordsCrc32c ^= 1
        var empty = good
        empty.recordCount = 0
        var noRecordBytes = good
        noRecordBytes.records = ByteBuffer()
        var version2 = good
        version2.formatVersion = 2
        var reservedBits = good
        reservedBits.attributes = 0x10
        var unknownCodec = good
        unknownCodec.attributes = 0x05
        var idempotent = good
        idempotent.producerId = 42
        var backwards = good
        backwards.maxTimestampMs = good.firstTimestampMs - 1
        var negative = good
        negative.firstTimestampMs = -5
        let tooLarge = TestBatches.batch([String(repeating: "x", count: 200)])

        let cases: [(String, UInt32, RecordBatch?, ErrorCode, String)] = [
            ("missing", 0, good, .unknownTopic, "missing"),
            ("t", 1, good, .unknownPartition, "partition 1"),
            ("t", 0, tooLarge, .messageTooLarge, "max.message.bytes 200"),
            ("t", 0, badCRC, .corruptBatch, "records_crc32c"),
            ("t", 0, empty, .invalidBatch, "record_count"),
            ("t", 0, noRecordBytes, .invalidBatch, "records is empty"),
            ("t", 0, version2, .invalidBatch, "format_version"),
            ("t", 0, reservedBits, .invalidBatch, "reserved"),
            ("t", 0, unknownCodec, .invalidBatch, "codec"),
            ("t", 0, idempotent, .unknownProducerId, "was never handed out"),
            ("t", 0, backwards, .invalidBatch, "timestamps"),
            ("t", 0, negative, .invalidBatch, "timestamps"),
            ("t", 0, nil, .invalidBatch, "no batch"),
        ]
        for (topic, partition, batch, code, text) in cases {
            let answer = try await producer.produce(topic, partition: partition, batch)
            #expect(answer.error == code, "\(topic)/\(partition): \(answer.errorMessage)")
            #expect(answer.errorMessage.contains(text), "\(answer.errorMessage)")
            #expect(answer.baseOffset == -1)
        }
        // The stream is still open and the log took nothing but the good batch.
        let answer = try await producer.produce("t", good)
        #expect(answer.error == .none && answer.baseOffset == 0)
        try await producer.close()
        #expect(try await broker.admin.describeTopic(named: "t").partitions[0].logEndOffset == 1)
        await broker.stopAndRemove()
    }

    @Test func acksNoneAnswersOnlyFailures() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "quiet", partitions: 1))
        var producer = try await ProduceStream(broker.connection)
        try await producer.send(ProduceRequest(correlationId: 1, topic: "quiet", acks: .none, batch: TestBatches.batch(["a"])))
        try await producer.send(ProduceRequest(correlationId: 2, topic: "nope", acks: .none, batch: TestBatches.batch(["b"])))
        try await producer.send(ProduceRequest(correlationId: 3, topic: "quiet", acks: .none, batch: TestBatches.batch(["c"])))
        try await producer.send(ProduceRequest(correlationId: 4, topic: "quiet", acks: .leader, batch: TestBatches.batch(["d"])))
        try await producer.close()
        let first = try #require(try await producer.next())
        #expect(first.correlationId == 2 && first.error == .unknownTopic)
        let second = try #require(try await producer.next())
        #expect(second.correlationId == 4 && second.error == .none && second.baseOffset == 2)
        #expect(try await producer.next() == nil)
        await broker.stopAndRemove()
    }

    @Test func logAppendTimeReplacesTheProducersTimestamps() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "stamped", partitions: 1, configs: ["message.timestamp.type": "LogAppendTime"]))
        var producer = try await ProduceStream(broker.connection)
        var batch = TestBatches.batch(["a", "b"], firstTimestampMs: 5)
        batch.attributes = 0x08  // broker-set: ignored on produce either way
        let answer = try await producer.produce("stamped", batch)
        #expect(answer.error == .none)
        #expect(answer.logAppendTimeMs > 1_600_000_000_000)
        try await producer.close()
        var subscriber = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "stamped"))
        let stored = try #require(try await subscriber.next()?.batches.first)
        #expect(stored.attributes & 0x08 != 0)
        #expect(stored.firstTimestampMs == answer.logAppendTimeMs && stored.maxTimestampMs == answer.logAppendTimeMs)
        #expect(stored.records == batch.records && stored.recordsCrc32c == batch.recordsCrc32c)
        subscriber.call.cancel()
        await broker.stopAndRemove()
    }

    @Test func appendsContinueWhileASyncIsInFlightAndTimeoutsAreAnswered() async throws {
        let fileSystem = GatedFileSystem()
        let broker = try await InProcessBroker.start { $0.storage.fileSystem = fileSystem.fileSystem }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "slow", partitions: 1))
        fileSystem.closeGate()
        var producer = try await ProduceStream(broker.connection)
        try await producer.send(ProduceRequest(correlationId: 1, topic: "slow", acks: .durable, timeoutMs: 60_000, batch: TestBatches.batch(["a"])))
        try await producer.send(ProduceRequest(correlationId: 2, topic: "slow", acks: .durable, timeoutMs: 50, batch: TestBatches.batch(["b"])))
        try await producer.send(ProduceRequest(correlationId: 3, topic: "slow", acks: .leader, batch: TestBatches.batch(["c"])))
        // All three are appended although the first one's fdatasync has not finished.
        try await eventually("three batches appended") {
            try await broker.admin.describeTopic(named: "slow").partitions[0].logEndOffset == 3
        }
        #expect(try await broker.admin.describeTopic(named: "slow").partitions[0].highWatermark == 0)
        await fileSystem.syncs.waitUntilHeld(1)
        fileSystem.openGate()
        // In order: 1 durable, then 2 (its 50 ms passed long before, or it became
        // durable with 1: either way it is answered second), then 3.
        let first = try #require(try await producer.next())
        #expect(first.correlationId == 1 && first.error == .none && first.baseOffset == 0)
        let second = try #require(try await producer.next())
        #expect(second.correlationId == 2)
        #expect(second.error == .none || second.error == .requestTimedOut)
        let third = try #require(try await producer.next())
        #expect(third.correlationId == 3 && third.error == .none && third.baseOffset == 2)

        // A timeout for certain: no sync can finish while the gate is closed.
        fileSystem.closeGate()
        try await producer.send(ProduceRequest(correlationId: 4, topic: "slow", acks: .durable, timeoutMs: 50, batch: TestBatches.batch(["d"])))
        let timedOut = try #require(try await producer.next())
        #expect(timedOut.correlationId == 4 && timedOut.error == .requestTimedOut, "\(timedOut.errorMessage)")
        #expect(timedOut.baseOffset == 3)
        fileSystem.openGate()
        try await producer.close()
        await broker.stopAndRemove()
    }

    @Test func aStorageFailureIsAPerBatchError() async throws {
        let fileSystem = SimulatedFileSystem()
        let broker = try await InProcessBroker.start { $0.storage.fileSystem = fileSystem }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "disk", partitions: 1))
        var producer = try await ProduceStream(broker.connection)
        #expect(try await producer.produce("disk", TestBatches.batch(["fine"])).error == .none)
        fileSystem.setFaults(SimulatedFaults(writeErrorRate: 1))
        let failed = try await producer.produce("disk", TestBatches.batch(["lost"]))
        #expect(failed.error == .storageError, "\(failed.errorMessage)")
        fileSystem.setFaults(.none)
        // The log is fenced: later batches fail too, and the stream stays up.
        #expect(try await producer.produce("disk", TestBatches.batch(["later"])).error == .storageError)
        try await producer.close()
        await broker.stopAndRemove()
    }

    @Test func badProtobufOnTheStreamEndsItWithInvalidArgument() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "t", partitions: 1))
        var producer = try await ProduceStream(broker.connection)
        #expect(try await producer.produce("t", TestBatches.batch(["first"])).error == .none)
        await expectStatus(.invalidArgument, containing: "not valid protobuf") {
            try await producer.call.send(ByteBuffer(bytes: [0x12, 50, 0x61]))
            while try await producer.next() != nil {}
        }
        try await eventually("the stream's tasks end") { broker.server.broker.counters.snapshot.produceStreamsActive == 0 }
        await broker.stopAndRemove()
    }

    @Test func aProducerThatDisconnectsLeavesOnlyWholeBatches() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "cut", partitions: 1))
        let producer = try await ProduceStream(broker.connection)
        for index in 0..<50 {
            try await producer.send(ProduceRequest(topic: "cut", acks: .leader, batch: TestBatches.batch(["\(index)", "x"])))
        }
        producer.call.cancel()
        try await eventually("the stream's tasks end and leave no wait behind") {
            broker.server.broker.counters.snapshot.produceStreamsActive == 0
                && (try? broker.server.broker.partitionLog(topic: "cut", partition: 0).pendingWaitCount) == 0
        }
        let end = try await broker.admin.describeTopic(named: "cut").partitions[0].logEndOffset
        #expect(end % 2 == 0 && end <= 100)
        // Every stored batch reads back whole, with its CRC intact.
        let partition = try broker.server.broker.partitionLog(topic: "cut", partition: 0)
        var position: Int64 = 0
        while position < end {
            let read = try partition.read(from: position, maxBytes: 1 << 20)
            for stored in StoredBatches(read.batches) {
                #expect(stored.defect() == nil)
                #expect(stored.header.recordCount == 2)
                position = stored.header.nextOffset
            }
        }
        await broker.stopAndRemove()
    }
}
