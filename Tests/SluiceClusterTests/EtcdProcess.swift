import Foundation
import NIOCore
import NIOPosix

/// A single-member etcd started from Debian's `etcd-server` binary for one test, on
/// 127.0.0.1 with ports the kernel handed out and a data directory of its own.
final class EtcdProcess {
    /// Where the binary is looked for: $SLUICE_ETCD_BINARY, then the Debian paths.
    static var binary: String? {
        let candidates = [ProcessInfo.processInfo.environment["SLUICE_ETCD_BINARY"], "/usr/bin/etcd", "/usr/local/bin/etcd"]
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    let clientPort: Int
    let peerPort: Int
    let directory: URL
    private let process: Process
    /// Yields the exit status once: waiting on it suspends the task instead of parking a
    /// cooperative thread in `waitUntilExit()` (only two of them on a 2-core machine).
    private let exited = AsyncStream<Int32>.makeStream(bufferingPolicy: .bufferingNewest(1))

    var logTail: String {
        let text = (try? String(contentsOf: directory.appendingPathComponent("etcd.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(20).joined(separator: "\n")
    }

    init(binary: String) async throws {
        let ports = Self.freePorts(2)
        clientPort = ports[0]
        peerPort = ports[1]
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-etcd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let logURL = directory.appendingPathComponent("etcd.log")
        guard FileManager.default.createFile(atPath: logURL.path, contents: nil) else {
            throw EtcdStartError("cannot create \(logURL.path)")
        }
        let log = try FileHandle(forWritingTo: logURL)

        let client = "http://127.0.0.1:\(clientPort)"
        let peer = "http://127.0.0.1:\(peerPort)"
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--name", "sluice-test",
            "--data-dir", directory.appendingPathComponent("data").path,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "sluice-test=\(peer)",
        ]
        process.standardOutput = log
        process.standardError = log
        let continuation = exited.continuation
        process.terminationHandler = { ended in
            continuation.yield(ended.terminationStatus)
            continuation.finish()
        }
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    /// SIGTERM, wait for the exit (bounded; SIGKILL after 10 s), remove the data directory.
    func stop() async {
        defer { try? FileManager.default.removeItem(at: directory) }
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<200 where process.isRunning {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for await _ in exited.stream { break }
    }

    /// `count` distinct ports for etcd, chosen at random below the kernel's ephemeral range
    /// (/proc/sys/net/ipv4/ip_local_port_range), so no bind(0) or outgoing connection of the
    /// parallel test run is handed them. They are not probed by binding them first: a child
    /// another test spawns in that moment (posix_spawn) inherits the probe socket and keeps
    /// the port bound after we close it ("bind: address already in use", seen in full runs).
    /// A deliberate listener on the same port fails the start loudly.
    private static func freePorts(_ count: Int) -> [Int] {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let ephemeralLow = range.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32_768
        let candidates = 10_000..<max(ephemeralLow, 10_000 + count)
        var ports: [Int] = []
        while ports.count < count {
            let port = Int.random(in: candidates)
            if !ports.contains(port) { ports.append(port) }
        }
        return ports
    }
}

struct EtcdStartError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
