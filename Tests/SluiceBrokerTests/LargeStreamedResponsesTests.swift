import Logging
import NIOCore
import SluiceAPI
import SluiceTestSupport
import SluiceWire
import Testing

/// Regression test for a SluiceWire stall found while testing Subscribe: server-streamed
/// responses of tens of kilobytes and up stopped after a few (the process idle). Cause:
/// `flush()`'s own `context.flush()` drained the socket and made the channel writable
/// again inside the flush, where the nested `channelWritabilityChanged` could not flush;
/// output then waited for the peer's next frame, which never came. Fixed in
/// `GRPCConnectionHandler.flush()` (it goes round again).
@Suite(.timeLimit(.minutes(1))) struct LargeStreamedResponsesTests {
    @Test(arguments: [40_000, 200_000, 1_040_000])
    func largeStreamedResponsesAllArrive(size: Int) async throws {
        let broker = try await InProcessBroker.start()
        let call = try await broker.connection.makeCall(path: "/sluice.test.v1.Echo/Expand")
        try await call.send(EchoRequest(text: "x", repeat: 64, payloadBytes: UInt32(size)).protobufBytes())
        try await call.finishSending()
        var count = 0
        for try await _ in call.responses { count += 1 }
        #expect(count == 64)
        await broker.stopAndRemove()
    }
}
