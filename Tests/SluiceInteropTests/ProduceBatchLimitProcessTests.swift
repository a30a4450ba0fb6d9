import Foundation
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import Testing

/// `sluice produce` against a real `sluice serve` fits its batches to the topic's
/// `max.message.bytes` and `segment.bytes` without `--batch-bytes`.
@Suite("sluice produce and topic batch limits", .serialized, .timeLimit(.minutes(5)))
struct ProduceBatchLimitProcessTests {
    @Test("sluice produce fits its batches to max.message.bytes and segment.bytes by itself", arguments: [
        "max.message.bytes=10000", "segment.bytes=16384",
    ])
    func producerFitsTheTopic(setting: String) async throws {
        let broker = try await BrokerProcess()
        defer { Task { await broker.remove() } }
        let server = ["--broker", broker.brokerArgument]
        let created = try await runSluice(
            ["topic", "create", "small", "--partitions", "1", "--config", setting] + server, in: broker.root)
        #expect(created.status == 0, "\(created.stderr)")
        // 400 lines of about 100 bytes: 40 KB, well past either limit, all read at once.
        let lines = (0..<400).map { "\($0) " + String(repeating: "x", count: 96) }
        let produced = try await runSluice(
            ["produce", "--topic", "small", "--linger-ms", "1000"] + server, input: lines.joined(separator: "\n") + "\n",
            in: broker.root)
        #expect(produced.status == 0, "\(produced.stderr)")
        #expect(produced.stderr.contains("produced 400 records to small: partition 0 offsets 0-399"), "\(produced.stderr)")
    }
}
