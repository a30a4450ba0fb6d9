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
/// Listening, accepting and closing pairs is `LoopbackProxyListener`'s; blocking sockets
/// on its own threads (never the Swift concurrency pool): two pump threads per connection.
final class CuttingProxy: Sendable {
    var port: Int { listener.port }
    let maxCuts: Int
    private let listener: LoopbackProxyListener
    private let cutsMade = Mutex(0)

    /// Cuts made so far.
    var cuts: Int { cutsMade.withLock { $0 } }

    init(upstreamPort: Int, maxCuts: Int) throws {
        self.maxCuts = maxCuts
        listener = try LoopbackProxyListener(upstreamPort: upstreamPort)
        listener.start { [self] pair, index in
            let connection = ProxiedConnection(pair, answersBeforeCut: index % 3, proxy: self)
            Thread { connection.pumpClientToServer() }.start()
            Thread { connection.pumpServerToClient() }.start()
        }
    }

    /// Stops accepting and closes every connection.
    func stop() { listener.stop() }

    /// Whether this connection may cut now (the budget is not spent); counts the cut.
    fileprivate func takeCut() -> Bool {
        cutsMade.withLock { cuts in
            guard cuts < maxCuts else { return false }
            cuts += 1
            return true
        }
    }
}

/// One client connection and its upstream connection.
private final class ProxiedConnection: Sendable {
    let pair: ProxyPair
    let answersBeforeCut: Int
    let proxy: CuttingProxy
    private let streams = Mutex(Streams())

    struct Streams {
        /// Streams the client sent DATA on and has not half-closed.
        var producing: Set<UInt32> = []
        var halfClosed: Set<UInt32> = []
        var answers = 0
    }

    static let preface = 24
    static let frameHeader = 9

    init(_ pair: ProxyPair, answersBeforeCut: Int, proxy: CuttingProxy) {
        self.pair = pair
        self.answersBeforeCut = answersBeforeCut
        self.proxy = proxy
    }

    func pumpClientToServer() {
        var pending: [UInt8] = []
        var prefaceLeft = Self.preface
        pump(from: pair.client, to: pair.upstream, pending: &pending) { buffer in
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
        pump(from: pair.upstream, to: pair.client, pending: &pending) { buffer in
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
                    guard pair.writeAll(destination, pending[consumed..<(consumed + length)]) else { break reading }
                    consumed += length
                    continue
                }
                break
            }
            pending.removeFirst(consumed)
        }
        pair.finish()
    }
}
