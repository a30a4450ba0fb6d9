import Foundation
import Logging
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A `sluice serve` child process that can be killed and started again on the same data
/// directory, for the end-to-end tests. Each start listens on a new ephemeral port.
final class BrokerProcess: @unchecked Sendable {
    // @unchecked: the mutable state (server, port) is touched only by the test task that
    // owns this object, one call at a time.
    let root: URL
    let dataDirectory: String
    let extraArguments: [String]
    private(set) var server: SluiceProcess?
    private(set) var port = 0
    private var starts = 0

    init(extraArguments: [String] = []) async throws {
        let directory = TemporaryDirectory("sluice-e2e")
        root = directory.url
        dataDirectory = directory.path("data")
        self.extraArguments = extraArguments
        try await start()
    }

    var process: Process? { server?.process }
    var address: BrokerAddress { BrokerAddress(host: "127.0.0.1", port: port) }
    var brokerArgument: String { "127.0.0.1:\(port)" }

    func path(_ name: String) -> String { root.appendingPathComponent(name).path }

    /// Starts the server and waits (bounded) for its "sluice listening on" line. With
    /// `samePort` it listens where the previous start did, so clients can reconnect.
    /// The n-th start writes serve-n.out and serve-n.err beside the data directory.
    func start(samePort: Bool = false) async throws {
        precondition(server?.isRunning != true, "the broker is already running")
        starts += 1
        let listen = samePort && port != 0 ? "127.0.0.1:\(port)" : "127.0.0.1:0"
        (server, port) = try await SluiceProcess.serve(
            extraArguments, dataDirectory: dataDirectory, listen: listen, logsIn: root, logName: "serve-\(starts)")
    }

    /// SIGKILL: no shutdown, nothing flushed.
    func kill() async {
        await server?.crash()
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop() async -> Int32 {
        guard let server else { return 0 }
        server.signal(SIGTERM)
        return await server.exitStatus()
    }

    /// Stops the process and removes its files.
    func remove() async {
        await stop()
        try? FileManager.default.removeItem(at: root)
    }

    func admin() async throws -> SluiceAdminClient {
        SluiceAdminClient(connection: try await address.connect(logger: Logger(label: "sluice.test.e2e")))
    }
}

/// Runs `body` against a fresh broker; it must exit 0 on SIGTERM afterwards. Its files are
/// removed whatever happened.
func withBroker(_ arguments: [String] = [], _ body: (BrokerProcess) async throws -> Void) async throws {
    let broker = try await BrokerProcess(extraArguments: arguments)
    do {
        try await body(broker)
    } catch {
        await broker.remove()
        throw error
    }
    #expect(await broker.stop() == 0, "sluice serve exits 0 after SIGTERM")
    await broker.remove()
}

extension BrokerProcess {
    func createTopic(_ name: String, partitions: UInt32, configs: [String: String] = [:]) async throws {
        let admin = try await admin()
        _ = try await admin.createTopic(CreateTopicRequest(name: name, partitions: partitions, configs: configs))
        await admin.close()
    }
}

/// Reads exactly `count` records (bounded by the consumer's own failure modes and the
/// test's time limit).
func read(_ consumer: Consumer, count: Int) async throws -> [ConsumerRecord] {
    var records: [ConsumerRecord] = []
    guard count > 0 else { return records }
    for try await record in consumer {
        records.append(record)
        if records.count == count { break }
    }
    return records
}
