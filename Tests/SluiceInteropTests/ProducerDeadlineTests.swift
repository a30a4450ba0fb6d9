import Foundation
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A broker frozen with SIGSTOP keeps its sockets open and answers nothing: the producer's
/// waits must still end, by its own deadlines or by cancellation, while it stays frozen.
/// Every expectation below is checked before the broker is resumed, so a wait that only
/// ended because the broker came back fails the test. The suite's time limit bounds a
/// wait that never ends.
@Suite("Producer deadlines against a frozen broker", .serialized, .timeLimit(.minutes(2)))
struct ProducerDeadlineTests {
    func withFrozenBroker(
        deliveryTimeout: Duration = .seconds(2), requestTimeout: Duration = .milliseconds(500),
        _ body: (BrokerProcess, Producer) async throws -> Void
    ) async throws {
        let broker = try await BrokerProcess()
        let admin = try await broker.admin()
        _ = try await admin.createTopic(CreateTopicRequest(name: "orders", partitions: 1))
        await admin.close()
        var configuration = ProducerConfiguration()
        configuration.linger = .zero
        configuration.requestTimeout = requestTimeout
        configuration.deliveryTimeout = deliveryTimeout
        configuration.retryBackoff = .milliseconds(50)
        configuration.maxRetryBackoff = .milliseconds(200)
        let producer = Producer(address: broker.address, configuration: configuration)
        // A first record goes through, so the stream and the topic's metadata exist. Its
        // timeouts are the test's short ones, which a busy machine (a debug broker just
        // started, the rest of the suite running) can exceed: it is tried until one lands.
        try await eventually("a first record to be delivered before the broker is frozen") {
            (try? await producer.send(topic: "orders", value: ByteBuffer(string: "before"))) != nil
        }
        guard let pid = broker.process?.processIdentifier else { throw TestProcessError("no broker process") }
        kill(pid, SIGSTOP)
        do {
            // SIGSTOP is delivered asynchronously: until the kernel reports the broker
            // stopped, it may still answer.
            try await eventually("the broker to be stopped") { SilenceableBroker.isStopped(pid) }
            try await body(broker, producer)
        } catch {
            kill(pid, SIGCONT)
            await broker.remove()
            throw error
        }
        kill(pid, SIGCONT)
        await broker.remove()
    }

    @Test("send fails with deliveryTimedOut while the broker stays frozen")
    func sendIsBoundedByTheDeliveryTimeout() async throws {
        try await withFrozenBroker { _, producer in
            do {
                let placed = try await producer.send(topic: "orders", value: ByteBuffer(string: "frozen"))
                Issue.record("send succeeded against a frozen broker: \(placed)")
            } catch let error as ProducerError {
                guard case .deliveryTimedOut = error else {
                    Issue.record("expected deliveryTimedOut, got \(error)")
                    return
                }
            }
            #expect(await producer.bufferedByteCount == 0, "a failed record gives its bytes back")
            await producer.close(timeout: .seconds(1))
        }
    }

    @Test("a cancelled send returns CancellationError while the broker stays frozen")
    func cancelledSendReturns() async throws {
        // Timeouts far beyond the suite's limit: only cancellation can end the wait in time.
        try await withFrozenBroker(deliveryTimeout: .seconds(600), requestTimeout: .seconds(300)) { _, producer in
            let waiting = Task { try await producer.send(topic: "orders", value: ByteBuffer(string: "waiting")) }
            waiting.cancel()
            await #expect(throws: CancellationError.self) { _ = try await waiting.value }
            let delivery = try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "waiting too"))
            let second = Task { try await delivery.result() }
            second.cancel()
            await #expect(throws: CancellationError.self) { _ = try await second.value }
            #expect(!delivery.isComplete, "cancelling a wait does not withdraw the record")
            await producer.close(timeout: .zero)
        }
    }

    @Test("close(timeout:) returns and fails what is left while the broker stays frozen")
    func closeIsBounded() async throws {
        try await withFrozenBroker { _, producer in
            let delivery = try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "left"))
            await producer.close(timeout: .milliseconds(100))
            do {
                _ = try await delivery.result()
                Issue.record("a record sent to a frozen broker was answered")
            } catch let error as ProducerError {
                switch error {
                case .closed, .deliveryTimedOut: break
                default: Issue.record("expected closed, got \(error)")
                }
            }
            await #expect(throws: ProducerError.self) { _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "after")) }
        }
    }
}
