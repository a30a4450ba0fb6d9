import NIOCore
import Testing
@testable import SluiceWire

/// Every call ends with an answer, whatever the size of its status message or metadata.
/// Each call carries a deadline only as a bound: a call left unanswered would end with
/// DEADLINE_EXCEEDED, which the expectations reject.
@Suite(.timeLimit(.minutes(2))) struct StatusDeliveryTests {
    static let bound = Duration.seconds(20)
    static let huge = String(repeating: "z", count: 20_000)

    static let methods: [GRPCMethod] = [
        // Fails with the request's text as the message.
        .unary("/test.Delivery/Echoed") { request, _ in
            throw GRPCStatus(.notFound, "topic \(String(buffer: request)) does not exist")
        },
        .unary("/test.Delivery/Ok") { request, _ in request },
        // Trailing metadata too large for any header block nghttp2 sends.
        .serverStreaming("/test.Delivery/HugeTrailers") { _, writer, _ in
            writer.setTrailingMetadata(["x-huge": huge])
            try await writer.write(buffer("one"))
        },
        // The same on a trailers-only answer (no message written).
        .serverStreaming("/test.Delivery/HugeTrailersOnly") { _, writer, _ in
            writer.setTrailingMetadata(["x-huge": huge])
            throw GRPCStatus(.notFound, "nothing")
        },
        .serverStreaming("/test.Delivery/HugeHeaders") { _, writer, _ in
            writer.setInitialMetadata(["x-huge": huge])
            try await writer.write(buffer("one"))
        },
    ]

    // (character, count): 16,235 "z" was the first length never answered; "日" triples
    // once percent-encoded.
    @Test(arguments: [("z", 16_235), ("z", 20_000), ("日", 2_000), ("日", 7_000)])
    func aLongStatusMessageIsCappedNotDropped(character: String, count: Int) async throws {
        let text = String(repeating: character, count: count)
        try await withServerAndClient(Self.methods) { _, client in
            let error = await #expect(throws: GRPCStatus.self) {
                _ = try await client.unary(path: "/test.Delivery/Echoed", request: buffer(text), timeout: Self.bound)
            }
            #expect(error?.code == .notFound)
            let message = error?.message ?? ""
            #expect(message.hasPrefix("topic " + text.prefix(50)))
            #expect(message.hasSuffix("..."))
            #expect(GRPCStatusMessageCoding.encode(message).utf8.count <= GRPCStatusMessageCoding.maxEncodedBytes)
        }
    }

    @Test func manyLongStatusesDoNotUseUpTheConnection() async throws {
        try await withServerAndClient(Self.methods) { _, client in
            // More than the 100 streams a connection allows: each must end for the next to open.
            for _ in 0..<150 {
                let error = await #expect(throws: GRPCStatus.self) {
                    _ = try await client.unary(path: "/test.Delivery/Echoed", request: buffer(Self.huge), timeout: Self.bound)
                }
                #expect(error?.code == .notFound)
            }
            let answer = try await client.unary(path: "/test.Delivery/Ok", request: buffer("still here"), timeout: Self.bound)
            #expect(string(answer) == "still here")
        }
    }

    @Test(arguments: ["/test.Delivery/HugeTrailers", "/test.Delivery/HugeTrailersOnly", "/test.Delivery/HugeHeaders"])
    func headersThatCannotBeSentResetTheStream(path: String) async throws {
        try await withServerAndClient(Self.methods) { _, client in
            let call = try await client.makeCall(path: path, timeout: Self.bound)
            try await call.send(buffer(""))
            try await call.finishSending()
            let status = await call.status()
            // RST_STREAM(INTERNAL_ERROR) reaches the caller as INTERNAL.
            #expect(status.code == .internalError, "\(status)")
            let answer = try await client.unary(path: "/test.Delivery/Ok", request: buffer("still here"), timeout: Self.bound)
            #expect(string(answer) == "still here")
        }
    }
}
