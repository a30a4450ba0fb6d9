import Foundation
import Logging
import SluiceWire

/// A real `sluice serve --test-services` child process on an ephemeral port, for the Swift
/// client's side of the interop suite (the Python stacks use the same command line).
final class ServeProcess: @unchecked Sendable {
    // @unchecked: `process` and the paths are set once in init; Process itself is only
    // asked for its state and signalled, which it allows from any thread.
    let process = Process()
    let directory: URL
    let port: Int
    private let stdoutPath: String
    /// Yields the exit status once: waiting on it suspends the task instead of parking a
    /// cooperative thread in `waitUntilExit()` (only two of them on a 2-core machine).
    private let exited: AsyncStream<Int32>

    /// The `sluice` executable that `swift build` put next to this test bundle.
    static func executable() throws -> URL {
        let bundle = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let candidate = bundle.deletingLastPathComponent().appendingPathComponent("sluice")
        guard FileManager.default.isExecutableFile(atPath: candidate.path) else {
            throw ServeProcessError("no sluice executable at \(candidate.path); run `swift build` first")
        }
        return candidate
    }

    /// Starts the server and waits (bounded) for its "sluice listening on HOST:PORT" line.
    init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-interop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        stdoutPath = directory.appendingPathComponent("stdout").path
        let stderrPath = directory.appendingPathComponent("stderr").path
        guard FileManager.default.createFile(atPath: stdoutPath, contents: nil),
            FileManager.default.createFile(atPath: stderrPath, contents: nil)
        else { throw ServeProcessError("cannot create log files in \(directory.path)") }
        process.executableURL = try Self.executable()
        process.arguments = [
            "serve", "--test-services", "--listen", "127.0.0.1:0", "--log-level", "warning",
            "--data-dir", directory.appendingPathComponent("data").path,
        ]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        let (exited, continuation) = AsyncStream<Int32>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.exited = exited
        process.terminationHandler = { ended in
            continuation.yield(ended.terminationStatus)
            continuation.finish()
        }
        try process.run()

        let found = try await listeningPort(printedTo: stdoutPath, by: process)
        guard let found else {
            // It failed to start; no graceful shutdown to wait for.
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            for await _ in exited { break }
            let errors = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            throw ServeProcessError("sluice serve did not print its port:\n\(errors)")
        }
        port = found
    }

    func connect() async throws -> GRPCClientConnection {
        try await GRPCClientConnection.connect(
            GRPCClientConfiguration(host: "127.0.0.1", port: port), logger: Logger(label: "sluice.test.interop"))
    }

    /// SIGTERM, then waits for the exit (bounded: the 10 s shutdown grace period plus a
    /// margin); returns the exit status, or nil if the process had to be killed.
    @discardableResult
    func stop() async -> Int32? {
        defer { try? FileManager.default.removeItem(at: directory) }
        guard process.isRunning else { return process.terminationStatus }
        process.terminate()
        for _ in 0..<400 where process.isRunning {
            try? await Task.sleep(for: .milliseconds(50))
        }
        guard !process.isRunning else {
            kill(process.processIdentifier, SIGKILL)
            _ = await exitStatus()
            return nil
        }
        return await exitStatus()
    }

    /// The exit status, once the process has exited (after the termination handler ran).
    private func exitStatus() async -> Int32 {
        for await status in exited { return status }
        return process.terminationStatus
    }
}

/// Waits (bounded: 600 x 50 ms) for `sluice serve`'s "sluice listening on 127.0.0.1:PORT"
/// line in its stdout file; nil if the process exited without printing it.
func listeningPort(printedTo stdoutPath: String, by process: Process) async throws -> Int? {
    let prefix = "sluice listening on 127.0.0.1:"
    for _ in 0..<600 {
        let text = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
        if let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
            return Int(line.dropFirst(prefix.count))
        }
        if !process.isRunning { return nil }
        // Waiting for another process to print its port.
        try await Task.sleep(for: .milliseconds(50))
    }
    return nil
}

struct ServeProcessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

