import Foundation
import SluiceTestSupport

/// A `sluice serve` on an ephemeral port of 127.0.0.1, in a temporary directory.
final class BenchBroker: Sendable {
    let child: SluiceProcess
    let directory: TemporaryDirectory
    let port: Int

    init() async throws {
        directory = TemporaryDirectory("sluice-bench-test")
        (child, port) = try await SluiceProcess.serve(["--fsync", "never"], directory: directory)
    }

    var argument: String { "127.0.0.1:\(port)" }

    func remove() async {
        await child.stop()
        directory.remove()
    }
}
