import NIOCore
import Synchronization
import Testing
@testable import SluiceWire

@Suite(.timeLimit(.minutes(5))) struct FlowControlTests {
    @Test func writerBlocksOnAClientThatDoesNotReadThenResumes() async throws {
        let messageBytes = 1024
        let total = 2000  // ~2 MiB: far more than windows + send queue
        let written = Counter()
        let blocked = Signal()
        let method = GRPCMethod.serverStreaming("/test.Flow/Flood") { _, writer, _ in
            let payload = ByteBuffer(repeating: 0x5A, count: messageBytes)
            for _ in 0..<total {
                try await writer.write(payload)
                written.increment()
            }
        }
        let streamWindow = 65_535
        let clientBuffer = 16 * 1024
        let sendQueue = 32 * 1024
        try await withServerAndClient(
            [method],
            configure: {
                $0.sendQueueBytes = sendQueue
                $0.onWriterBlocked = { Task { await blocked.fire() } }
            },
            configureClient: {
                $0.initialWindowBytes = streamWindow
                $0.connectionWindowBytes = 1024 * 1024
                $0.inboundBufferBytes = clientBuffer
            }
        ) { _, client in
            let call = try await client.makeCall(path: "/test.Flow/Flood")
            try await call.send(ByteBuffer())
            try await call.finishSending()
            await blocked.wait()
            // What can be in flight while nobody reads: the client's decoded buffer (plus one
            // message of overshoot), its stream window, the server's send queue (plus one).
            let wire = messageBytes + 5
            let bound = (clientBuffer + wire + streamWindow + sendQueue + wire) / wire + 1
            let before = written.value
            #expect(before <= bound)
            #expect(before < total)
            var received = 0
            for try await message in call.responses {
                #expect(message.readableBytes == messageBytes)
                received += 1
            }
            #expect(received == total)
            #expect(written.value == total)
        }
    }

    @Test func slowHandlerStopsTheClientsSends() async throws {
        // A client-streaming handler that does not read: the client's send() must block
        // rather than the server buffering everything.
        let release = Signal()
        let clientBlocked = Signal()
        let method = GRPCMethod.clientStreaming("/test.Flow/Sink") { requests, _ in
            await release.wait()
            var count = 0
            for try await _ in requests { count += 1 }
            return buffer("\(count)")
        }
        let sent = Counter()
        try await withServerAndClient(
            [method],
            configure: { $0.initialWindowBytes = 65_535; $0.inboundBufferBytes = 16 * 1024 },
            configureClient: {
                $0.sendQueueBytes = 32 * 1024
                $0.onWriterBlocked = { Task { await clientBlocked.fire() } }
            }
        ) { _, client in
            let call = try await client.makeCall(path: "/test.Flow/Sink")
            let total = 2000
            let sender = Task {
                for _ in 0..<total {
                    try await call.send(ByteBuffer(repeating: 1, count: 1024))
                    sent.increment()
                }
                try await call.finishSending()
            }
            // Wait until the client's sends stall: its send queue only fills when the
            // server's window is closed.
            await clientBlocked.wait()
            let before = sent.value
            #expect(before < total)
            #expect(before <= (16 * 1024 + 65_535 + 32 * 1024) / 1029 + 3)
            await release.fire()
            try await sender.value
            var replies: [String] = []
            for try await reply in call.responses { replies.append(string(reply)) }
            #expect(replies == ["\(total)"])
        }
    }

    @Test func stalledPeerIsDisconnectedAfterTheStallTimeout() async throws {
        let handlerFailed = Signal()
        let method = GRPCMethod.serverStreaming("/test.Flow/Stall") { _, writer, _ in
            do {
                for _ in 0..<100_000 { try await writer.write(ByteBuffer(repeating: 1, count: 1024)) }
            } catch {
                await handlerFailed.fire()
                throw error
            }
        }
        try await withServerAndClient(
            [method],
            configure: {
                $0.sendQueueBytes = 16 * 1024
                $0.sendStallTimeout = .milliseconds(200)
            },
            configureClient: { $0.initialWindowBytes = 65_535; $0.inboundBufferBytes = 8 * 1024 }
        ) { _, client in
            let call = try await client.makeCall(path: "/test.Flow/Stall")
            try await call.send(ByteBuffer())
            try await call.finishSending()
            // Never read: the server gives up on the connection; its handler's write fails.
            await client.closed()
            await handlerFailed.wait()
            let error = await #expect(throws: GRPCStatus.self) { for try await _ in call.responses {} }
            #expect(error?.code == .unavailable)
        }
    }
}

