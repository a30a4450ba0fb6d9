import Foundation
import Logging
import SluiceTestSupport
import SluiceWire

/// A real `sluice serve --test-services` child process on an ephemeral port, for the Swift
/// client's side of the interop suite (the Python stacks use the same command line).
final class ServeProcess: Sendable {
    let server: SluiceProcess
    let directory: TemporaryDirectory
    let port: Int

    /// Starts the server and waits (bounded) for its "sluice listening on HOST:PORT" line.
    init() async throws {
        directory = TemporaryDirectory("sluice-interop")
        (server, port) = try await SluiceProcess.serve(["--test-services"], directory: directory)
    }

    var process: Process { server.process }

    func connect() async throws -> GRPCClientConnection {
        try await GRPCClientConnection.connect(
            GRPCClientConfiguration(host: "127.0.0.1", port: port), logger: Logger(label: "sluice.test.interop"))
    }

    /// SIGTERM, then waits for the exit (bounded); returns the exit status, or nil if the
    /// process had to be killed.
    @discardableResult
    func stop() async -> Int32? {
        defer { directory.remove() }
        return await server.stop()
    }
}
