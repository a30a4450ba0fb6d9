import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy on 127.0.0.1 that can stop forwarding without closing anything: the client's
/// connection stays established, its writes are accepted and dropped, and nothing comes
/// back, as with a dead network path or a stuck middlebox. Unlike a broker frozen with
/// SIGSTOP, the kernel keeps reading both sockets, so no TCP window ever closes.
///
/// `stall()` stops every connection at once (open ones and later ones). With
/// `stallAtServerHeaders` a connection stops by itself just before the first HTTP/2
/// HEADERS frame from the server (prior-knowledge h2c; frames are a 9-byte header: 24-bit
/// length, type, flags, 31-bit stream id; HEADERS is type 1): SETTINGS get through, so
/// the client connects, and the answer to its first call never arrives.
///
/// Blocking sockets on its own threads (never the Swift concurrency pool): one accept
/// thread and two pump threads per connection. Bounded: it serves at most
/// `maxConnections` connections and stops with `stop()`.
public final class StallingProxy: Sendable {
    public let port: Int
    let upstreamPort: Int
    let stallAtServerHeaders: Bool
    let maxConnections: Int
    private let listener: Int32
    private let state = Mutex(State())

    private struct State {
        var stalled = false
        var stopped = false
        var connections = 0
        var open: Set<Int32> = []
    }

    public init(upstreamPort: Int, stallAtServerHeaders: Bool = false, maxConnections: Int = 256) throws {
        self.upstreamPort = upstreamPort
        self.stallAtServerHeaders = stallAtServerHeaders
        self.maxConnections = maxConnections
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestProcessError("socket failed: errno \(errno)") }
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 64) == 0 else {
            close(descriptor)
            throw TestProcessError("cannot listen on 127.0.0.1: errno \(errno)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        listener = descriptor
        port = Int(UInt16(bigEndian: actual.sin_port))
        Thread { [self] in acceptLoop() }.start()
    }

    /// Whether forwarding has stopped.
    public var isStalled: Bool { state.withLock { $0.stalled } }

    /// Stops forwarding on every connection, now and later; nothing is closed.
    public func stall() {
        state.withLock { $0.stalled = true }
    }

    /// Closes the listener and every connection.
    public func stop() {
        let open = state.withLock { s -> Set<Int32> in
            s.stopped = true
            return s.open
        }
        shutdown(listener, Int32(SHUT_RDWR))
        for descriptor in open { shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    /// Established connections the proxy holds to its upstream (one per client connection).
    public var openConnections: Int { state.withLock { $0.open.count / 2 } }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                close(listener)
                return
            }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: UInt16(upstreamPort))
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            let accepted = state.withLock { s -> Bool in
                guard !s.stopped, connected == 0, s.connections < maxConnections else { return false }
                s.connections += 1
                s.open.formUnion([client, upstream])
                return true
            }
            guard accepted else {
                close(client)
                close(upstream)
                continue
            }
            let pair = StalledPair(client: client, upstream: upstream, proxy: self)
            Thread { pair.pump(from: client, to: upstream, watchHeaders: false) }.start()
            Thread { pair.pump(from: upstream, to: client, watchHeaders: self.stallAtServerHeaders) }.start()
        }
    }

    fileprivate var stalledNow: Bool { state.withLock { $0.stalled } }

    fileprivate func closed(_ descriptors: [Int32]) {
        state.withLock { s in
            for descriptor in descriptors { s.open.remove(descriptor) }
        }
    }
}

/// One client connection and its upstream connection.
private final class StalledPair: Sendable {
    let client: Int32
    let upstream: Int32
    let proxy: StallingProxy
    /// This pair stopped by itself (`stallAtServerHeaders`).
    private let stalled = Mutex(false)
    private let finished = Mutex(0)

    init(client: Int32, upstream: Int32, proxy: StallingProxy) {
        self.client = client
        self.upstream = upstream
        self.proxy = proxy
    }

    /// Copies `source` to `destination` until EOF or an error; once stalled, reads and drops.
    func pump(from source: Int32, to destination: Int32, watchHeaders: Bool) {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var pending: [UInt8] = []
        while true {
            let count = chunk.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            if proxy.stalledNow || stalled.withLock({ $0 }) { continue }
            guard watchHeaders else {
                guard writeAll(destination, chunk[0..<count]) else { break }
                continue
            }
            // Whole frames only, so the stop falls exactly before the first HEADERS.
            pending += chunk[0..<count]
            var consumed = 0
            while pending.count - consumed >= 9 {
                let length = Int(pending[consumed]) << 16 | Int(pending[consumed + 1]) << 8 | Int(pending[consumed + 2])
                guard pending.count - consumed >= 9 + length else { break }
                if pending[consumed + 3] == 1 {
                    stalled.withLock { $0 = true }
                    break
                }
                guard writeAll(destination, pending[consumed..<(consumed + 9 + length)]) else { return finish() }
                consumed += 9 + length
            }
            pending.removeFirst(consumed)
            if stalled.withLock({ $0 }) { pending.removeAll() }
        }
        finish()
    }

    private func writeAll(_ descriptor: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    /// Shuts both sockets down (waking the other pump); the second pump to end closes them.
    private func finish() {
        shutdown(client, Int32(SHUT_RDWR))
        shutdown(upstream, Int32(SHUT_RDWR))
        let last = finished.withLock { count -> Bool in
            count += 1
            return count == 2
        }
        if last {
            proxy.closed([client, upstream])
            close(client)
            close(upstream)
        }
    }
}
