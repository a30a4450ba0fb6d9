import Foundation
import SluiceTestSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy between a gRPC client and a broker that cuts connections at the worst
/// moment for a producer: when a Produce answer has left the broker (so the batch is
/// appended) but before it reaches the client (so the client must retry it).
///
/// It reads HTTP/2 frames in both directions (prior-knowledge h2c: the client's 24-byte
/// preface, then 9-byte frame headers: 24-bit length, type, flags, 31-bit stream id).
/// A stream counts as a produce stream once the client has sent DATA on it without
/// END_STREAM: a unary call or a subscription half-closes with its request, a Produce
/// stream stays open. Each server DATA frame on such a stream is a produce answer. On
/// its `n`-th connection (from 0) the proxy forwards `n % 3` answers and cuts at the
/// next, until it has cut `maxCuts` times; after that it forwards everything.
///
/// Blocking sockets on its own threads (never the Swift concurrency pool): one accept
/// thread and two pump threads per connection.
final class CuttingProxy: Sendable {
    let port: Int
    let maxCuts: Int
    private let upstreamPort: Int
    private let listener: Int32
    private let state = Mutex(State())

    private struct State {
        var cuts = 0
        var connections = 0
        var stopped = false
        var openDescriptors: Set<Int32> = []
    }

    /// Cuts made so far.
    var cuts: Int { state.withLock { $0.cuts } }

    init(upstreamPort: Int, maxCuts: Int) throws {
        self.upstreamPort = upstreamPort
        self.maxCuts = maxCuts
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
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Stops accepting and closes every connection.
    func stop() {
        let open = state.withLock { s -> Set<Int32> in
            s.stopped = true
            return s.openDescriptors
        }
        shutdown(listener, Int32(SHUT_RDWR))
        for descriptor in open { shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

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
            let index = state.withLock { s -> Int? in
                guard !s.stopped, connected == 0 else { return nil }
                s.openDescriptors.formUnion([client, upstream])
                defer { s.connections += 1 }
                return s.connections
            }
            guard let index else {
                close(client)
                close(upstream)
                continue
            }
            let connection = ProxiedConnection(client: client, upstream: upstream, answersBeforeCut: index % 3, proxy: self)
            Thread { connection.pumpClientToServer() }.start()
            Thread { connection.pumpServerToClient() }.start()
        }
    }

    /// Whether this connection may cut now (the budget is not spent); counts the cut.
    fileprivate func takeCut() -> Bool {
        state.withLock { s in
            guard s.cuts < maxCuts else { return false }
            s.cuts += 1
            return true
        }
    }

    fileprivate func closed(_ descriptors: [Int32]) {
        state.withLock { s in
            for descriptor in descriptors { s.openDescriptors.remove(descriptor) }
        }
    }
}

/// One client connection and its upstream connection.
private final class ProxiedConnection: Sendable {
    let client: Int32
    let upstream: Int32
    let answersBeforeCut: Int
    let proxy: CuttingProxy
    private let streams = Mutex(Streams())

    struct Streams {
        /// Streams the client sent DATA on and has not half-closed.
        var producing: Set<UInt32> = []
        var halfClosed: Set<UInt32> = []
        var answers = 0
        var finished = 0
    }

    static let preface = 24
    static let frameHeader = 9

    init(client: Int32, upstream: Int32, answersBeforeCut: Int, proxy: CuttingProxy) {
        self.client = client
        self.upstream = upstream
        self.answersBeforeCut = answersBeforeCut
        self.proxy = proxy
    }

    func pumpClientToServer() {
        var pending: [UInt8] = []
        var prefaceLeft = Self.preface
        pump(from: client, to: upstream, pending: &pending) { buffer in
            if prefaceLeft > 0 {
                let skip = min(prefaceLeft, buffer.count)
                prefaceLeft -= skip
                return .forward(skip)
            }
            guard let frame = Self.frame(in: buffer) else { return .needMore }
            streams.withLock { s in
                let endStream = frame.flags & 0x1 != 0
                if (frame.type == 0 || frame.type == 1) && endStream {
                    s.halfClosed.insert(frame.stream)
                    s.producing.remove(frame.stream)
                } else if frame.type == 0 && frame.length > 0 && !s.halfClosed.contains(frame.stream) {
                    s.producing.insert(frame.stream)
                }
            }
            return .forward(Self.frameHeader + frame.length)
        }
    }

    func pumpServerToClient() {
        var pending: [UInt8] = []
        pump(from: upstream, to: client, pending: &pending) { buffer in
            guard let frame = Self.frame(in: buffer) else { return .needMore }
            let isAnswer = frame.type == 0 && frame.length > 0 && streams.withLock { s in
                guard s.producing.contains(frame.stream) else { return false }
                s.answers += 1
                return s.answers > answersBeforeCut
            }
            if isAnswer && proxy.takeCut() { return .cut }
            return .forward(Self.frameHeader + frame.length)
        }
    }

    enum Step {
        case forward(Int)
        case needMore
        case cut
    }

    struct Frame {
        var length: Int
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
    }

    /// The frame at the start of `buffer` if it is complete.
    static func frame(in buffer: ArraySlice<UInt8>) -> Frame? {
        guard buffer.count >= frameHeader else { return nil }
        let start = buffer.startIndex
        let length = Int(buffer[start]) << 16 | Int(buffer[start + 1]) << 8 | Int(buffer[start + 2])
        guard buffer.count >= frameHeader + length else { return nil }
        let stream = (UInt32(buffer[start + 5]) << 24 | UInt32(buffer[start + 6]) << 16
            | UInt32(buffer[start + 7]) << 8 | UInt32(buffer[start + 8])) & 0x7fff_ffff
        return Frame(length: length, type: buffer[start + 3], flags: buffer[start + 4], stream: stream)
    }

    /// Reads from `source`, lets `decide` walk the bytes, writes what it forwards to
    /// `destination`; ends (closing both sides) at EOF, an error or a cut.
    private func pump(
        from source: Int32, to destination: Int32, pending: inout [UInt8], decide: (ArraySlice<UInt8>) -> Step
    ) {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        reading: while true {
            let count = chunk.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            pending += chunk[0..<count]
            var consumed = 0
            while consumed < pending.count {
                switch decide(pending[consumed...]) {
                case .needMore:
                    break
                case .cut:
                    break reading
                case .forward(let length):
                    guard writeAll(destination, pending[consumed..<(consumed + length)]) else { break reading }
                    consumed += length
                    continue
                }
                break
            }
            pending.removeFirst(consumed)
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
        let last = streams.withLock { s -> Bool in
            s.finished += 1
            return s.finished == 2
        }
        if last {
            proxy.closed([client, upstream])
            close(client)
            close(upstream)
        }
    }
}
