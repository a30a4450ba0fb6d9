import Logging
import SluiceTestSupport
import SluiceWire

extension ServedBroker {
    /// A real `sluice serve --test-services`, for the Swift client's side of the interop
    /// suite (the Python stacks use the same command line).
    static func withTestServices() async throws -> ServedBroker {
        try await ServedBroker(["--test-services"], label: "sluice-interop")
    }

    func connect() async throws -> GRPCClientConnection {
        try await GRPCClientConnection.connect(
            GRPCClientConfiguration(host: "127.0.0.1", port: port), logger: Logger(label: "sluice.test.interop"))
    }
}
