import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A failure of a test's helper process: not found, did not start, files not writable.
public struct TestProcessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// An executable `swift build` put next to this test bundle (`sluice`, `SluiceCrashWriter`).
public func builtExecutable(_ name: String = "sluice") throws -> URL {
    let bundle = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    let candidate = bundle.deletingLastPathComponent().appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: candidate.path) else {
        throw TestProcessError("no \(name) executable at \(candidate.path); run `swift build` first")
    }
    return candidate
}

/// One `sluice` child process with its stdout and stderr in files the test reads while it
/// runs. Waiting for its exit suspends on the termination handler instead of parking one
/// of the few cooperative threads (two on a 2-core machine) in `waitUntilExit()`.
public final class SluiceProcess: @unchecked Sendable {
    // @unchecked: everything is set in init; Process is only signalled and asked for its
    // state afterwards, which it allows from any thread.
    public let process = Process()
    public let stdoutPath: String
    public let stderrPath: String
    private let exited: AsyncStream<Int32>

    /// Runs `sluice <arguments>` with its output in `<logName>.out` and `.err` in
    /// `directory` (a fresh name when nil) and stdin from `input` (nothing when nil).
    /// `launcher` is a command that execs `sluice` in place (`ip netns exec NAME`), so the
    /// pid signalled is still sluice's.
    public init(
        _ arguments: [String], in directory: URL, logName: String? = nil, input: FileHandle? = nil, launcher: [String] = []
    ) throws {
        let name = logName ?? UUID().uuidString
        stdoutPath = directory.appendingPathComponent("\(name).out").path
        stderrPath = directory.appendingPathComponent("\(name).err").path
        guard FileManager.default.createFile(atPath: stdoutPath, contents: nil),
              FileManager.default.createFile(atPath: stderrPath, contents: nil)
        else { throw TestProcessError("cannot create log files in \(directory.path)") }
        if let command = launcher.first {
            process.executableURL = URL(fileURLWithPath: command)
            process.arguments = launcher.dropFirst() + [try builtExecutable().path] + arguments
        } else {
            process.executableURL = try builtExecutable()
            process.arguments = arguments
        }
        process.standardInput = input ?? FileHandle.nullDevice
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

    public convenience init(_ arguments: [String], directory: TemporaryDirectory) throws {
        try self.init(arguments, in: directory.url)
    }

    /// A test that fails half-way leaves no process behind.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    public var isRunning: Bool { process.isRunning }

    public func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// The exit status, once the process has exited (after the termination handler ran).
    public func exitStatus() async -> Int32 {
        for await status in exited { return status }
        // The stream ended without a status: the waiting task was cancelled (a test's time
        // limit, a cancelled helper). `terminationStatus` traps on a running process, which
        // would take the whole test run down, and the child must not outlive its test: it
        // is killed, and the wait for a SIGKILLed process is short.
        if process.isRunning {
            signal(SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    /// SIGKILL: no shutdown, nothing flushed. Returns once the process is gone.
    public func crash() async {
        signal(SIGKILL)
        _ = await exitStatus()
    }

    /// SIGTERM (SIGCONT first, in case it was stopped), a bounded wait (the 10 s shutdown
    /// grace period plus a margin), then SIGKILL. The exit status, or nil if it had to be
    /// killed.
    @discardableResult
    public func stop() async -> Int32? {
        guard process.isRunning else { return await exitStatus() }
        signal(SIGCONT)
        process.terminate()
        for _ in 0..<400 where process.isRunning {
            // Waiting for another process to exit; its termination handler has no timeout.
            try? await Task.sleep(for: .milliseconds(50))
        }
        guard !process.isRunning else {
            await crash()
            return nil
        }
        return await exitStatus()
    }

    /// Waits (bounded: 600 x 50 ms) for `sluice serve`'s "sluice listening on
    /// HOST:PORT" line; nil if the process exited without printing it.
    public func listeningPort() async throws -> Int? {
        let prefix = "sluice listening on "
        for _ in 0..<600 {
            if let line = stdout.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                return line.split(separator: ":").last.flatMap { Int($0) }
            }
            if !process.isRunning { return nil }
            // Another process prints its port when it is ready; nothing to await.
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// Starts `sluice serve` on `listen` (port 0: one the kernel picks) over
    /// `dataDirectory`, logging warnings, plus `extra`, and waits for its port.
    public static func serve(
        _ extra: [String] = [], dataDirectory: String, listen: String = "127.0.0.1:0",
        logsIn directory: URL, logName: String? = nil
    ) async throws -> (SluiceProcess, port: Int) {
        let server = try SluiceProcess(
            ["serve", "--listen", listen, "--log-level", "warning", "--data-dir", dataDirectory] + extra,
            in: directory, logName: logName)
        guard let port = try await server.listeningPort() else {
            // It failed to start; no graceful shutdown to wait for.
            await server.crash()
            throw TestProcessError("sluice serve did not print its port:\n\(server.stderr)")
        }
        return (server, port)
    }

    /// `serve` with its data in `directory`/data and its logs beside it.
    public static func serve(_ extra: [String] = [], directory: TemporaryDirectory) async throws -> (SluiceProcess, port: Int) {
        try await serve(extra, dataDirectory: directory.path("data"), logsIn: directory.url)
    }

    /// Runs a short `sluice` command to its end.
    public static func run(_ arguments: [String], input: String = "", in directory: URL) async throws -> CommandResult {
        let inputPath = directory.appendingPathComponent("\(UUID().uuidString).in").path
        guard FileManager.default.createFile(atPath: inputPath, contents: Data(input.utf8)) else {
            throw TestProcessError("cannot create files in \(directory.path)")
        }
        let command = try SluiceProcess(arguments, in: directory, input: try FileHandle(forReadingFrom: URL(fileURLWithPath: inputPath)))
        let status = await command.exitStatus()
        return CommandResult(status: status, stdout: command.stdout, stderr: command.stderr)
    }

    public static func run(_ arguments: [String], directory: TemporaryDirectory) async throws -> CommandResult {
        try await run(arguments, in: directory.url)
    }
}

/// One run of the `sluice` command line: exit status, stdout, stderr.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs `sluice <arguments>` with `input` on stdin and waits for it to exit.
public func runSluice(_ arguments: [String], input: String = "", in directory: URL) async throws -> CommandResult {
    try await SluiceProcess.run(arguments, input: input, in: directory)
}

/// A `sluice serve` on an ephemeral port of 127.0.0.1, with its data and logs in a
/// temporary directory of its own.
public final class ServedBroker: Sendable {
    public let server: SluiceProcess
    public let directory: TemporaryDirectory
    public let port: Int

    /// Starts it with `extra` flags and waits (bounded) for its port.
    public init(_ extra: [String] = [], label: String = "sluice-serve") async throws {
        directory = TemporaryDirectory(label)
        (server, port) = try await SluiceProcess.serve(extra, directory: directory)
    }

    /// HOST:PORT, for --broker.
    public var argument: String { "127.0.0.1:\(port)" }

    /// SIGTERM, a bounded wait, then the directory is removed; the exit status, or nil if
    /// the process had to be killed.
    @discardableResult
    public func stop() async -> Int32? {
        defer { directory.remove() }
        return await server.stop()
    }
}
