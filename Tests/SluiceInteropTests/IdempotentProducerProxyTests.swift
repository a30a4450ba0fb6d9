import Foundation
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import Testing

/// The Swift producer, with retries, through a proxy that cuts the connection after the
/// broker answered a batch but before the answer reaches the producer (`CuttingProxy`).
/// Every cut makes the producer resend a batch the broker already appended: without
/// idempotence that is a duplicate; with it the broker recognises the retry.
///
/// SLUICE_PROXY_CUTS sets the number of cuts (30 by default; SLUICE_SOAK=1 makes it 300).
@Suite("Idempotent producer through a cutting proxy", .serialized, .timeLimit(.minutes(5)))
struct IdempotentProducerProxyTests {
    static var cuts: Int {
        let environment = ProcessInfo.processInfo.environment
        if let text = environment["SLUICE_PROXY_CUTS"], let count = Int(text), count > 0 { return count }
        return environment["SLUICE_SOAK"] == "1" ? 300 : 30
    }

    struct Run {
        var occurrences: [String: Int]
        var cuts: Int
        var records: Int
    }

    /// Sends `records` records one at a time through a fresh proxy and reads the topic back.
    func run(idempotent: Bool, broker: BrokerProcess, topic: String) async throws -> Run {
        let admin = try await broker.admin()
        _ = try await admin.createTopic(CreateTopicRequest(name: topic, partitions: 1))
        let proxy = try CuttingProxy(upstreamPort: broker.port, maxCuts: Self.cuts)
        defer { proxy.stop() }
        var configuration = ProducerConfiguration()
        configuration.idempotent = idempotent
        configuration.linger = .zero
        configuration.retryBackoff = .milliseconds(5)
        configuration.maxRetryBackoff = .milliseconds(50)
        let producer = Producer(address: BrokerAddress(host: "127.0.0.1", port: proxy.port), configuration: configuration)
        // Enough answers for every cut (a connection forwards up to two before its cut).
        let records = Self.cuts * 3 + 20
        for index in 0..<records {
            _ = try await producer.send(topic: topic, value: ByteBuffer(string: "record-\(index)"), partition: 0)
        }
        await producer.close()
        #expect(proxy.cuts == Self.cuts, "the proxy cut as often as planned")

        let end = try await admin.describeTopic(named: topic).partitions[0].logEndOffset
        await admin.close()
        var occurrences: [String: Int] = [:]
        var read = 0
        if end > 0 {
            for try await record in Consumer(address: broker.address, topic: topic, partitions: [0: .earliest]) {
                occurrences[String(buffer: record.value), default: 0] += 1
                read += 1
                if read == end { break }
            }
        }
        return Run(occurrences: occurrences, cuts: proxy.cuts, records: records)
    }

    @Test("with idempotence every record is stored exactly once; without, the same cuts store duplicates")
    func cutsAfterTheAnswer() async throws {
        let broker = try await BrokerProcess()
        do {
            let exact = try await run(idempotent: true, broker: broker, topic: "idempotent")
            #expect(exact.occurrences.count == exact.records, "nothing is missing")
            #expect(exact.occurrences.values.allSatisfy { $0 == 1 }, "no duplicates: \(exact.occurrences.filter { $0.value > 1 })")

            let plain = try await run(idempotent: false, broker: broker, topic: "plain")
            #expect(plain.occurrences.count == plain.records, "nothing is missing")
            let extraCopies = plain.occurrences.values.reduce(0) { $0 + $1 - 1 }
            // Each cut lost the answer of a batch (one record, alone in flight) the broker
            // had appended, and the retry appended it again.
            #expect(extraCopies == plain.cuts, "without idempotence each cut stores one extra copy")
        } catch {
            await broker.remove()
            throw error
        }
        #expect(await broker.stop() == 0)
        await broker.remove()
    }
}
