import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A `sluice consume --group` child process whose stdout (one line per processed record,
/// written unbuffered) and stderr (membership events) are files the test reads while it
/// runs. It can be killed, paused and resumed; waiting for its exit suspends.
final class GroupMemberProcess: @unchecked Sendable {
    // @unchecked: set once in init; Process is only signalled and asked for its state.
    let name: String
    let process = Process()
    let stdoutPath: String
    let stderrPath: String
    private let exited: AsyncStream<Int32>

    init(name: String, broker: BrokerProcess, arguments: [String]) throws {
        self.name = name
        stdoutPath = broker.path("\(name).out")
        stderrPath = broker.path("\(name).err")
        guard FileManager.default.createFile(atPath: stdoutPath, contents: nil),
              FileManager.default.createFile(atPath: stderrPath, contents: nil)
        else { throw ServeProcessError("cannot create files for \(name)") }
        process.executableURL = try ServeProcess.executable()
        process.arguments = ["consume", "--broker", broker.brokerArgument] + arguments
        process.standardInput = FileHandle.nullDevice
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

    /// The records printed so far: (partition, offset, value) from the text format.
    var records: [PrintedRecord] {
        let text = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
        // Only whole lines: the last one may be half written.
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 5, let partition = Int(fields[0]), let offset = Int64(fields[1]) else { return nil }
            return PrintedRecord(partition: partition, offset: offset, value: String(fields[4]), member: name)
        }
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The member id from its "joined group G as M" lines, the latest.
    var memberId: String? {
        stderr.split(separator: "\n").last { $0.contains("joined group") }.flatMap { $0.split(separator: " ").last.map(String.init) }
    }

    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// SIGKILL and wait for the exit.
    func crash() async {
        signal(SIGKILL)
        _ = await exitStatus()
    }

    /// SIGTERM (the member leaves the group) and wait; the exit status.
    @discardableResult
    func stop() async -> Int32 {
        signal(SIGTERM)
        return await exitStatus()
    }

    func exitStatus() async -> Int32 {
        for await status in exited { return status }
        return process.terminationStatus
    }
}

struct PrintedRecord: Hashable {
    var partition: Int
    var offset: Int64
    var value: String
    var member: String

    var position: Position { Position(partition: partition, offset: offset) }

    struct Position: Hashable, Comparable {
        var partition: Int
        var offset: Int64
        static func < (lhs: Self, rhs: Self) -> Bool { (lhs.partition, lhs.offset) < (rhs.partition, rhs.offset) }
    }
}
