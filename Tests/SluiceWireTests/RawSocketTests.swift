import NIOCore
import NIOPosix
import Testing
@testable import SluiceWire

/// A plain TCP client that writes raw bytes and collects whatever comes back until the
/// server closes the connection.
final class RawCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private var received = ByteBuffer()
    let closed: EventLoopPromise<ByteBuffer>

    init(eventLoop: any EventLoop) { closed = eventLoop.makePromise() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed.succeed(received)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Connects, sends `bytes`, and returns what the server sent before it closed the connection.
func rawExchange(port: Int, bytes: [UInt8]) async throws -> ByteBuffer {
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    let collector = RawCollector(eventLoop: loop)
    let channel = try await ClientBootstrap(group: loop)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
        }
        .connect(host: "127.0.0.1", port: port).get()
    if !bytes.isEmpty {
        // The server may already have closed (that is what several tests wait for).
        try? await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }
    return try await collector.closed.futureResult.get()
}

@Suite(.timeLimit(.minutes(2))) struct RawSocketTests {
    static let echo = GRPCMethod.unary("/test.Raw/Echo") { request, _ in request }

    @Test func garbageClosesOnlyThatConnection() async throws {
        let release = Signal()
        let started = Signal()
        let slow = GRPCMethod.unary("/test.Raw/Slow") { request, _ in
            await started.fire()
            await release.wait()
            return request
        }
        try await withServerAndClient([Self.echo, slow]) { server, client in
            // A call in flight on a healthy connection...
            let inFlight = Task { try await client.unary(path: "/test.Raw/Slow", request: buffer("still here")) }
            await started.wait()
            // ...is untouched while garbage gets another connection closed.
            let port = server.boundPortForTests
            var garbage = [UInt8](repeating: 0, count: 64)
            for index in garbage.indices { garbage[index] = UInt8(truncatingIfNeeded: index &* 37 &+ 11) }
            _ = try await rawExchange(port: port, bytes: garbage)
            // A valid preface followed by a garbage frame is a connection error too.
            let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
            let badFrame: [UInt8] = [0, 0, 8, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 0xEE, count: 8)
            let frames: [UInt8] = [0, 0, 4, 0x1, 0x4, 0, 0, 0, 2] + [0xFF, 0xFF, 0xFF, 0xFF]  // HEADERS on an even id
            _ = try await rawExchange(port: port, bytes: preface + frames + badFrame)
            await release.fire()
            #expect(string(try await inFlight.value) == "still here")
            #expect(string(try await client.unary(path: "/test.Raw/Echo", request: buffer("ok"))) == "ok")
        }
    }

    @Test func http1RequestGetsA505AndIsClosed() async throws {
        try await withServerAndClient([Self.echo]) { server, _ in
            let request = Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
            let reply = try await rawExchange(port: server.boundPortForTests, bytes: request)
            #expect(string(reply).hasPrefix("HTTP/1.1 505"))
        }
    }

    @Test func silentConnectionIsClosedAfterThePrefaceTimeout() async throws {
        // The timeout applies to the well-behaved client's connection too: generous enough
        // that a loaded machine (the full parallel run) does not close it by mistake.
        try await withServerAndClient([Self.echo], configure: { $0.prefaceTimeout = .seconds(2) }) {
            server, client in
            _ = try await rawExchange(port: server.boundPortForTests, bytes: [])
            #expect(string(try await client.unary(path: "/test.Raw/Echo", request: buffer("ok"))) == "ok")
        }
    }

    @Test func peerThatNeverAcksPingsIsClosed() async throws {
        try await withServerAndClient(
            [Self.echo],
            configure: {
                // The well-behaved client must answer PINGs in time too: generous enough for
                // a loaded machine (the full parallel run).
                $0.keepaliveInterval = .milliseconds(100)
                $0.keepaliveTimeout = .seconds(2)
            }
        ) { server, _ in
            // Magic + an empty SETTINGS frame, then silence: PINGs go unanswered.
            let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
            let reply = try await rawExchange(port: server.boundPortForTests, bytes: preface)
            // The server's own SETTINGS and at least one PING (type 6) went out before the close.
            #expect(reply.readableBytes > 9)
            #expect(Self.frameTypes(in: reply).contains(6))
        }
    }

    @Test func keepaliveKeepsAnsweringPeersConnected() async throws {
        try await withServerAndClient(
            [Self.echo],
            configure: { $0.keepaliveInterval = .milliseconds(20); $0.keepaliveTimeout = .seconds(5) },
            configureClient: { $0.keepaliveInterval = .milliseconds(20); $0.keepaliveTimeout = .seconds(5) }
        ) { _, client in
            for index in 0..<30 {
                let reply = try await client.unary(path: "/test.Raw/Echo", request: buffer("\(index)"))
                #expect(string(reply) == "\(index)")
            }
        }
    }

    static func frameTypes(in buffer: ByteBuffer) -> [UInt8] {
        var buffer = buffer
        var types: [UInt8] = []
        while let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map({ $0 >> 8 }),
            let type = buffer.getInteger(at: buffer.readerIndex + 3, as: UInt8.self),
            buffer.readableBytes >= 9 + Int(length)
        {
            types.append(type)
            buffer.moveReaderIndex(forwardBy: 9 + Int(length))
        }
        return types
    }
}