@Suite(.timeLimit(.minutes(5))) struct BoundedMemoryTests {
    @Test func manyFloodingStreamsToANonReadingClientStayBounded() async throws {
        let streamsCount = 20
        let messageBytes = 4096
        let blockedWriters = Counter()
        let allBlocked = Signal()
        let method = GRPCMethod.serverStreaming("/test.Flow/Flood") { _, writer, _ in
            let payload = ByteBuffer(repeating: 3, count: messageBytes)
            while true { try await writer.write(payload) }
        }
        let sendQueue = 64 * 1024
        try await withServerAndClient(
            [method],
            configure: {
                $0.sendQueueBytes = sendQueue
                $0.onWriterBlocked = {
                    blockedWriters.increment()
                    if blockedWriters.value == streamsCount { Task { await allBlocked.fire() } }
                }
            },
            configureClient: { $0.initialWindowBytes = 65_535; $0.inboundBufferBytes = 8 * 1024 }
        ) { server, client in
            var calls: [GRPCClientCall] = []
            for _ in 0..<streamsCount {
                let call = try await client.makeCall(path: "/test.Flow/Flood")
                try await call.send(ByteBuffer())
                try await call.finishSending()
                calls.append(call)
            }
            await allBlocked.wait()
            // The send budget may be exceeded by one message per stream, never more.
            let samples = await server.memoryForTests()
            #expect(samples.count == 1)
            for sample in samples {
                #expect(sample.queuedSendBytes <= sendQueue + streamsCount * (messageBytes + 5))
            }
            for call in calls { call.cancel() }
        }
    }

    @Test func manyClientsFloodingANonReadingHandlerStayBounded() async throws {
        let streamsCount = 10
        let messageBytes = 4096
        let window = 65_535
        let inboundBuffer = 16 * 1024
        let release = Signal()
        let clientBlocked = Signal()
        let method = GRPCMethod.clientStreaming("/test.Flow/Sink") { requests, _ in
            await release.wait()
            for try await _ in requests {}
            return ByteBuffer()
        }
        try await withServerAndClient(
            [method],
            configure: { $0.initialWindowBytes = window; $0.inboundBufferBytes = inboundBuffer },
            configureClient: {
                $0.sendQueueBytes = 64 * 1024
                $0.onWriterBlocked = { Task { await clientBlocked.fire() } }
            }
        ) { server, client in
            var senders: [Task<Void, any Error>] = []
            for _ in 0..<streamsCount {
                let call = try await client.makeCall(path: "/test.Flow/Sink")
                senders.append(
                    Task {
                        while true { try await call.send(ByteBuffer(repeating: 4, count: messageBytes)) }
                    })
            }
            await clientBlocked.wait()
            let samples = await server.memoryForTests()
            #expect(samples.count == 1)
            for sample in samples {
                // Per stream: the unread buffer, one DATA frame (16 KiB) consumed whole, the
                // window, and one partial message.
                let perStream = inboundBuffer + 16 * 1024 + window + messageBytes + 5
                #expect(sample.bufferedReceiveBytes <= streamsCount * perStream)
            }
            await release.fire()
            for sender in senders { sender.cancel() }
            for sender in senders { _ = await sender.result }
        }
    }
}
