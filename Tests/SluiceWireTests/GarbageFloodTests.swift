import Foundation
import NIOCore
import NIOPosix
import SluiceTestSupport
import Testing
@testable import SluiceWire

/// Seeded random frames after a valid preface, many connections: the server must survive and
/// keep serving. 40 connections by default; SLUICE_SOAK=1 runs 2,000, SLUICE_WIRE_GARBAGE_COUNT
/// sets the count.
@Suite(.timeLimit(.minutes(5))) struct GarbageFloodTests {
    static var count: Int { runCount("SLUICE_WIRE_GARBAGE_COUNT", ci: 40, soak: 2_000) }

    @Test func randomFramesNeverHurtTheServer() async throws {
        let echo = GRPCMethod.unary("/test.Garbage/Echo") { request, _ in request }
        try await withServerAndClient([echo]) { server, client in
            var random = SplitMix64(seed: 42)
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            for _ in 0..<Self.count {
                var bytes = RawHTTP2Peer.preface
                for _ in 0..<Int.random(in: 1...6, using: &random) {
                    // Plausible frame headers (real types, small lengths) with random payloads.
                    let length = Int.random(in: 0...64, using: &random)
                    let type = UInt8.random(in: 0...10, using: &random)
                    let flags = UInt8.random(in: 0...0x2F, using: &random)
                    let stream = UInt32.random(in: 0...7, using: &random)
                    let payload = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
                    bytes += RawHTTP2Peer.frame(type: type, flags: flags, stream: stream, payload)
                }
                let channel = try await ClientBootstrap(group: loop)
                    .connect(host: "127.0.0.1", port: server.boundPortForTests).get()
                try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
                try? await channel.close()
            }
            // Still serving, on the old connection and on a new one.
            #expect(string(try await client.unary(path: "/test.Garbage/Echo", request: buffer("a"))) == "a")
            let fresh = try await GRPCClientConnection.connect(
                GRPCClientConfiguration(host: "127.0.0.1", port: server.boundPortForTests), logger: testLogger("c2"))
            #expect(string(try await fresh.unary(path: "/test.Garbage/Echo", request: buffer("b"))) == "b")
            await fresh.close()
        }
    }
}
