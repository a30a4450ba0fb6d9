import Foundation
import NIOCore
import Testing
@testable import SluiceWire

/// Rough throughput numbers for the report; runs only with SLUICE_WIRE_BENCH=1 (it asserts
/// completeness, not speed).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SLUICE_WIRE_BENCH"] == "1"), .timeLimit(.minutes(2)))
struct ThroughputTests {
    @Test func streamingAndUnaryThroughput() async throws {
        let total = 20_000
        let stream = GRPCMethod.serverStreaming("/bench/Stream") { _, writer, _ in
            let payload = ByteBuffer(repeating: 1, count: 1024)
            for _ in 0..<total { try await writer.write(payload) }
        }
        let unary = GRPCMethod.unary("/bench/Unary") { request, _ in request }
        try await withServerAndClient([stream, unary]) { _, client in
            let clock = ContinuousClock()
            let start = clock.now
            let call = try await client.makeCall(path: "/bench/Stream")
            try await call.send(ByteBuffer())
            try await call.finishSending()
            var received = 0
            for try await _ in call.responses { received += 1 }
            let streaming = clock.now - start
            #expect(received == total)
            let unaryStart = clock.now
            let calls = 2_000
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for _ in 0..<(calls / 8) {
                            let reply = try await client.unary(
                                path: "/bench/Unary", request: ByteBuffer(repeating: UInt8(worker), count: 100))
                            #expect(reply.readableBytes == 100)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let unaryTime = clock.now - unaryStart
            // Eight streams at once, same total.
            let fanStart = clock.now
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let call = try await client.makeCall(path: "/bench/Stream")
                        try await call.send(ByteBuffer())
                        try await call.finishSending()
                        var count = 0
                        for try await _ in call.responses { count += 1 }
                        return count
                    }
                }
                for try await count in group { #expect(count == total) }
            }
            print("BENCH 8 concurrent server-streaming calls x \(total) x 1 KiB in \(clock.now - fanStart)")
            print("BENCH server-streaming: \(total) x 1 KiB in \(streaming); \(calls) unary (8 concurrent) in \(unaryTime)")
        }
    }
}
