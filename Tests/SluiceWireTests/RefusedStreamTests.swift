import NIOCore
import NIOPosix
import Testing
@testable import SluiceWire

/// A hand-written HTTP/2 client, for limits our own client never lets itself exceed.
final class RawHTTP2Peer: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    struct Frame: Equatable {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var payload: [UInt8]
    }

    private var received = ByteBuffer()
    private var frames: [Frame] = []
    private var waiter: (predicate: ([Frame]) -> Bool, promise: EventLoopPromise<[Frame]>)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
        while let header = received.getBytes(at: received.readerIndex, length: 9) {
            let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
            guard received.readableBytes >= 9 + length else { break }
            received.moveReaderIndex(forwardBy: 9)
            let payload = received.readBytes(length: length) ?? []
            let stream = (UInt32(header[5]) << 24 | UInt32(header[6]) << 16 | UInt32(header[7]) << 8
                | UInt32(header[8])) & 0x7FFF_FFFF
            frames.append(Frame(type: header[3], flags: header[4], stream: stream, payload: payload))
        }
        check()
    }

    func channelInactive(context: ChannelHandlerContext) {
        waiter?.promise.fail(ChannelError.eof)
        waiter = nil
    }

    /// Completes once the frames received so far satisfy `predicate`. Event loop only.
    func wait(on loop: any EventLoop, until predicate: @escaping ([Frame]) -> Bool) -> EventLoopFuture<[Frame]> {
        let promise = loop.makePromise(of: [Frame].self)
        waiter = (predicate, promise)
        check()
        return promise.futureResult
    }

    private func check() {
        guard let waiter, waiter.predicate(frames) else { return }
        self.waiter = nil
        waiter.promise.succeed(frames)
    }

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + frame(type: 4, flags: 0, stream: 0, [])

    static func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)]
            + payload
    }

    /// HEADERS (END_HEADERS) for a gRPC POST to `path`, HPACK without Huffman or indexing:
    /// 0x83 = :method POST, 0x86 = :scheme http, 0x04 = :path (name index 4, literal value),
    /// 0x01 = :authority, 0x0F 0x10 = content-type (name index 31).
    static func requestHeaders(stream: UInt32, path: String) -> [UInt8] {
        func literal(_ prefix: [UInt8], _ value: String) -> [UInt8] {
            prefix + [UInt8(value.utf8.count)] + Array(value.utf8)
        }
        let block: [UInt8] =
            [0x83, 0x86] + literal([0x04], path) + literal([0x01], "test") + literal([0x0F, 0x10], "application/grpc")
        return frame(type: 1, flags: 0x4, stream: stream, block)
    }

    /// A fresh peer on 127.0.0.1:`port`, its preface sent and the server's SETTINGS
    /// received but not yet acknowledged: nghttp2 itself only refuses streams (rather than
    /// ending the connection) while its SETTINGS are unacknowledged.
    static func connect(
        port: Int, receiveBufferBytes: Int? = nil
    ) async throws -> (peer: RawHTTP2Peer, channel: any Channel, loop: any EventLoop) {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let peer = RawHTTP2Peer()
        var bootstrap = ClientBootstrap(group: loop)
        if let receiveBufferBytes {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: receiveBufferBytes)
        }
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(peer) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(bytes: RawHTTP2Peer.preface))
        _ = try await loop.flatSubmit {
            peer.wait(on: loop) { frames in frames.contains { $0.type == 4 && $0.flags & 1 == 0 } }
        }.get()
        return (peer, channel, loop)
    }
}

