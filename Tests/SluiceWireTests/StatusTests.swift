import NIOCore
import Testing
@testable import SluiceWire

@Suite(.timeLimit(.minutes(2))) struct StatusTests {
    struct Opaque: Error {}

    static let methods: [GRPCMethod] = [
        .unary("/test.Status/Fail") { request, _ in
            throw GRPCStatus(GRPCStatus.Code(rawValue: Int(string(request)) ?? 2), "héllo wörld ✓ 100% \n")
        },
        .unary("/test.Status/Opaque") { _, _ in throw Opaque() },
        .serverStreaming("/test.Status/FailAfterTwo") { _, writer, _ in
            try await writer.write(buffer("1"))
            try await writer.write(buffer("2"))
            throw GRPCStatus(.aborted, "stopped after two")
        },
        .unary("/test.Status/Metadata") { _, context in
            buffer(context.metadata["x-sluice-key"] ?? "missing")
        },
    ]

    /// The status a unary call to `path` ends with; an issue where it succeeds.
    func failedUnary(
        _ client: GRPCClientConnection, _ path: String, _ request: String = "", sourceLocation: SourceLocation = #_sourceLocation
    ) async -> GRPCStatus? {
        await #expect(throws: GRPCStatus.self, sourceLocation: sourceLocation) {
            _ = try await client.unary(path: path, request: buffer(request))
        }
    }

    @Test(arguments: [1, 3, 5, 8, 9, 13, 14, 16])
    func handlerStatusRoundTrips(code: Int) async throws {
        try await withServerAndClient(Self.methods) { _, client in
            let error = await failedUnary(client, "/test.Status/Fail", "\(code)")
            #expect(error?.code.rawValue == code)
            #expect(error?.message == "héllo wörld ✓ 100% \n")
        }
    }

    @Test func otherErrorsBecomeInternalWithoutDetails() async throws {
        try await withServerAndClient(Self.methods) { _, client in
            let error = await failedUnary(client, "/test.Status/Opaque")
            #expect(error?.code == .internalError)
            #expect(error?.message.contains("Opaque") == false)
        }
    }

    @Test func unknownMethodIsUnimplemented() async throws {
        try await withServerAndClient(Self.methods) { _, client in
            let error = await failedUnary(client, "/test.Status/Nope")
            #expect(error?.code == .unimplemented)
            #expect(error?.message.contains("/test.Status/Nope") == true)
            // The connection stays usable.
            let ok = try await client.unary(path: "/test.Status/Metadata", request: buffer(""))
            #expect(string(ok) == "missing")
        }
    }

    @Test func messagesBeforeAnErrorStatusAreDelivered() async throws {
        try await withServerAndClient(Self.methods) { _, client in
            let call = try await callSending([""], to: "/test.Status/FailAfterTwo", on: client)
            var received: [String] = []
            let error = await #expect(throws: GRPCStatus.self) { try await readResponses(of: call, into: &received) }
            #expect(received == ["1", "2"])
            #expect(error == GRPCStatus(.aborted, "stopped after two"))
        }
    }

    @Test func customMetadataReachesTheHandler() async throws {
        try await withServerAndClient(Self.methods) { _, client in
            let response = try await client.unary(
                path: "/test.Status/Metadata", request: buffer(""), metadata: ["X-Sluice-Key": "v1"])
            #expect(string(response) == "v1")
        }
    }
}
