import Foundation
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import Testing

/// The `sluice` command line against a real `sluice serve`: an offline partition is
/// shown and refused with its reason, never read as empty.
@Suite("Offline partitions through the CLI", .serialized, .timeLimit(.minutes(5)))
struct OfflinePartitionProcessTests {
    @Test("describe shows an offline partition with its reason; consume exits 1 with it; the other partition reads")
    func offlinePartitionThroughTheCommandLine() async throws {
        let broker = try await BrokerProcess()
        defer { Task { await broker.remove() } }
        let server = ["--broker", broker.brokerArgument]
        let created = try await runSluice(["topic", "create", "orders", "--partitions", "2"] + server, in: broker.root)
        #expect(created.status == 0, "\(created.stderr)")
        for partition in ["0", "1"] {
            let produced = try await runSluice(
                ["produce", "--topic", "orders", "--partition", partition] + server, input: "r\(partition)a\nr\(partition)b\n",
                in: broker.root)
            #expect(produced.status == 0, "\(produced.stderr)")
        }
        let topicID = try await broker.admin().describeTopic(named: "orders").topicId
        #expect(await broker.stop() == 0)

        // A clean shutdown, then partition 1's checkpoint is damaged.
        let checkpoint = "\(broker.dataDirectory)/topics/orders-\(topicID)/1/checkpoint"
        try Data(repeating: 0x5A, count: 28).write(to: URL(fileURLWithPath: checkpoint))
        try await broker.start()
        let again = ["--broker", broker.brokerArgument]

        let described = try await runSluice(["topic", "describe", "orders"] + again, in: broker.root)
        #expect(described.status == 0, "\(described.stderr)")
        let partitionLine = described.stdout.split(separator: "\n").first { $0.hasPrefix("  1  ") }.map(String.init) ?? ""
        #expect(partitionLine.contains("OFFLINE: corrupt checkpoint"), "\(described.stdout)")

        let consumed = try await runSluice(["consume", "--topic", "orders", "--from", "earliest"] + again, in: broker.root)
        #expect(consumed.status == 1, "\(consumed.stdout)\(consumed.stderr)")
        #expect(consumed.stderr.contains("partition 1 of topic orders is offline: corrupt checkpoint"), "\(consumed.stderr)")

        let named = try await runSluice(["consume", "--topic", "orders", "--partition", "1"] + again, in: broker.root)
        #expect(named.status == 1)
        #expect(named.stderr.contains("corrupt checkpoint"), "\(named.stderr)")

        let healthy = try await runSluice(["consume", "--topic", "orders", "--partition", "0"] + again, in: broker.root)
        #expect(healthy.status == 0, "\(healthy.stderr)")
        #expect(healthy.stdout.split(separator: "\n").map { $0.split(separator: "\t").last.map(String.init) } == ["r0a", "r0b"])
    }
}
