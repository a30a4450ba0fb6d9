import Foundation
import Synchronization

/// One etcd member started from Debian's `etcd-server` binary for one test, its client URL
/// on `host` (127.0.0.1 unless a test's brokers live in network namespaces and reach it
/// over a bridge) and its peer URL on 127.0.0.1, with ports chosen below the ephemeral range and a data directory of its own: alone
/// (`init(binary:)`) or as one of the members of `EtcdProcess.cluster`. It can be killed
/// and started again on the same ports and data, as a restarted member is.
public final class EtcdProcess {
    /// Where the binary is looked for: $SLUICE_ETCD_BINARY, then the Debian paths.
    public static var binary: String? {
        let candidates = [ProcessInfo.processInfo.environment["SLUICE_ETCD_BINARY"], "/usr/bin/etcd", "/usr/local/bin/etcd"]
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    public let name: String
    /// The address its client URL listens on.
    public let host: String
    public let clientPort: Int
    public let peerPort: Int
    public let directory: URL
    private let binary: String
    private let arguments: [String]
    private var process: Process
    /// Yields the exit status once per start: waiting on it suspends the task instead of
    /// parking a cooperative thread in `waitUntilExit()` (only two of them on a 2-core machine).
    private var exited: AsyncStream<Int32>

    public var logTail: String {
        let text = (try? String(contentsOf: directory.appendingPathComponent("etcd.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(20).joined(separator: "\n")
    }

    /// `host:port` of its client URL.
    public var endpoint: String { "\(host):\(clientPort)" }

    /// A single-member cluster.
    public convenience init(binary: String) async throws {
        let ports = Self.freePorts(2)
        try self.init(
            binary: binary, name: "sluice-test", host: "127.0.0.1", clientPort: ports[0], peerPort: ports[1],
            initialCluster: "sluice-test=http://127.0.0.1:\(ports[1])", token: UUID().uuidString)
    }

    /// `count` members forming one cluster (started together: each waits for a quorum),
    /// clients served on `host`.
    public static func cluster(binary: String, members count: Int, host: String = "127.0.0.1") throws -> [EtcdProcess] {
        let ports = freePorts(2 * count)
        let names = (0..<count).map { "sluice-test-\($0)" }
        let initial = (0..<count).map { "\(names[$0])=http://127.0.0.1:\(ports[2 * $0 + 1])" }.joined(separator: ",")
        let token = UUID().uuidString
        var members: [EtcdProcess] = []
        do {
            for index in 0..<count {
                members.append(try EtcdProcess(
                    binary: binary, name: names[index], host: host, clientPort: ports[2 * index], peerPort: ports[2 * index + 1],
                    initialCluster: initial, token: token))
            }
        } catch {
            for member in members { member.signal(SIGKILL) }
            throw error
        }
        return members
    }

    private init(binary: String, name: String, host: String, clientPort: Int, peerPort: Int, initialCluster: String, token: String) throws {
        self.binary = binary
        self.name = name
        self.host = host
        self.clientPort = clientPort
        self.peerPort = peerPort
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-etcd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let client = "http://\(host):\(clientPort)"
        let peer = "http://127.0.0.1:\(peerPort)"
        arguments = [
            "--name", name,
            "--data-dir", directory.appendingPathComponent("data").path,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", initialCluster, "--initial-cluster-token", token,
        ]
        let logURL = directory.appendingPathComponent("etcd.log")
        guard FileManager.default.createFile(atPath: logURL.path, contents: nil) else {
            throw EtcdStartError("cannot create \(logURL.path)")
        }
        (process, exited) = try Self.launch(binary, arguments, log: logURL)
    }

    private static func launch(_ binary: String, _ arguments: [String], log logURL: URL) throws -> (Process, AsyncStream<Int32>) {
        let log = try FileHandle(forWritingTo: logURL)
        log.seekToEndOfFile()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        let (exited, continuation) = AsyncStream<Int32>.makeStream(bufferingPolicy: .bufferingNewest(1))
        process.terminationHandler = { ended in
            continuation.yield(ended.terminationStatus)
            continuation.finish()
        }
        try process.run()
        return (process, exited)
    }

    public var isRunning: Bool { process.isRunning }

    public func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// SIGKILL, and the exit awaited; the data directory stays for `restart()`.
    public func crash() async {
        signal(SIGKILL)
        for await _ in exited { break }
    }

    /// Starts the member again on the same ports and data (after `crash()`).
    public func restart() throws {
        precondition(!process.isRunning, "restart() follows crash()")
        (process, exited) = try Self.launch(binary, arguments, log: directory.appendingPathComponent("etcd.log"))
    }

    /// SIGTERM, wait for the exit (bounded; SIGKILL after 10 s), remove the data directory.
    public func stop() async {
        defer { try? FileManager.default.removeItem(at: directory) }
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<200 where process.isRunning {
            // Waiting for another process to exit; its termination handler has no timeout.
            try? await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for await _ in exited { break }
    }

    /// `count` distinct ports for etcd, chosen at random below the kernel's ephemeral range
    /// (/proc/sys/net/ipv4/ip_local_port_range), so no bind(0) or outgoing connection of the
    /// parallel test run is handed them. They are not probed by binding them first: a child
    /// another test spawns in that moment (posix_spawn) inherits the probe socket and keeps
    /// the port bound after we close it ("bind: address already in use", seen in full runs).
    /// A deliberate listener on the same port fails the start loudly. No port is handed out
    /// twice in one test run: dozens of members start in parallel, and a random pick among
    /// ~20,000 would otherwise collide in a few runs out of a hundred.
    public static func freePorts(_ count: Int) -> [Int] {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let ephemeralLow = range.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32_768
        let candidates = 10_000..<max(ephemeralLow, 10_000 + count)
        return handedOut.withLock { handedOut in
            var ports: [Int] = []
            while ports.count < count {
                let port = Int.random(in: candidates)
                if handedOut.insert(port).inserted { ports.append(port) }
            }
            return ports
        }
    }

    private static let handedOut = Mutex<Set<Int>>([])
}

public struct EtcdStartError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
