import Foundation
import Logging
import SluiceClient
import SluiceWire

#if canImport(Glibc)
import Glibc
#endif

/// A `sluice serve` child process that can be killed and started again on the same data
/// directory, for the end-to-end tests. Each start listens on a new ephemeral port.
/// Waiting for an exit suspends (terminationHandler) rather than blocking a thread: with
/// two cooperative threads on this machine, two blocked waits would stall every test.
final class BrokerProcess: @unchecked Sendable {
    // @unchecked: the mutable state (process, port) is touched only by the test task that
    // owns this object, one call at a time.
    let root: URL
    let dataDirectory: String
    let extraArguments: [String]
    private(set) var process: Process?
    private var exit: AsyncStream<Int32>?
    private(set) var port = 0
    private var starts = 0

    init(extraArguments: [String] = []) async throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        dataDirectory = root.appendingPathComponent("data").path
        self.extraArguments = extraArguments
        try await start()
    }

    var address: BrokerAddress { BrokerAddress(host: "127.0.0.1", port: port) }
    var brokerArgument: String { "127.0.0.1:\(port)" }

    func path(_ name: String) -> String { root.appendingPathComponent(name).path }

    /// Starts the server and waits (bounded) for its "sluice listening on" line. With
    /// `samePort` it listens where the previous start did, so clients can reconnect.
    func start(samePort: Bool = false) async throws {
        precondition(process?.isRunning != true, "the broker is already running")
        starts += 1
        let stdoutPath = path("stdout-\(starts)")
        let stderrPath = path("stderr-\(starts)")
        guard FileManager.default.createFile(atPath: stdoutPath, contents: nil),
              FileManager.default.createFile(atPath: stderrPath, contents: nil)
        else { throw ServeProcessError("cannot create log files in \(root.path)") }
        let process = Process()
        process.executableURL = try ServeProcess.executable()
        let listen = samePort && port != 0 ? "127.0.0.1:\(port)" : "127.0.0.1:0"
        process.arguments = ["serve", "--listen", listen, "--log-level", "warning", "--data-dir", dataDirectory] + extraArguments
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        let (exit, exited) = AsyncStream<Int32>.makeStream(bufferingPolicy: .bufferingNewest(1))
        process.terminationHandler = { ended in
            exited.yield(ended.terminationStatus)
            exited.finish()
        }
        try process.run()
        self.process = process
        self.exit = exit
        let found = try await listeningPort(printedTo: stdoutPath, by: process)
        guard let found else {
            await stop()
            let errors = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            throw ServeProcessError("sluice serve did not print its port:\n\(errors)")
        }
        port = found
    }

    /// SIGKILL: no shutdown, nothing flushed.
    func kill() async {
        guard let process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        _ = await waitForExit()
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop() async -> Int32 {
        guard let process else { return 0 }
        if process.isRunning { process.terminate() }
        return await waitForExit()
    }

    private func waitForExit() async -> Int32 {
        if let exit {
            for await status in exit {
                self.exit = nil
                return status
            }
        }
        return process?.terminationStatus ?? 0
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

/// One run of the `sluice` command line: exit status, stdout, stderr.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `sluice <arguments>` with `input` on stdin and waits for it to exit.
func runSluice(_ arguments: [String], input: String = "", in directory: URL) async throws -> CommandResult {
    let name = UUID().uuidString
    let inputPath = directory.appendingPathComponent("\(name).in").path
    let outputPath = directory.appendingPathComponent("\(name).out").path
    let errorPath = directory.appendingPathComponent("\(name).err").path
    guard FileManager.default.createFile(atPath: inputPath, contents: Data(input.utf8)),
          FileManager.default.createFile(atPath: outputPath, contents: nil),
          FileManager.default.createFile(atPath: errorPath, contents: nil)
    else { throw ServeProcessError("cannot create files in \(directory.path)") }
    let process = Process()
    process.executableURL = try ServeProcess.executable()
    process.arguments = arguments
    process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: inputPath))
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
        do {
            try process.run()
        } catch {
            process.terminationHandler = nil
            continuation.resume(throwing: error)
        }
    }
    return CommandResult(
        status: status,
        stdout: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "")
}
