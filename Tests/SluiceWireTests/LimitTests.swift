import NIOCore
import Synchronization
import Testing
@testable import SluiceWire

@Suite(.timeLimit(.minutes(2))) struct LimitTests {
    static let echo = GRPCMethod.unary("/test.Limit/Echo") { request, _ in request }
    static let big = GRPCMethod.unary("/test.Limit/Big") { request, _ in
        ByteBuffer(repeating: 7, count: Int(string(request)) ?? 0)
    }

    @Test func oversizedRequestIsResourceExhausted() async throws {
        try await withServerAndClient([Self.echo], configure: { $0.maxReceiveMessageBytes = 1024 }) { _, client in
            let error = await #expect(throws: GRPCStatus.self) {
                _ = try await client.unary(path: "/test.Limit/Echo", request: ByteBuffer(repeating: 1, count: 2048))
            }
            #expect(error?.code == .resourceExhausted)
            // Exactly at the limit is fine, and the connection still serves calls.
            let ok = try await client.unary(path: "/test.Limit/Echo", request: ByteBuffer(repeating: 1, count: 1024))
            #expect(ok.readableBytes == 1024)
        }
    }

    @Test func oversizedResponseIsResourceExhaustedAtTheClient() async throws {
        try await withServerAndClient([Self.big], configureClient: { $0.maxReceiveMessageBytes = 1000 }) {
            _, client in
            let error = await #expect(throws: GRPCStatus.self) {
                _ = try await client.unary(path: "/test.Limit/Big", request: buffer("5000"))
            }
            #expect(error?.code == .resourceExhausted)
            let ok = try await client.unary(path: "/test.Limit/Big", request: buffer("1000"))
            #expect(ok.readableBytes == 1000)
        }
    }

    @Test func largeMessagesCrossManyWindows() async throws {
        // 3 MiB through 64 KiB stream windows: partial messages must not stall flow control.
        try await withServerAndClient(
            [Self.echo], configure: { $0.initialWindowBytes = 65_535; $0.inboundBufferBytes = 16 * 1024 },
            configureClient: { $0.initialWindowBytes = 65_535; $0.inboundBufferBytes = 16 * 1024 }
        ) { _, client in
            let payload = ByteBuffer(repeating: 9, count: 3 * 1024 * 1024)
            let response = try await client.unary(path: "/test.Limit/Echo", request: payload)
            #expect(response == payload)
        }
    }

    @Test func maxConcurrentStreamsIsAdvertisedAndRespected() async throws {
        let running = Mutex(0)
        let peak = Mutex(0)
        let twoStarted = Signal()
        let method = GRPCMethod.bidirectional("/test.Limit/Hold") { requests, _, _ in
            let now = running.withLock { $0 += 1; return $0 }
            peak.withLock { $0 = max($0, now) }
            if now == 2 { await twoStarted.fire() }
            defer { running.withLock { $0 -= 1 } }
            for try await _ in requests {}
        }
        try await withServerAndClient([method], configure: { $0.maxConcurrentStreams = 2 }) { _, client in
            let first = try await client.makeCall(path: "/test.Limit/Hold")
            let second = try await client.makeCall(path: "/test.Limit/Hold")
            await twoStarted.wait()
            let error = await #expect(throws: GRPCStatus.self) {
                _ = try await client.makeCall(path: "/test.Limit/Hold")
            }
            #expect(error?.code == .resourceExhausted)
            // Finishing one call frees its slot.
            try await first.finishSending()
            for try await _ in first.responses {}
            let third = try await client.makeCall(path: "/test.Limit/Hold")
            try await third.finishSending()
            try await second.finishSending()
            for try await _ in third.responses {}
            for try await _ in second.responses {}
            #expect(peak.withLock { $0 } == 2)
        }
    }
}
