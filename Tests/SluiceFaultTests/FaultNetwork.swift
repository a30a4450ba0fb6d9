import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The private network a fault test's brokers live on: a bridge in the root namespace with
/// `10.A.B.1/24` (where etcd and the test's clients are), and per broker a network
/// namespace joined to the bridge by a veth pair, the broker at `10.A.B.(10 + id)`.
/// Isolating a broker sets its veth's bridge end down (no packet reaches etcd, the other
/// brokers or the clients); healing sets it up. Everything stays on this machine.
///
/// Names (at most 15 bytes, the kernel's limit) start with "sf", then the creating
/// process's pid in base 36 (5 characters) and one character of a per-process counter: a
/// leftover from a run that crashed is recognised by its dead pid and removed
/// (`removeLeftovers`), and a concurrent run's network (live pid) is never touched.
struct FaultNetwork: Sendable {
    static let ip = "/usr/sbin/ip"
    static let prefix = "sf"

    /// "sf", the pid in base 36, the counter: the start of every name this network made.
    let tag: String
    /// "10.A.B": the bridge is .1, broker N is .(10 + N).
    let subnet: String
    let brokers: [UInt32]
    private static let counter = AtomicCounter()

    var bridge: String { tag + "br" }
    var bridgeAddress: String { subnet + ".1" }
    func namespace(_ broker: UInt32) -> String { tag + "b\(broker)" }
    func hostEnd(_ broker: UInt32) -> String { tag + "h\(broker)" }
    func address(_ broker: UInt32) -> String { subnet + ".\(10 + broker)" }
    /// The command that runs a broker inside its namespace (`ip netns exec` execs in place).
    func launcher(_ broker: UInt32) -> [String] { [Self.ip, "netns", "exec", namespace(broker)] }

    /// Whether this machine lets the test make namespaces (root, `ip` present).
    static var isAvailable: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: ip) }

    /// Makes the bridge and a namespace per broker; on any failure removes what it made.
    init(brokers: [UInt32]) throws {
        Self.removeLeftovers()
        let pid = String(getpid(), radix: 36)
        let serial = String(Self.counter.next() % 36, radix: 36)
        tag = Self.prefix + String(repeating: "0", count: max(0, 5 - pid.count)) + pid + serial
        subnet = try Self.unusedSubnet()
        self.brokers = brokers
        do {
            try Self.run(["link", "add", bridge, "type", "bridge"])
            try Self.run(["addr", "add", bridgeAddress + "/24", "dev", bridge])
            try Self.run(["link", "set", bridge, "up"])
            for broker in brokers {
                let inner = tag + "n\(broker)"
                try Self.run(["netns", "add", namespace(broker)])
                try Self.run(["link", "add", hostEnd(broker), "type", "veth", "peer", "name", inner, "netns", namespace(broker)])
                try Self.run(["link", "set", hostEnd(broker), "master", bridge, "up"])
                try Self.run(["-n", namespace(broker), "addr", "add", address(broker) + "/24", "dev", inner])
                try Self.run(["-n", namespace(broker), "link", "set", inner, "up"])
                try Self.run(["-n", namespace(broker), "link", "set", "lo", "up"])
            }
        } catch {
            remove()
            throw error
        }
    }

    /// Cuts `broker` off from everything: its veth's bridge end goes down.
    func isolate(_ broker: UInt32) throws { try Self.run(["link", "set", hostEnd(broker), "down"]) }

    /// Undoes `isolate`.
    func heal(_ broker: UInt32) throws { try Self.run(["link", "set", hostEnd(broker), "up"]) }

    /// Removes the namespaces, veths and bridge (each at most once; missing ones ignored).
    func remove() {
        for broker in brokers {
            _ = try? Self.run(["link", "del", hostEnd(broker)])
            _ = try? Self.run(["netns", "del", namespace(broker)])
        }
        _ = try? Self.run(["link", "del", bridge])
    }

    /// Namespaces and links of this naming whose creating process is gone.
    static func removeLeftovers() {
        func isLeftover(_ name: String) -> Bool {
            guard name.hasPrefix(prefix), name.count >= prefix.count + 6,
                  let pid = Int32(name.dropFirst(prefix.count).prefix(5), radix: 36)
            else { return false }
            return kill(pid, 0) != 0 && errno == ESRCH
        }
        let namespaces = ((try? run(["netns", "list"])) ?? "").split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
        for name in namespaces where isLeftover(name) { _ = try? run(["netns", "del", name]) }
        // `ip -o link` lines: "N: NAME@PEER: <...". Veths first (their bridge may hold them).
        let links = ((try? run(["-o", "link"])) ?? "").split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: ":")
            guard fields.count > 1 else { return nil }
            return String(fields[1].trimmingCharacters(in: .whitespaces).split(separator: "@").first ?? "")
        }
        for name in links.sorted(by: { $0.hasSuffix("br") ? false : $1.hasSuffix("br") }) where isLeftover(name) {
            _ = try? run(["link", "del", name])
        }
    }

    /// A 10.A.B.0/24 no interface on this machine has an address in (random A in 100...250).
    private static func unusedSubnet() throws -> String {
        let used = try run(["-o", "-4", "addr"])
        for _ in 0..<50 {
            let candidate = "10.\(Int.random(in: 100...250)).\(Int.random(in: 0...255))"
            if !used.contains(" \(candidate).") { return candidate }
        }
        throw FaultNetworkError("no free 10.x.y.0/24 found in 50 tries")
    }

    /// Runs `ip <arguments>`; its stdout, or throws with its stderr.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // `ip` exits in milliseconds; its output is read to the end before the wait.
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let problem = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FaultNetworkError("ip \(arguments.joined(separator: " ")): exit \(process.terminationStatus): \(problem)")
        }
        return text
    }
}

struct FaultNetworkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A process-wide counter (names of networks made one after another stay distinct).
final class AtomicCounter: Sendable {
    private let value = Mutex(0)
    func next() -> Int { value.withLock { $0 += 1; return $0 } }
}
