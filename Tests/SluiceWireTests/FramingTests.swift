import NIOCore
import Testing
@testable import SluiceWire

@Suite(.timeLimit(.minutes(2))) struct FramingTests {
    static func framed(_ payloads: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        for payload in payloads {
            var buffer = GRPCMessageFrame.encode(ByteBuffer(bytes: payload))
            bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
        }
        return bytes
    }

    @Test func prefixLayout() {
        let frame = Self.framed([[0xAA, 0xBB, 0xCC]])
        #expect(frame == [0x00, 0x00, 0x00, 0x00, 0x03, 0xAA, 0xBB, 0xCC])
    }

    @Test func dripFedBytesYieldTheSameMessages() throws {
        let payloads: [[UInt8]] = [[], [1], Array(repeating: 2, count: 300), [3, 4, 5], []]
        let stream = Self.framed(payloads)
        for chunkSize in [1, 2, 3, 5, 7, 64, stream.count] {
            var decoder = GRPCMessageDecoder(maxPayloadBytes: 1024)
            var decoded: [[UInt8]] = []
            var offset = 0
            while offset < stream.count {
                let end = min(offset + chunkSize, stream.count)
                stream[offset..<end].withUnsafeBytes { decoder.append($0) }
                offset = end
                while var message = try decoder.next() {
                    decoded.append(message.readBytes(length: message.readableBytes) ?? [])
                }
            }
            try decoder.checkEnd()
            #expect(decoded == payloads, "chunk size \(chunkSize)")
            #expect(decoder.bufferedBytes == 0)
        }
    }

    @Test func lyingLengthPrefixFailsFromTheHeaderAlone() throws {
        var decoder = GRPCMessageDecoder(maxPayloadBytes: 4 * 1024 * 1024)
        let header: [UInt8] = [0x00, 0xFF, 0xFF, 0xFF, 0xFF]
        header.withUnsafeBytes { decoder.append($0) }
        #expect(throws: GRPCFramingError.messageTooLarge(length: 0xFFFF_FFFF, limit: 4 * 1024 * 1024)) {
            _ = try decoder.next()
        }
        // Nothing was kept, and the decoder stays failed.
        #expect(decoder.bufferedBytes == 0)
        ([0x00, 0x00, 0x00, 0x00, 0x00] as [UInt8]).withUnsafeBytes { decoder.append($0) }
        #expect(decoder.bufferedBytes == 0)
        #expect(throws: GRPCFramingError.self) { _ = try decoder.next() }
    }

    @Test func partialHeaderWaits() throws {
        var decoder = GRPCMessageDecoder(maxPayloadBytes: 10)
        ([0x00, 0x00, 0x00, 0x00] as [UInt8]).withUnsafeBytes { decoder.append($0) }
        #expect(try decoder.next() == nil)
        #expect(throws: GRPCFramingError.truncated(bufferedBytes: 4)) { try decoder.checkEnd() }
    }

    @Test func compressedFlagWithoutEncodingIsRejected() {
        var decoder = GRPCMessageDecoder(maxPayloadBytes: 10)
        ([0x01, 0x00, 0x00, 0x00, 0x01, 0x42] as [UInt8]).withUnsafeBytes { decoder.append($0) }
        #expect(throws: GRPCFramingError.compressedWithoutEncoding) { _ = try decoder.next() }
        #expect(GRPCFramingError.compressedWithoutEncoding.status.code == .internalError)
    }

    @Test func unknownFlagIsRejected() {
        var decoder = GRPCMessageDecoder(maxPayloadBytes: 10)
        ([0x80, 0x00, 0x00, 0x00, 0x00] as [UInt8]).withUnsafeBytes { decoder.append($0) }
        #expect(throws: GRPCFramingError.invalidFlag(0x80)) { _ = try decoder.next() }
    }

    @Test func inboundBufferHoldsBackWindowWhileUnread() throws {
        var inbound = InboundMessageBuffer(limitBytes: 20, maxMessageBytes: 100)
        let one = Self.framed([Array(repeating: 1, count: 10)])  // 15 wire bytes
        // First message: the buffer was empty, so its bytes are consumed at once.
        #expect(try one.withUnsafeBytes { try inbound.receive($0) } == 15)
        // Second: 30 bytes of unread messages >= 20, held back (the peer's window shrinks).
        #expect(try one.withUnsafeBytes { try inbound.receive($0) } == 0)
        #expect(try one.withUnsafeBytes { try inbound.receive($0) } == 0)
        #expect(inbound.unconsumedBytes == 30)
        // Reading one leaves 30 buffered: still held.
        #expect(inbound.take()?.consume == 0)
        // Reading another leaves 15 < 20: the held bytes go back to the peer.
        #expect(inbound.take()?.consume == 30)
        #expect(inbound.take() != nil)
        #expect(inbound.take() == nil)
    }

    @Test func outboundQueueCopiesAcrossFrameBoundaries() {
        var queue = OutboundMessageQueue()
        queue.append(ByteBuffer(bytes: [1, 2, 3]))
        queue.append(ByteBuffer(bytes: [4, 5]))
        queue.finish(.endStream)
        var frame = [UInt8](repeating: 0, count: 4)
        let first = frame.withUnsafeMutableBytes { queue.read(into: $0) }
        guard case .data(4, nil) = first else { Issue.record("expected 4 bytes, got \(first)"); return }
        #expect(frame == [1, 2, 3, 4])
        let second = frame.withUnsafeMutableBytes { queue.read(into: $0) }
        guard case .data(1, .endStream?) = second else { Issue.record("expected the end, got \(second)"); return }
        #expect(frame[0] == 5)
        #expect(queue.queuedBytes == 0)
    }
}

