import Foundation
import Logging
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Testing

/// The real process, killed with SIGKILL and its logs cut back to what was fdatasynced
/// (`sluice serve --test-sync-journal` + `sluice debug cut-to-synced`): what a power
/// cut at that moment would have left. Everything answered ACKS_DURABLE must survive.
@Suite(.timeLimit(.minutes(2))) struct KillAndCutTests {
    @Test func acknowledgedDurableBatchesSurviveSIGKILLAndTheCut() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let journal = directory.path + "/sync-journal"
        // fsync never: only ACKS_DURABLE (and rolls) sync, so the unsynced tail is real.
        let (server, port) = try await SluiceProcess.serve(
            ["--fsync", "never", "--test-sync-journal", journal], directory: directory)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let connection = try await GRPCClientConnection.connect(GRPCClientConfiguration(host: "127.0.0.1", port: port), logger: logger)
        let admin = SluiceAdminClient(connection: connection)
        _ = try await admin.createTopic(CreateTopicRequest(name: "k", partitions: 2))

        var producer = try await ProduceStream(connection)
        var durable: [UInt32: [(offset: Int64, value: String)]] = [:]
        for index in 0..<60 {
            let partition = UInt32(index % 2)
            let acks: Acks = index % 3 == 2 ? .leader : .durable
            let value = "value-\(index)-" + String(repeating: "p", count: 40)
            let answer = try await producer.produce("k", partition: partition, acks: acks, TestBatches.batch([value]))
            #expect(answer.error == .none)
            if acks == .durable { durable[partition, default: []].append((answer.baseOffset, value)) }
        }
        // A leader-only tail on partition 0 that no sync covers.
        for index in 0..<5 {
            let answer = try await producer.produce("k", partition: 0, acks: .leader, TestBatches.batch(["tail-\(index)"]))
            #expect(answer.error == .none)
        }
        await connection.close()
        kill(server.process.processIdentifier, SIGKILL)
        _ = await server.exitStatus()

        let cut = try await SluiceProcess.run(
            ["debug", "cut-to-synced", "--data-dir", directory.path + "/data", "--journal", journal], directory: directory)
        #expect(cut.status == 0, "\(cut.stderr)")
        let dropped = cut.stdout.split(separator: " ").dropLast().last.flatMap { Int($0) } ?? 0
        #expect(dropped > 0, "\(cut.stdout)")

        let (restarted, newPort) = try await SluiceProcess.serve(directory: directory)
        let again = try await GRPCClientConnection.connect(GRPCClientConfiguration(host: "127.0.0.1", port: newPort), logger: logger)
        let described = try await SluiceAdminClient(connection: again).describeTopic(named: "k")
        for partition in UInt32(0)..<2 {
            let expected = durable[partition] ?? []
            let end = described.partitions[Int(partition)].logEndOffset
            let lastDurable = expected.last?.offset ?? -1
            #expect(end >= lastDurable + 1)
            if partition == 0 {
                // The unsynced tail (after the last durable answer, no roll, fsync
                // never) is gone: the cut really cut.
                #expect(end < 35)
            }
            var subscriber = try await SubscribeStream(
                again, SubscribeRequest(topic: "k", partitions: [.init(partition: partition, start: .earliest)]))
            let records = try await subscriber.records(Int(end), partition: partition)
            let byOffset = Dictionary(records.map { ($0.offset, $0.value) }, uniquingKeysWith: { first, _ in first })
            for entry in expected {
                #expect(byOffset[entry.offset] == entry.value, "partition \(partition) offset \(entry.offset)")
            }
            subscriber.call.cancel()
        }
        await again.close()
        restarted.process.terminate()
        #expect(await restarted.exitStatus() == 0)
    }
}
