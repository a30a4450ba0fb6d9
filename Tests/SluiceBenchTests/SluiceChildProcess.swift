import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One `sluice` child process (the binary `swift build` put next to this test bundle) with
/// its stdout and stderr in files. Waiting for its exit suspends on the termination handler
/// instead of blocking one of the few cooperative threads.
final class SluiceChildProcess: @unchecked Sendable {
    // @unchecked: everything is set in init; Process is only signalled and asked for its
    // state afterwards, which it allows from any thread.
    let process = Process()
    let directory: URL
    let stdoutPath: String
    let stderrPath: String
    private let exited: AsyncStream<Int32>

    static func executable() throws -> URL {
        let bundle = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let candidate = bundle.deletingLastPathComponent().appendingPathComponent("sluice")
        guard FileManager.default.isExecutableFile(atPath: candidate.path) else {
            throw ChildProcessError("no sluice executable at \(candidate.path); run `swift build` first")
        }
        return candidate
    }

    init(_ arguments: [String], in directory: URL) throws {
        self.directory = directory
        let name = UUID().uuidString
        stdoutPath = directory.appendingPathComponent("\(name).out").path
        stderrPath = directory.appendingPathComponent("\(name).err").path
        guard FileManager.default.createFile(atPath: stdoutPath, contents: nil),
              FileManager.default.createFile(atPath: stderrPath, contents: nil)
        else { throw ChildProcessError("cannot create log files in \(directory.path)") }
        process.executableURL = try Self.executable()
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        let (exited, continuation) = AsyncStream<Int32>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.exited = exited
        process.terminationHandler = { ended in
            continuation.yield(ended.terminationStatus)
            continuation.finish()
        }
        try process.run()
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// The exit status, once the process has exited.
    func exitStatus() async -> Int32 {
        for await status in exited { return status }
        return process.terminationStatus
    }

    /// SIGTERM (SIGCONT first, in case it was stopped), a bounded wait, then SIGKILL.
    func stop() async {
        guard process.isRunning else { return }
        signal(SIGCONT)
        process.terminate()
        for _ in 0..<400 where process.isRunning {
            try? await Task.sleep(for: .milliseconds(50))
        }
        signal(SIGKILL)
        _ = await exitStatus()
    }
}

/// A `sluice serve` on an ephemeral port of 127.0.0.1, in a temporary directory.
final class BenchBroker: Sendable {
    let child: SluiceChildProcess
    let directory: URL
    let port: Int

    init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-bench-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        child = try SluiceChildProcess(
            ["serve", "--listen", "127.0.0.1:0", "--log-level", "warning", "--fsync", "never",
             "--data-dir", directory.appendingPathComponent("data").path],
            in: directory)
        let prefix = "sluice listening on 127.0.0.1:"
        var found: Int?
        for _ in 0..<600 where found == nil {
            if let line = child.stdout.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                found = Int(line.dropFirst(prefix.count))
            } else if !child.process.isRunning {
                break
            } else {
                // Waiting for another process to print its port.
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        guard let found else {
            await child.stop()
            throw ChildProcessError("sluice serve did not print its port:\n\(child.stderr)")
        }
        port = found
    }

    var argument: String { "127.0.0.1:\(port)" }

    func remove() async {
        await child.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

struct ChildProcessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
