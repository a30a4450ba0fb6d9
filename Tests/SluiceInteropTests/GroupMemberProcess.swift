import Foundation
import SluiceTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A `sluice consume --group` child process whose stdout (one line per processed record,
/// written unbuffered) and stderr (membership events) are files the test reads while it
/// runs. It can be killed, paused and resumed; waiting for its exit suspends.
final class GroupMemberProcess: Sendable {
    let name: String
    let child: SluiceProcess

    init(name: String, broker: BrokerProcess, arguments: [String]) throws {
        self.name = name
        child = try SluiceProcess(["consume", "--broker", broker.brokerArgument] + arguments, in: broker.root, logName: name)
    }

    var process: Process { child.process }

    /// The records printed so far: (partition, offset, value) from the text format.
    var records: [PrintedRecord] {
        // Only whole lines: the last one may be half written.
        child.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 5, let partition = Int(fields[0]), let offset = Int64(fields[1]) else { return nil }
            return PrintedRecord(partition: partition, offset: offset, value: String(fields[4]), member: name)
        }
    }

    var stderr: String { child.stderr }

    /// The member id from its "joined group G as M" lines, the latest.
    var memberId: String? {
        stderr.split(separator: "\n").last { $0.contains("joined group") }.flatMap { $0.split(separator: " ").last.map(String.init) }
    }

    func signal(_ number: Int32) { child.signal(number) }

    /// SIGKILL and wait for the exit.
    func crash() async { await child.crash() }

    /// SIGTERM (the member leaves the group) and wait; the exit status.
    @discardableResult
    func stop() async -> Int32 {
        child.signal(SIGTERM)
        return await child.exitStatus()
    }

    func exitStatus() async -> Int32 { await child.exitStatus() }
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
