import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the test proxies share (`StallingProxy`, the interop tests' `CuttingProxy`): a
/// socket listening on 127.0.0.1 (port 0), an accept thread that connects each client to
/// the upstream port and hands the pair to the proxy, the descriptors of the pairs still
/// open, and `stop()`. Blocking sockets on threads of its own (never the Swift concurrency
/// pool); at most `maxConnections` pairs are ever accepted.
public final class LoopbackProxyListener: Sendable {
    public let port: Int
    private let upstreamPort: Int
    private let maxConnections: Int
    private let listener: Int32
    private let state = Mutex(State())

    private struct State {
        var stopped = false
        var connections = 0
        var open: Set<Int32> = []
    }

    public init(upstreamPort: Int, maxConnections: Int = 256) throws {
        self.upstreamPort = upstreamPort
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
    }

    /// Starts accepting: `serve` gets each connected pair and its index (from 0), on the
    /// accept thread, and starts the pair's pumps.
    public func start(_ serve: @escaping @Sendable (ProxyPair, Int) -> Void) {
        Thread { [self] in acceptLoop(serve) }.start()
    }

    /// Closes the listener and every open pair.
    public func stop() {
        let open = state.withLock { s -> Set<Int32> in
            s.stopped = true
            return s.open
        }
        shutdown(listener, Int32(SHUT_RDWR))
        for descriptor in open { shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    /// Pairs (client connection and its upstream connection) still open.
    public var openPairs: Int { state.withLock { $0.open.count / 2 } }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop(_ serve: @Sendable (ProxyPair, Int) -> Void) {
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
            let index = state.withLock { s -> Int? in
                guard !s.stopped, connected == 0, s.connections < maxConnections else { return nil }
                s.open.formUnion([client, upstream])
                defer { s.connections += 1 }
                return s.connections
            }
            guard let index else {
                close(client)
                close(upstream)
                continue
            }
            serve(ProxyPair(client: client, upstream: upstream, listener: self), index)
        }
    }

    fileprivate func closed(_ descriptors: [Int32]) {
        state.withLock { s in
            for descriptor in descriptors { s.open.remove(descriptor) }
        }
    }
}

/// One client connection and its upstream connection. Each of its two pumps calls
/// `finish()` as it ends: both sockets are shut down (waking the other pump), and the
/// second to finish closes them.
public final class ProxyPair: Sendable {
    public let client: Int32
    public let upstream: Int32
    private let listener: LoopbackProxyListener
    private let finished = Mutex(0)

    fileprivate init(client: Int32, upstream: Int32, listener: LoopbackProxyListener) {
        self.client = client
        self.upstream = upstream
        self.listener = listener
    }

    /// Writes all of `bytes` to `descriptor`; false once the socket fails.
    public func writeAll(_ descriptor: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    public func finish() {
        shutdown(client, Int32(SHUT_RDWR))
        shutdown(upstream, Int32(SHUT_RDWR))
        let last = finished.withLock { count -> Bool in
            count += 1
            return count == 2
        }
        if last {
            listener.closed([client, upstream])
            close(client)
            close(upstream)
        }
    }
}
