import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Synchronization
import Testing

/// Every wait a user of the client can hit ends by its documented deadline, with a timeout
/// error, or with `CancellationError` when its task is cancelled, while the broker stays
/// silent: frozen by SIGSTOP, or behind a proxy that stops forwarding without closing
/// (docs/client.md, "Deadlines"). Each test's expectations are checked before the broker
/// is resumed, so a wait that ended only because the broker came back fails. Deadlines are
/// a second or two; a cancellation test sets its deadline far past the suite's time limit,
/// so only cancellation can end the wait in time. The time limit bounds a wait that never
/// ends; nothing here measures how fast a wait ended.
@Suite("Client deadlines against a silent broker", .serialized, .timeLimit(.minutes(3)))
struct ClientDeadlineTests {
    static func producerConfiguration(maxBlock: Duration = .seconds(2)) -> ProducerConfiguration {
        var configuration = ProducerConfiguration()
        configuration.linger = .zero
        configuration.requestTimeout = .milliseconds(500)
        configuration.deliveryTimeout = .seconds(2)
        configuration.retryBackoff = .milliseconds(50)
        configuration.maxRetryBackoff = .milliseconds(200)
        configuration.maxBlock = maxBlock
        return configuration
    }

    // MARK: Producer

    @Test("a producer's first send ends with transport after maxBlock", arguments: Silence.allCases)
    func producerFirstSend(_ kind: Silence) async throws {
        try await withSilenceableBroker(kind) { broker in
            try await broker.silence()
            let producer = Producer(address: broker.address(), configuration: Self.producerConfiguration())
            let error = await thrownError { _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "first")) }
            guard case .transport? = error as? ProducerError else {
                Issue.record("expected ProducerError.transport, got \(String(describing: error))")
                return
            }
            await producer.close(timeout: .zero)
        }
    }

    @Test("a cancelled first send ends with CancellationError while connecting", arguments: Silence.allCases)
    func producerFirstSendCancelled(_ kind: Silence) async throws {
        try await withSilenceableBroker(kind) { broker in
            try await broker.silence()
            let producer = Producer(
                address: broker.address(connectTimeout: .seconds(600)), configuration: Self.producerConfiguration(maxBlock: .seconds(600)))
            let waiting = Task { try await producer.send(topic: "orders", value: ByteBuffer(string: "first")) }
            waiting.cancel()
            await #expect(throws: CancellationError.self) { _ = try await waiting.value }
            await producer.close(timeout: .zero)
        }
    }

    /// A producer that sent once (stream and metadata in place), then the broker goes silent.
    func withConnectedProducer(_ kind: Silence, _ body: (Producer) async throws -> Void) async throws {
        try await withSilenceableBroker(kind) { broker in
            let producer = Producer(address: broker.address(), configuration: Self.producerConfiguration())
            _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "before"))
            try await broker.silence()
            try await body(producer)
        }
    }

    func expectDeliveryTimedOut(_ error: (any Error)?, sourceLocation: SourceLocation = #_sourceLocation) {
        guard case .deliveryTimedOut? = error as? ProducerError else {
            Issue.record("expected deliveryTimedOut, got \(String(describing: error))", sourceLocation: sourceLocation)
            return
        }
    }

    @Test("send ends with deliveryTimedOut", arguments: Silence.allCases)
    func producerSend(_ kind: Silence) async throws {
        try await withConnectedProducer(kind) { producer in
            expectDeliveryTimedOut(await thrownError { _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "silent")) })
            await producer.close(timeout: .zero)
        }
    }

    @Test("flush returns once the records in it fail by their delivery timeout", arguments: Silence.allCases)
    func producerFlush(_ kind: Silence) async throws {
        try await withConnectedProducer(kind) { producer in
            let delivery = try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "silent"))
            await producer.flush()
            #expect(delivery.isComplete, "flush returns once every record it waited for is answered or failed")
            expectDeliveryTimedOut(await thrownError { _ = try await delivery.result() })
            await producer.close(timeout: .zero)
        }
    }

    @Test("close() without a timeout returns by the delivery timeout plus requestTimeout", arguments: Silence.allCases)
    func producerClose(_ kind: Silence) async throws {
        try await withConnectedProducer(kind) { producer in
            let delivery = try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "left"))
            await producer.close()
            let error = await thrownError { _ = try await delivery.result() }
            switch error as? ProducerError {
            case .deliveryTimedOut?, .closed?: break
            default: Issue.record("expected deliveryTimedOut or closed, got \(String(describing: error))")
            }
        }
    }

    @Test("a cancelled close returns and fails what is left", arguments: Silence.allCases)
    func producerCloseCancelled(_ kind: Silence) async throws {
        try await withSilenceableBroker(kind) { broker in
            var configuration = Self.producerConfiguration()
            configuration.deliveryTimeout = .seconds(600)
            configuration.requestTimeout = .seconds(300)
            let producer = Producer(address: broker.address(), configuration: configuration)
            _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "before"))
            try await broker.silence()
            let delivery = try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "left"))
            let closing = Task { await producer.close() }
            closing.cancel()
            await closing.value
            let error = await thrownError { _ = try await delivery.result() }
            #expect(error as? ProducerError == .closed, "got \(String(describing: error))")
        }
    }

    @Test("a send waiting for buffer space ends with CancellationError when cancelled", arguments: Silence.allCases)
    func producerBufferWaitCancelled(_ kind: Silence) async throws {
        try await withSilenceableBroker(kind) { broker in
            var configuration = Self.producerConfiguration()
            configuration.deliveryTimeout = .seconds(600)
            configuration.requestTimeout = .seconds(300)
            // Room for one record of 100 bytes (sized with its framing), not two.
            configuration.maxBufferedBytes = 200
            let producer = Producer(address: broker.address(), configuration: configuration)
            let value = ByteBuffer(repeating: 0x61, count: 100)
            _ = try await producer.send(topic: "orders", value: value)
            try await broker.silence()
            let first = try await producer.enqueue(topic: "orders", value: value)
            let waiting = Task { try await producer.enqueue(topic: "orders", value: value) }
            try await eventually("the second record to wait for space") { await producer.spaceWaiterCount == 1 }
            waiting.cancel()
            await #expect(throws: CancellationError.self) { _ = try await waiting.value }
            #expect(!first.isComplete, "the record ahead is still unanswered: only cancellation ended the wait")
            await producer.close(timeout: .zero)
        }
    }

    // MARK: Consumer

    static func consumerConfiguration(connectTimeout: Duration = .seconds(1)) -> ConsumerConfiguration {
        var configuration = ConsumerConfiguration()
        configuration.maxReconnectAttempts = 1
        configuration.reconnectBackoff = .milliseconds(50)
        configuration.connectTimeout = connectTimeout
        return configuration
    }

    @Test("a consumer's first next() ends with reconnectsExhausted", arguments: Silence.allCases)
    func consumerFirstConnect(_ kind: Silence) async throws {
        try await withSilenceableBroker(kind) { broker in
            try await broker.silence()
            // The address's own connect timeout is long: the consumer's setting applies.
            let consumer = Consumer(
                address: broker.address(connectTimeout: .seconds(600)), topic: "orders",
                configuration: Self.consumerConfiguration())
            let error = await thrownError { for try await _ in consumer {} }
            guard case .reconnectsExhausted? = error as? ConsumerError else {
                Issue.record("expected reconnectsExhausted, got \(String(describing: error))")
                return
            }
        }
    }

    @Test("a cancelled consumer ends with CancellationError while connecting", arguments: Silence.allCases)
    func consumerFirstConnectCancelled(_ kind: Silence) async throws {
        try await withSilenceableBroker(kind) { broker in
            try await broker.silence()
            let consumer = Consumer(
                address: broker.address(), topic: "orders", configuration: Self.consumerConfiguration(connectTimeout: .seconds(600)))
            let reading = Task { for try await _ in consumer {} }
            reading.cancel()
            await #expect(throws: CancellationError.self) { try await reading.value }
        }
    }

    // MARK: GroupConsumer

    static func groupConfiguration(_ delivery: DeliverySemantics = .atLeastOnce(commit: .auto)) -> GroupConsumerConfiguration {
        var configuration = GroupConsumerConfiguration(group: "billing", topics: ["orders"])
        configuration.delivery = delivery
        configuration.maxReconnectAttempts = 1
        configuration.reconnectBackoff = .milliseconds(50)
        configuration.connectTimeout = .seconds(1)
        configuration.joinTimeout = .seconds(1)
        configuration.requestTimeout = .seconds(1)
        configuration.leaveTimeout = .seconds(1)
        return configuration
    }

    @Test("a group consumer's run ends with reconnectsExhausted when it cannot connect", arguments: Silence.allCases)
    func groupFirstConnect(_ kind: Silence) async throws {
        try await withSilenceableBroker(kind) { broker in
            try await broker.silence()
            let consumer = GroupConsumer(address: broker.address(connectTimeout: .seconds(600)), configuration: Self.groupConfiguration())
            let error = await thrownError { try await consumer.run { _ in } }
            guard case .reconnectsExhausted? = error as? GroupConsumerError else {
                Issue.record("expected reconnectsExhausted, got \(String(describing: error))")
                return
            }
        }
    }

    @Test("a join the coordinator never answers is given up at joinTimeout")
    func groupJoin() async throws {
        // Connected (SETTINGS get through), and the Join's answer never comes.
        try await withSilenceableBroker(.stalledProxy, stallAtServerHeaders: true) { broker in
            let consumer = GroupConsumer(address: broker.address(), configuration: Self.groupConfiguration())
            let error = await thrownError { try await consumer.run { _ in } }
            guard case .reconnectsExhausted(_, let last)? = error as? GroupConsumerError else {
                Issue.record("expected reconnectsExhausted, got \(String(describing: error))")
                return
            }
            #expect(last.contains("joinTimeout"), "the last failure is the join's deadline: \(last)")
        }
    }

    @Test("a cancelled run returns while joining", arguments: [false, true])
    func groupJoinCancelled(_ joining: Bool) async throws {
        try await withSilenceableBroker(.stalledProxy, stallAtServerHeaders: joining) { broker in
            if !joining { try await broker.silence() }
            var configuration = Self.groupConfiguration()
            configuration.connectTimeout = .seconds(600)
            configuration.joinTimeout = .seconds(600)
            let consumer = GroupConsumer(address: broker.address(), configuration: configuration)
            let running = Task { try await consumer.run { _ in } }
            running.cancel()
            // A cancelled run leaves and returns (the Service convention), or throws CancellationError.
            let error = await thrownError { try await running.value }
            #expect(error == nil || error is CancellationError, "got \(String(describing: error))")
        }
    }

    /// A manual-commit member that got a batch; `inHandler` runs in the handler with the
    /// broker already silent, then the member is closed.
    func withSilencedMember(
        _ kind: Silence, requestTimeout: Duration, _ inHandler: @escaping @Sendable (GroupConsumer) async -> Void
    ) async throws {
        try await withSilenceableBroker(kind) { broker in
            let producer = Producer(address: broker.address())
            _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "one"))
            await producer.close()
            var configuration = Self.groupConfiguration(.atLeastOnce(commit: .manual))
            configuration.requestTimeout = requestTimeout
            configuration.joinTimeout = .seconds(30)
            let consumer = GroupConsumer(address: broker.address(), configuration: configuration)
            let handled = Mutex(false)
            try await consumer.run { _ in
                guard !handled.withLock({ $0 }) else { return }
                handled.withLock { $0 = true }
                try await broker.silence()
                await inHandler(consumer)
                await consumer.close()
            }
            #expect(handled.withLock { $0 }, "the handler ran")
        }
    }

    @Test("commit() ends with commitFailed(DEADLINE_EXCEEDED) after requestTimeout", arguments: Silence.allCases)
    func groupCommit(_ kind: Silence) async throws {
        let outcome = Mutex<String?>(nil)
        try await withSilencedMember(kind, requestTimeout: .seconds(1)) { consumer in
            let error = await thrownError { try await consumer.commit() }
            if case .commitFailed(let status)? = error as? GroupConsumerError, status.code == .deadlineExceeded {
                outcome.withLock { $0 = "deadline" }
            } else {
                outcome.withLock { $0 = "\(String(describing: error))" }
            }
        }
        #expect(outcome.withLock { $0 } == "deadline")
    }

    @Test("a cancelled commit() ends with CancellationError", arguments: Silence.allCases)
    func groupCommitCancelled(_ kind: Silence) async throws {
        let outcome = Mutex<String?>(nil)
        try await withSilencedMember(kind, requestTimeout: .seconds(600)) { consumer in
            let committing = Task { try await consumer.commit() }
            committing.cancel()
            let error = await thrownError { _ = try await committing.value }
            outcome.withLock { $0 = error is CancellationError ? "cancelled" : "\(String(describing: error))" }
        }
        #expect(outcome.withLock { $0 } == "cancelled")
    }

    // MARK: SluiceAdminClient

    @Test("SluiceAdminClient(address:) ends with UNAVAILABLE after connectTimeout", arguments: Silence.allCases)
    func adminConnect(_ kind: Silence) async throws {
        try await withSilenceableBroker(kind) { broker in
            try await broker.silence()
            let error = await thrownError { _ = try await SluiceAdminClient(address: broker.address()) }
            #expect((error as? GRPCStatus)?.code == .unavailable, "got \(String(describing: error))")
        }
    }

    @Test("a cancelled SluiceAdminClient(address:) ends with CancellationError", arguments: Silence.allCases)
    func adminConnectCancelled(_ kind: Silence) async throws {
        try await withSilenceableBroker(kind) { broker in
            try await broker.silence()
            let address = broker.address(connectTimeout: .seconds(600))
            let connecting = Task { try await SluiceAdminClient(address: address) }
            connecting.cancel()
            await #expect(throws: CancellationError.self) { _ = try await connecting.value }
        }
    }

    @Test("an admin call ends with DEADLINE_EXCEEDED after its timeout, or CancellationError", arguments: Silence.allCases)
    func adminCall(_ kind: Silence) async throws {
        try await withSilenceableBroker(kind) { broker in
            let admin = try await SluiceAdminClient(address: broker.address(), timeout: .seconds(1))
            try await broker.silence()
            let error = await thrownError { _ = try await admin.describeTopic(named: "orders") }
            #expect((error as? GRPCStatus)?.code == .deadlineExceeded, "got \(String(describing: error))")
            let patient = SluiceAdminClient(connection: admin.connection, timeout: .seconds(600))
            let listing = Task { try await patient.listTopics() }
            listing.cancel()
            await #expect(throws: CancellationError.self) { _ = try await listing.value }
            await admin.close()
        }
    }
}