@Suite(.timeLimit(.minutes(2))) struct RefusedStreamTests {
    @Test func streamsAboveTheCapAreRefusedAfterTheSettingsAck() async throws {
        let hold = GRPCMethod.bidirectional("/test.Raw/Hold") { requests, _, _ in
            for try await _ in requests {}
        }
        try await withServerAndClient([hold], configure: { $0.maxConcurrentStreams = 2 }) { server, _ in
            let (peer, channel, loop) = try await RawHTTP2Peer.connect(port: server.boundPortForTests)
            var bytes = RawHTTP2Peer.frame(type: 4, flags: 1, stream: 0, [])
            for stream: UInt32 in [1, 3, 5] {
                bytes += RawHTTP2Peer.requestHeaders(stream: stream, path: "/test.Raw/Hold")
            }
            // A PING after the streams: its ACK shows the connection outlived the refusal.
            bytes += RawHTTP2Peer.frame(type: 6, flags: 0, stream: 0, [1, 2, 3, 4, 5, 6, 7, 8])
            try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
            let frames = try await loop.flatSubmit {
                peer.wait(on: loop) { frames in
                    frames.contains { $0.type == 3 } && frames.contains { $0.type == 6 && $0.flags & 1 == 1 }
                }
            }.get()
            #expect(!frames.contains { $0.type == 7 }, "the server sent GOAWAY instead of refusing the stream")
            let resets = frames.filter { $0.type == 3 }
            // Only the third stream is reset, with REFUSED_STREAM (0x7).
            #expect(resets.map(\.stream) == [5])
            #expect(resets.first?.payload == [0, 0, 0, 7])
            // The server advertised the limit: SETTINGS id 0x3 = 2.
            let settings = frames.first { $0.type == 4 && $0.flags & 1 == 0 }?.payload ?? []
            var entries: [(id: UInt16, value: UInt32)] = []
            var offset = 0
            while offset + 6 <= settings.count {
                let id = UInt16(settings[offset]) << 8 | UInt16(settings[offset + 1])
                var value: UInt32 = 0
                for byte in settings[(offset + 2)..<(offset + 6)] { value = value << 8 | UInt32(byte) }
                entries.append((id, value))
                offset += 6
            }
            #expect(entries.contains { $0.id == 3 && $0.value == 2 })
            try await channel.close()
        }
    }

    /// Far more HEADERS than nghttp2's ceiling (cap + headroom) in one write: every stream
    /// above the cap is refused on its own, none is left unanswered, and no GOAWAY ends
    /// the connection (RFC 9113 §5.1.2).
    @Test func aFloodOfHeadersIsRefusedStreamByStream() async throws {
        let hold = GRPCMethod.bidirectional("/test.Raw/Hold") { requests, _, _ in
            for try await _ in requests {}
        }
        let streams: UInt32 = 1_000
        try await withServerAndClient([hold], configure: { $0.maxConcurrentStreams = 2 }) { server, _ in
            let (peer, channel, loop) = try await RawHTTP2Peer.connect(port: server.boundPortForTests)
            var bytes = RawHTTP2Peer.frame(type: 4, flags: 1, stream: 0, [])
            for index in 0..<streams {
                bytes += RawHTTP2Peer.requestHeaders(stream: 1 + 2 * index, path: "/test.Raw/Hold")
            }
            bytes += RawHTTP2Peer.frame(type: 6, flags: 0, stream: 0, [1, 2, 3, 4, 5, 6, 7, 8])
            try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
            try await expectRefusedAboveTheCap(streams, peer: peer, loop: loop)
            try await channel.close()
        }
    }

    /// The same flood from a peer that does not read: the refusals cannot be written, so
    /// the server holds the rest of the input back and stops reading (TCP slows the peer)
    /// rather than queue refusals without bound. Once the peer reads, every stream above
    /// the cap is refused, in order, and the connection is still there.
    @Test func aFloodFromAPeerThatDoesNotReadIsHeldBackThenRefused() async throws {
        let hold = GRPCMethod.bidirectional("/test.Raw/Hold") { requests, _, _ in
            for try await _ in requests {}
        }
        let held = Signal()
        // Enough refusals (13 bytes each) to fill small socket buffers on both sides and
        // NIO's 64 KiB of pending writes on top, several times over.
        let streams: UInt32 = 50_000
        try await withServerAndClient(
            [hold],
            configure: {
                $0.maxConcurrentStreams = 2
                $0.onInputHeld = { Task { await held.fire() } }
                $0.socketSendBufferBytes = 4096
            }
        ) { server, _ in
            let (peer, channel, loop) = try await RawHTTP2Peer.connect(port: server.boundPortForTests, receiveBufferBytes: 4096)
            try await channel.setOption(ChannelOptions.autoRead, value: false).get()
            var bytes = RawHTTP2Peer.frame(type: 4, flags: 1, stream: 0, [])
            bytes.reserveCapacity(Int(streams) * 64)
            for index in 0..<streams {
                bytes += RawHTTP2Peer.requestHeaders(stream: 1 + 2 * index, path: "/test.Raw/Hold")
            }
            bytes += RawHTTP2Peer.frame(type: 6, flags: 0, stream: 0, [1, 2, 3, 4, 5, 6, 7, 8])
            // Not awaited: the server stops reading before it has taken all of it.
            channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil)
            await held.wait()
            try await channel.setOption(ChannelOptions.autoRead, value: true).get()
            try await expectRefusedAboveTheCap(streams, peer: peer, loop: loop)
            try await channel.close()
        }
    }

    /// Waits for the PING's ACK after every refusal (or for a GOAWAY), then expects no
    /// GOAWAY and the streams above the cap of 2 each refused once, REFUSED_STREAM, in order;
    /// the two under the cap stay open.
    private func expectRefusedAboveTheCap(_ streams: UInt32, peer: RawHTTP2Peer, loop: any EventLoop) async throws {
        let frames = try await loop.flatSubmit {
            peer.wait(on: loop) { frames in
                frames.contains { $0.type == 7 }
                    || (frames.lazy.filter { $0.type == 3 }.count >= Int(streams) - 2
                        && frames.contains { $0.type == 6 && $0.flags & 1 == 1 })
            }
        }.get()
        #expect(!frames.contains { $0.type == 7 }, "the server sent GOAWAY instead of refusing the streams")
        let resets = frames.filter { $0.type == 3 }
        #expect(resets.allSatisfy { $0.payload == [0, 0, 0, 7] })
        #expect(resets.map(\.stream) == (2..<streams).map { 1 + 2 * $0 })
    }
}
