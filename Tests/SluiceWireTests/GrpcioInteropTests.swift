import Foundation
import NIOCore
import Testing
@testable import SluiceWire

/// SluiceWire against Python grpcio (gRPC's C core), both directions. Runs only when
/// `python3 -c "import grpc"` works (the interop stream has the full matrix).
let grpcioAvailable: Bool = {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import grpc"]
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}()

@Suite(.enabled(if: grpcioAvailable), .timeLimit(.minutes(5))) struct GrpcioInteropTests {
    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop")

    @Test func grpcioClientAgainstOurServer() async throws {
        let methods = RPCKindTests.methods + [
            .unary("/test.Echo/Fail") { _, _ in throw GRPCStatus(.failedPrecondition, "nöpe ✓ 100%") },
            .unary("/test.Echo/Hang") { _, _ in
                try await Task.sleep(for: .seconds(3600))
                return ByteBuffer()
            },
        ]
        try await withServerAndClient(methods) { server, _ in
            let output = try await offPool { try runPython(["grpcio_client.py", "\(server.boundPortForTests)"]) }
            #expect(output.contains("unary echo:hi"))
            #expect(output.contains("server-streaming ['a', 'bb', 'ccc']"))
            #expect(output.contains("client-streaming x+y"))
            #expect(output.contains("bidi ['re:1', 're:2']"))
            #expect(output.contains("status /test.Echo/Nope UNIMPLEMENTED"))
            #expect(output.contains("status /test.Echo/Fail FAILED_PRECONDITION nöpe ✓ 100%"))
            #expect(output.contains("deadline DEADLINE_EXCEEDED"))
        }
    }

    @Test func ourClientAgainstGrpcioServer() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.scripts.appendingPathComponent("grpcio_server.py").path]
        let stdout = Pipe()
        let stdin = Pipe()
        process.standardOutput = stdout
        process.standardInput = stdin
        try process.run()
        let line = try await offPool { () throws -> Data in
            var line = Data()
            while let byte = try stdout.fileHandleForReading.read(upToCount: 1), !byte.isEmpty,
                byte != Data("\n".utf8)
            {
                line.append(byte)
            }
            return line
        }
        let port = try #require(Int(String(decoding: line, as: UTF8.self)))
        let client = try await GRPCClientConnection.connect(
            GRPCClientConfiguration(host: "127.0.0.1", port: port), logger: testLogger("client"))
        #expect(string(try await client.unary(path: "/test.Echo/Unary", request: buffer("hi"))) == "echo:hi")

        var words: [String] = []
        try await readResponses(of: try await callSending(["a bb ccc"], to: "/test.Echo/Expand", on: client), into: &words)
        #expect(words == ["a", "bb", "ccc"])

        var collected: [String] = []
        try await readResponses(of: try await callSending(["x", "y", "z"], to: "/test.Echo/Collect", on: client), into: &collected)
        #expect(collected == ["x+y+z"])

        let chat = try await client.makeCall(path: "/test.Echo/Chat")
        var replies = chat.responses.makeAsyncIterator()
        try await chat.send(buffer("1"))
        #expect(try await replies.next().map(string) == "re:1")
        try await chat.finishSending()
        #expect(try await replies.next() == nil)

        let failure = await #expect(throws: GRPCStatus.self) {
            _ = try await client.unary(path: "/test.Echo/Fail", request: buffer(""))
        }
        #expect(failure == GRPCStatus(.failedPrecondition, "nöpe ✓"))
        let unknown = await #expect(throws: GRPCStatus.self) {
            _ = try await client.unary(path: "/test.Echo/Nope", request: buffer(""))
        }
        #expect(unknown?.code == .unimplemented)
        await client.close()
        try? stdin.fileHandleForWriting.close()
        try await offPool { process.waitUntilExit() }
    }

    /// Runs blocking work (pipes, waiting for a child) on its own thread: blocking one of the
    /// few cooperative threads would starve the server's handler tasks.
    private func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    private func runPython(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.scripts.appendingPathComponent(arguments[0]).path]
            + arguments.dropFirst()
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
