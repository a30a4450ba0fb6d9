import Foundation
import SluiceClient
import SluiceTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// One `sluice serve --cluster` of a fault test, in its own network namespace, with a data
/// directory that outlives the process: SIGKILLed and restarted, it comes back over the
/// same data, as a crashed broker does. Each start logs to `broker-<id>-<start>.out/.err`
/// in the test's directory.
final class FaultBroker: @unchecked Sendable {
    // @unchecked: `process` and `starts` change only in start(), which a fault test calls
    // from its one task; everything else is fixed in init.
    let id: UInt32
    let host: String
    static let port = 9092
    let dataDirectory: String
    private let logs: URL
    private let flags: [String]
    private let launcher: [String]
    private(set) var process: SluiceProcess?
    private var starts = 0
    /// Set when the test killed or stopped it, cleared when it starts again.
    private var stopped = false

    init(id: UInt32, host: String, launcher: [String], logs: URL, flags: [String]) {
        self.id = id
        self.host = host
        self.launcher = launcher
        self.logs = logs
        self.flags = flags
        dataDirectory = logs.appendingPathComponent("data-\(id)").path
    }

    /// Where clients and the other brokers reach it (its namespace has a port space of its
    /// own, so every broker listens on the same port).
    var address: BrokerAddress { BrokerAddress(host: host, port: Self.port) }
    var isRunning: Bool { process?.isRunning == true }
    var stderr: String { process?.stderr ?? "" }

    /// Starts it (again, after `crash`) and waits (bounded) for its "listening" line.
    func start() async throws {
        precondition(!isRunning, "start() of a running broker")
        starts += 1
        stopped = false
        let arguments = ["serve", "--listen", "\(host):\(Self.port)", "--data-dir", dataDirectory, "--broker-id", "\(id)"] + flags
        let started = try SluiceProcess(arguments, in: logs, logName: "broker-\(id)-\(starts)", launcher: launcher)
        process = started
        guard try await started.listeningPort() != nil else {
            await started.crash()
            throw TestProcessError("broker \(id) did not start: \(Self.why(started))")
        }
    }

    /// SIGKILL, the exit awaited; the data stays.
    func crash() async {
        stopped = true
        await process?.crash()
    }

    /// When the broker is not running though the test never stopped it: its exit and the
    /// first fatal line of its stderr (a trap prints "Fatal error: ..."); nil otherwise.
    var unexpectedExit: String? {
        guard let process, !process.isRunning, !stopped else { return nil }
        return "broker \(id) exited on its own (status \(process.process.terminationStatus)): \(Self.why(process))"
    }

    /// The first fatal line of a broker's stderr (a trap prints "Fatal error: ...", then a
    /// backtrace the report has no room for), or where its stderr is.
    static func why(_ process: SluiceProcess) -> String {
        let fatal = process.stderr.split(separator: "\n").first { $0.contains("Fatal error") || $0.contains("error:") }
        return fatal.map(String.init) ?? "no fatal line; see \(process.stderrPath)"
    }

    func signal(_ number: Int32) { process?.signal(number) }

    /// SIGCONT, SIGTERM, a bounded wait, then SIGKILL.
    func stop() async {
        stopped = true
        await process?.stop()
    }

    /// The directory of `topic`'s `partition` in its data directory
    /// (`<data>/topics/<topic>-<topic id>/<partition>`, `DataDirectory`); nil when absent.
    func partitionDirectory(topic: String, partition: Int) -> String? {
        let topics = dataDirectory + "/topics"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: topics)) ?? []
        guard let name = names.first(where: { $0.hasPrefix(topic + "-") }) else { return nil }
        let path = topics + "/" + name + "/\(partition)"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}
