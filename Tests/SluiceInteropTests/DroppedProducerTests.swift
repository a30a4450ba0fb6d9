import Foundation
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import Testing

/// A producer its user drops without `close()` must not keep its connection (its stream's
/// reader task used to hold it alive, and with it the connection, for ever).
@Suite("Dropped producers", .serialized, .timeLimit(.minutes(2)))
struct DroppedProducerTests {
    /// Established TCP connections from this machine to `port` (client ends), read from
    /// /proc/net/tcp: "local_address rem_address st" with addresses as HEX_IP:HEX_PORT
    /// and st 01 for ESTABLISHED.
    static func clientConnections(to port: Int) throws -> Int {
        let remote = String(format: ":%04X", port)
        var count = 0
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 3 else { continue }
                if fields[2].hasSuffix(remote) && fields[3] == "01" { count += 1 }
            }
        }
        return count
    }

    @Test("20 producers dropped without close release their connections")
    func droppedProducersCloseTheirConnections() async throws {
        try await withBroker { broker in
            try await broker.createTopic("orders", partitions: 1)
            let baseline = try Self.clientConnections(to: broker.port)
            var dropped: [WeakProducer] = []
            let tasks = ClientTaskCounter()
            try await ClientTasks.$counter.withValue(tasks) {
                for index in 0..<20 {
                    let producer = Producer(address: broker.address)
                    _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "record \(index)"))
                    dropped.append(WeakProducer(producer))
                }
            }
            // Nothing of the producer's own may keep it alive once its user let go.
            try await eventually("the dropped producers to be freed") {
                dropped.allSatisfy { $0.producer == nil }
            }
            try await eventually("the dropped producers' connections to close") {
                try Self.clientConnections(to: broker.port) <= baseline
            }
            try await tasks.eventuallyNoneRunning("the dropped producers' tasks (session readers and writers, timers) to end")
        }
    }
}

final class WeakProducer: @unchecked Sendable {
    // @unchecked: written once in init; read by the test task only.
    weak var producer: Producer?
    init(_ producer: Producer) { self.producer = producer }
}

extension ClientTaskCounter {
    /// Waits (bounded) until every client task counted here has ended; a failure names the
    /// sites of those still running.
    func eventuallyNoneRunning(_ what: String) async throws {
        do {
            try await eventually(what) { self.count == 0 }
        } catch {
            Issue.record("client tasks still running, by the line that started them: \(sites)")
            throw error
        }
    }
}
