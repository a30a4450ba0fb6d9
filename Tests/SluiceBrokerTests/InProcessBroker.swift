import Logging
import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceService
import SluiceStorage
import SluiceTestSupport
import SluiceWire
import Testing

/// A `BrokerServer` on 127.0.0.1 port 0 with its own temporary data directory, and a
/// client connection to it.
struct InProcessBroker {
    let server: BrokerServer
    let connection: GRPCClientConnection
    let directory: TemporaryDirectory
    let port: Int

    static func start(
        testServices: Bool = true, directory: TemporaryDirectory = TemporaryDirectory(),
        configure: (inout BrokerServer.Configuration) -> Void = { _ in }
    ) async throws -> InProcessBroker {
        var configuration = BrokerServer.Configuration(
            dataDirectory: directory.path + "/data", transport: GRPCServerConfiguration(host: "127.0.0.1", port: 0))
        configuration.testServices = testServices
        configuration.transport.shutdownGracePeriod = .seconds(5)
        // Tests run maintenance passes themselves.
        configuration.storage.maintenanceInterval = nil
        configure(&configuration)
        var logger = Logger(label: "broker-test")
        logger.logLevel = .warning
        let server = try BrokerServer(configuration: configuration, logger: logger)
        let address = try await server.start()
        let connection = try await GRPCClientConnection.connect(
            GRPCClientConfiguration(host: "127.0.0.1", port: address.port), logger: logger)
        return InProcessBroker(server: server, connection: connection, directory: directory, port: address.port)
    }

    /// A broker whose partition logs live in a `SimulatedFileSystem` and read `clock`, so a
    /// test moves time for retention and rolling without waiting.
    static func startSimulated(clock: ManualClock) async throws -> InProcessBroker {
        try await start {
            $0.storage.fileSystem = SimulatedFileSystem()
            $0.storage.clock = clock
        }
    }

    var admin: SluiceAdminClient { SluiceAdminClient(connection: connection) }

    /// Stops the server, keeping the data directory.
    func stop() async {
        await connection.close()
        await server.shutdown()
    }

    /// Stops the server and removes the data directory.
    func stopAndRemove() async {
        await stop()
        directory.remove()
    }

    func unary<Request: ProtobufMessage, Response: ProtobufMessage>(
        _ path: String, _ request: Request, timeout: Duration? = .seconds(60)
    ) async throws -> Response {
        try await connection.unary(path: path, request: request, timeout: timeout)
    }
}

/// Runs `body` and expects it to throw a `GRPCStatus` with `code` (and `text` in its message).
func expectStatus<Result>(
    _ code: GRPCStatus.Code, containing text: String = "", sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Result
) async {
    let status = await #expect(throws: GRPCStatus.self, "expected \(code)", sourceLocation: sourceLocation) {
        _ = try await body()
    }
    guard let status else { return }
    #expect(status.code == code, "\(status)", sourceLocation: sourceLocation)
    #expect(text.isEmpty || status.message.contains(text), "\(status)", sourceLocation: sourceLocation)
}

