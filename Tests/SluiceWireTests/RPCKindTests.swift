import NIOCore
import Testing
@testable import SluiceWire

@Suite(.timeLimit(.minutes(2))) struct RPCKindTests {
    static let methods: [GRPCMethod] = [
        .unary("/test.Echo/Unary") { request, _ in buffer("echo:" + string(request)) },
        .serverStreaming("/test.Echo/Expand") { request, writer, _ in
            for word in string(request).split(separator: " ") { try await writer.write(buffer(String(word))) }
        },
        .clientStreaming("/test.Echo/Collect") { requests, _ in
            var words: [String] = []
            for try await message in requests { words.append(string(message)) }
            return buffer(words.joined(separator: "+"))
        },
        .bidirectional("/test.Echo/Chat") { requests, writer, _ in
            for try await message in requests { try await writer.write(buffer("re:" + string(message))) }
        },
    ]

    @Test func unaryRoundTrip() async throws {
        try await withServerAndClient(Self.methods) { _, client in
            let response = try await client.unary(path: "/test.Echo/Unary", request: buffer("hello"))
            #expect(string(response) == "echo:hello")
            // The connection carries many calls.
            for index in 0..<20 {
                let again = try await client.unary(path: "/test.Echo/Unary", request: buffer("\(index)"))
                #expect(string(again) == "echo:\(index)")
            }
        }
    }

    @Test func serverStreaming() async throws {
        try await withServerAndClient(Self.methods) { _, client in
            let call = try await callSending(["a bb ccc"], to: "/test.Echo/Expand", on: client)
            var received: [String] = []
            try await readResponses(of: call, into: &received)
            #expect(received == ["a", "bb", "ccc"])
            #expect(await call.status() == .ok)
        }
    }

    @Test func clientStreaming() async throws {
        try await withServerAndClient(Self.methods) { _, client in
            let call = try await callSending(["x", "y", "z"], to: "/test.Echo/Collect", on: client)
            var received: [String] = []
            try await readResponses(of: call, into: &received)
            #expect(received == ["x+y+z"])
        }
    }

    @Test func bidirectional() async throws {
        try await withServerAndClient(Self.methods) { _, client in
            let call = try await client.makeCall(path: "/test.Echo/Chat")
            var iterator = call.responses.makeAsyncIterator()
            for index in 0..<10 {
                try await call.send(buffer("m\(index)"))
                let reply = try await iterator.next()
                #expect(reply.map(string) == "re:m\(index)")
            }
            try await call.finishSending()
            #expect(try await iterator.next() == nil)
        }
    }

    @Test func emptyMessagesRoundTrip() async throws {
        try await withServerAndClient(Self.methods) { _, client in
            let response = try await client.unary(path: "/test.Echo/Unary", request: ByteBuffer())
            #expect(string(response) == "echo:")
        }
    }
}