@Suite(.timeLimit(.minutes(2))) struct HeaderCodingTests {
    @Test func timeoutParsing() {
        #expect(GRPCTimeout.parse("100m") == .milliseconds(100))
        #expect(GRPCTimeout.parse("2H") == .seconds(7200))
        #expect(GRPCTimeout.parse("3M") == .seconds(180))
        #expect(GRPCTimeout.parse("7S") == .seconds(7))
        #expect(GRPCTimeout.parse("15u") == .microseconds(15))
        #expect(GRPCTimeout.parse("99999999n") == .nanoseconds(99_999_999))
        #expect(GRPCTimeout.parse("123456789n") == nil)  // 9 digits
        #expect(GRPCTimeout.parse("10") == nil)
        #expect(GRPCTimeout.parse("m") == nil)
        #expect(GRPCTimeout.parse("1x") == nil)
        #expect(GRPCTimeout.parse("-1S") == nil)
    }

    @Test func timeoutFormattingRoundTripsWithoutShortening() {
        for duration: Duration in [.nanoseconds(1), .milliseconds(100), .seconds(5), .seconds(86_400 * 365)] {
            let text = GRPCTimeout.format(duration)
            #expect(text.utf8.count <= 9)
            let parsed = GRPCTimeout.parse(text)
            #expect(parsed != nil && parsed! >= duration, "\(text)")
        }
        #expect(GRPCTimeout.format(.milliseconds(100)) == "100000000n" || GRPCTimeout.format(.milliseconds(100)) == "100000u")
        #expect(GRPCTimeout.format(.seconds(-1)) == "0n")
    }

    @Test func statusMessagePercentEncoding() {
        let message = "héllo ✓ 100%\r\n"
        let encoded = GRPCStatusMessageCoding.encode(message)
        #expect(encoded == "h%C3%A9llo %E2%9C%93 100%25%0D%0A")
        #expect(GRPCStatusMessageCoding.decode(encoded) == message)
        // Malformed escapes pass through literally.
        #expect(GRPCStatusMessageCoding.decode("50% off %zz %4") == "50% off %zz %4")
    }

    @Test func httpStatusMapping() {
        #expect(GRPCStatus.fromHTTPStatus(404).code == .unimplemented)
        #expect(GRPCStatus.fromHTTPStatus(503).code == .unavailable)
        #expect(GRPCStatus.fromHTTPStatus(401).code == .unauthenticated)
        #expect(GRPCStatus.fromHTTPStatus(415).code == .unknown)
    }
}
