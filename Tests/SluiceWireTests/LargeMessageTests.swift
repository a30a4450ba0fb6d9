import NIOCore
import SluiceTestSupport
import Testing
@testable import SluiceWire

/// Large DATA payloads travel by reference (nghttp2's NO_COPY path) and in frames up to
/// `maxFrameBytes`; small ones are copied. Every byte must arrive, in order, whichever path
/// and frame size carried it.
@Suite(.timeLimit(.minutes(2))) struct LargeMessageTests {
    static let echo = GRPCMethod.bidirectional("/test.Large/Echo") { requests, writer, _ in
        for try await message in requests { try await writer.write(message) }
    }

    /// Sizes on both sides of the no-copy threshold (4 KiB) and of 16 KiB frames.
    static let sizes = [0, 1, 4_095, 4_096, 4_097, 16_379, 16_384, 70_000, 300_001, 1_048_576]

    /// Distinct bytes per message and position, so a slice sent twice, dropped or reordered shows.
    static func payload(_ index: Int, size: Int) -> ByteBuffer {
        var generator = SplitMix64(seed: UInt64(index) &* 0x9E37_79B9 &+ UInt64(size))
        var buffer = ByteBuffer()
        buffer.reserveCapacity(size)
        for _ in 0..<(size / 8) { buffer.writeInteger(generator.next()) }
        for _ in 0..<(size % 8) { buffer.writeInteger(UInt8(truncatingIfNeeded: generator.next())) }
        return buffer
    }

    @Test(arguments: [16 * 1024, 64 * 1024, 1024 * 1024])
    func largeMessagesArriveIntactAtEveryFrameSize(maxFrameBytes: Int) async throws {
        try await withServerAndClient(
            [Self.echo], configure: { $0.maxFrameBytes = maxFrameBytes },
            configureClient: { $0.maxFrameBytes = maxFrameBytes }
        ) { _, client in
            let call = try await client.makeCall(path: "/test.Large/Echo")
            // All sent before any is read: messages share DATA frames and the windows fill.
            let sender = Task {
                for (index, size) in Self.sizes.enumerated() { try await call.send(Self.payload(index, size: size)) }
                try await call.finishSending()
            }
            var received = 0
            for try await message in call.responses {
                #expect(message == Self.payload(received, size: Self.sizes[received]), "message \(received)")
                received += 1
            }
            try await sender.value
            #expect(received == Self.sizes.count)
        }
    }

    @Test func unaryRequestLargerThanTheSendBudgetArrivesIntact() async throws {
        // The unary fast path queues the request in the opening hop; above the budget it
        // falls back to a parked send. Both must frame the message the same way.
        let unaryEcho = GRPCMethod.unary("/test.Large/Unary") { request, _ in request }
        try await withServerAndClient([unaryEcho], configureClient: { $0.sendQueueBytes = 1 }) { _, client in
            for (index, size) in [10, 200_000].enumerated() {
                let request = Self.payload(index, size: size)
                let response = try await client.unary(path: "/test.Large/Unary", request: request)
                #expect(response == request)
            }
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct OutboundQueueTakeTests {
    @Test func peekOffersAndTakeSlicesAcrossChunks() {
        var queue = OutboundMessageQueue()
        queue.append(ByteBuffer(bytes: [1, 2, 3]))
        queue.append(ByteBuffer(bytes: [4, 5, 6, 7]))
        queue.finish(.endStream)
        guard case .data(5, nil) = queue.peek(limit: 5) else { Issue.record("expected 5 bytes, no end"); return }
        #expect(queue.queuedBytes == 7, "peek takes nothing")
        var pieces: [ByteBuffer] = []
        queue.take(5, into: &pieces)
        #expect(pieces == [ByteBuffer(bytes: [1, 2, 3]), ByteBuffer(bytes: [4, 5])])
        #expect(queue.queuedBytes == 2)
        guard case .data(2, .endStream?) = queue.peek(limit: 100) else { Issue.record("expected the end"); return }
        pieces.removeAll()
        queue.take(2, into: &pieces)
        #expect(pieces == [ByteBuffer(bytes: [6, 7])])
        guard case .data(0, .endStream?) = queue.peek(limit: 100) else { Issue.record("expected the end"); return }
    }

    @Test func peekOfAnEmptyOpenQueueDefers() {
        let queue = OutboundMessageQueue()
        guard case .deferred = queue.peek(limit: 16) else { Issue.record("expected deferred"); return }
    }

    @Test func aPrefixAloneReservesAtMostTheEagerLimit() throws {
        // A 4 MiB message announced by its prefix and nothing more: the buffer waits for
        // bytes instead of taking the whole size on the peer's word.
        var decoder = GRPCMessageDecoder(maxPayloadBytes: 4 << 20)
        let prefix = GRPCMessageFrame.prefix(for: ByteBuffer(repeating: 0, count: 4 << 20))
        prefix.withUnsafeReadableBytes { decoder.append($0) }
        #expect(try decoder.next() == nil)
        // NIO rounds a capacity up to a power of two: 1 MiB + 5 bytes take 2 MiB.
        #expect(decoder.reservedBytes <= 2 * GRPCMessageDecoder.eagerReserveBytes)
        #expect(decoder.reservedBytes < 4 << 20)
    }

    @Test func decoderReassemblesLargeMessagesAfterSharedStorage() throws {
        // Big messages that start in the middle of a buffer whose earlier bytes were handed
        // out as slices: the partial message moves to its own buffer, the slices stay intact.
        let payloads = [100, 70_000, 3, 300_000, 0, 5_000, 2_500_000, 7].enumerated().map {
            LargeMessageTests.payload($0.offset, size: $0.element)
        }
        var stream = ByteBuffer()
        for payload in payloads { stream.writeImmutableBuffer(GRPCMessageFrame.encode(payload)) }
        for chunk in [1_000, 16_387, 65_536] {
            var decoder = GRPCMessageDecoder(maxPayloadBytes: 4 << 20)
            var decoded: [ByteBuffer] = []
            var rest = stream
            while rest.readableBytes > 0, let piece = rest.readSlice(length: min(chunk, rest.readableBytes)) {
                piece.withUnsafeReadableBytes { decoder.append($0) }
                while let message = try decoder.next() { decoded.append(message) }
            }
            try decoder.checkEnd()
            #expect(decoded == payloads, "chunk \(chunk)")
        }
    }
}
