import Logging
import NIOCore
import Synchronization
@testable import SluiceWire

/// A server with the given methods plus a client connected to it, torn down after `body`.
func withServerAndClient<R>(
    _ methods: [GRPCMethod],
    configure: (inout GRPCServerConfiguration) -> Void = { _ in },
    configureClient: (inout GRPCClientConfiguration) -> Void = { _ in },
    _ body: (GRPCServer, GRPCClientConnection) async throws -> R
) async throws -> R {
    var configuration = GRPCServerConfiguration(host: "127.0.0.1", port: 0)
    configure(&configuration)
    let server = GRPCServer(configuration: configuration, methods: methods, logger: testLogger("server"))
    let (host, port) = try await server.start()
    var clientConfiguration = GRPCClientConfiguration(host: host, port: port)
    configureClient(&clientConfiguration)
    let client = try await GRPCClientConnection.connect(clientConfiguration, logger: testLogger("client"))
    do {
        let result = try await body(server, client)
        await client.close()
        await server.shutdown()
        return result
    } catch {
        await client.close()
        await server.shutdown()
        throw error
    }
}

func testLogger(_ label: String) -> Logger {
    var logger = Logger(label: "sluice.wire.test.\(label)")
    logger.logLevel = .critical
    return logger
}

func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

func string(_ buffer: ByteBuffer) -> String { String(buffer: buffer) }

/// Opens a call to `path`, sends `requests` and ends the sending side: a server-streaming
/// or client-streaming call with everything said, its answers still to read.
func callSending(_ requests: [String], to path: String, on client: GRPCClientConnection) async throws -> GRPCClientCall {
    let call = try await client.makeCall(path: path)
    for request in requests { try await call.send(buffer(request)) }
    try await call.finishSending()
    return call
}

/// Every response message of `call`, as text, until the call ends; a call that ends with
/// an error status throws it after appending what arrived before it.
func readResponses(of call: GRPCClientCall, into received: inout [String]) async throws {
    for try await message in call.responses { received.append(string(message)) }
}

/// A one-shot signal between a handler and the test (no sleeps).
actor Signal {
    private var fired = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func fire() {
        fired = true
        for waiter in waiters { waiter.resume() }
        waiters.removeAll()
    }

    func wait() async {
        if fired { return }
        await withCheckedContinuation { waiters.append($0) }
    }
}

/// Collects values from handler tasks.
actor Box<Value: Sendable> {
    var value: Value
    init(_ value: Value) { self.value = value }
    func set(_ value: Value) { self.value = value }
    func update(_ change: @Sendable (inout Value) -> Void) { change(&value) }
}

final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
