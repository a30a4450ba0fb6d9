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
/// Listening, accepting and closing pairs is `LoopbackProxyListener`'s; blocking sockets on
/// its own threads (never the Swift concurrency pool): two pump threads per connection.
/// Bounded: it serves at most `maxConnections` connections and stops with `stop()`.
public final class StallingProxy: Sendable {
    public var port: Int { listener.port }
    let stallAtServerHeaders: Bool
    private let listener: LoopbackProxyListener
    private let stalled = Mutex(false)

    public init(upstreamPort: Int, stallAtServerHeaders: Bool = false, maxConnections: Int = 256) throws {
        self.stallAtServerHeaders = stallAtServerHeaders
        listener = try LoopbackProxyListener(upstreamPort: upstreamPort, maxConnections: maxConnections)
        listener.start { [self] pair, _ in
            let stalledPair = StalledPair(pair, proxy: self)
            Thread { stalledPair.pump(from: pair.client, to: pair.upstream, watchHeaders: false) }.start()
            Thread { stalledPair.pump(from: pair.upstream, to: pair.client, watchHeaders: self.stallAtServerHeaders) }.start()
        }
    }

    /// Whether forwarding has stopped.
    public var isStalled: Bool { stalled.withLock { $0 } }

    /// Stops forwarding on every connection, now and later; nothing is closed.
    public func stall() {
        stalled.withLock { $0 = true }
    }

    /// Closes the listener and every connection.
    public func stop() { listener.stop() }

    /// Established connections the proxy holds to its upstream (one per client connection).
    public var openConnections: Int { listener.openPairs }
}

/// One client connection and its upstream connection.
private final class StalledPair: Sendable {
    let pair: ProxyPair
    let proxy: StallingProxy
    /// This pair stopped by itself (`stallAtServerHeaders`).
    private let stalled = Mutex(false)

    init(_ pair: ProxyPair, proxy: StallingProxy) {
        self.pair = pair
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
            if proxy.isStalled || stalled.withLock({ $0 }) { continue }
            guard watchHeaders else {
                guard pair.writeAll(destination, chunk[0..<count]) else { break }
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
                guard pair.writeAll(destination, pending[consumed..<(consumed + 9 + length)]) else { return pair.finish() }
                consumed += 9 + length
            }
            pending.removeFirst(consumed)
            if stalled.withLock({ $0 }) { pending.removeAll() }
        }
        pair.finish()
    }
}
