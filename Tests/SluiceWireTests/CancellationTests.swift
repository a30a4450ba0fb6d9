import NIOCore
import Testing
@testable import SluiceWire

@Suite(.timeLimit(.minutes(2))) struct CancellationTests {
    /// What a test learns from its waiting handler: that the handler's body ran, and that
    /// it saw its task cancelled.
    struct HandlerSignals {
        let started = Signal()
        let cancelled = Signal()

        /// The body of a handler that waits until cancelled: fires `started`, runs `first`,
        /// then sleeps until cancellation ends the sleep (it awaits cancellation, it is not a
        /// timing), firing `cancelled` when it does.
        func untilCancelled(after first: () async throws -> Void = {}) async throws {
            await started.fire()
            do {
                try await first()
                try await Task.sleep(for: .seconds(3600))
            } catch {
                if Task.isCancelled { await cancelled.fire() }
                throw error
            }
        }
    }

    /// Runs `body` with a client of a server whose one method, /test.Wait/Forever, reads
    /// its requests and then waits until cancelled.
    func withWaitingServer(_ body: (GRPCClientConnection, HandlerSignals) async throws -> Void) async throws {
        let signals = HandlerSignals()
        let method = GRPCMethod.bidirectional("/test.Wait/Forever") { requests, _, _ in
            try await signals.untilCancelled { for try await _ in requests {} }
        }
        try await withServerAndClient([method]) { _, client in try await body(client, signals) }
    }

    /// The status `call`'s responses end with; an issue where they end without one.
    func endingStatus(of call: GRPCClientCall, sourceLocation: SourceLocation = #_sourceLocation) async -> GRPCStatus? {
        await #expect(throws: GRPCStatus.self, sourceLocation: sourceLocation) { for try await _ in call.responses {} }
    }

    @Test func serverEnforcesTheDeadline() async throws {
        let signals = HandlerSignals()
        // Bidirectional, so the handler body runs even if the deadline expires before its task
        // is scheduled (a unary wrapper would fail reading the request and skip the body).
        let methods = [GRPCMethod.bidirectional("/test.Wait/Unary") { _, _, _ in try await signals.untilCancelled() }]
        try await withServerAndClient(methods, configureClient: { $0.enforcesDeadlineLocally = false }) {
            _, client in
            let error = await #expect(throws: GRPCStatus.self) {
                _ = try await client.unary(path: "/test.Wait/Unary", request: buffer(""), timeout: .milliseconds(100))
            }
            #expect(error?.code == .deadlineExceeded)
            await signals.cancelled.wait()  // the handler's task observed cancellation
            // The context carried the deadline and the connection still works.
            let error2 = await #expect(throws: GRPCStatus.self) {
                _ = try await client.unary(path: "/test.Wait/Unary", request: buffer(""), timeout: .milliseconds(50))
            }
            #expect(error2?.code == .deadlineExceeded)
        }
    }

    @Test func clientEnforcesItsDeadlineLocally() async throws {
        try await withWaitingServer { client, handler in
            let call = try await client.makeCall(path: "/test.Wait/Forever", timeout: .milliseconds(100))
            #expect(await endingStatus(of: call)?.code == .deadlineExceeded)
            await handler.cancelled.wait()
        }
    }

    @Test func clientCancelReachesTheHandler() async throws {
        try await withWaitingServer { client, handler in
            let call = try await client.makeCall(path: "/test.Wait/Forever")
            try await call.send(buffer("hello"))
            await handler.started.wait()
            call.cancel()
            #expect(await endingStatus(of: call)?.code == .cancelled)
            await handler.cancelled.wait()
            let sendError = await #expect(throws: GRPCStatus.self) { try await call.send(buffer("after")) }
            #expect(sendError?.code == .cancelled)
        }
    }

    @Test func cancellingTheCallersTaskCancelsTheCall() async throws {
        try await withWaitingServer { client, handler in
            let call = try await client.makeCall(path: "/test.Wait/Forever")
            let reader = Task {
                for try await _ in call.responses {}
            }
            await handler.started.wait()
            reader.cancel()
            await #expect(throws: GRPCStatus.self) { try await reader.value }
            await handler.cancelled.wait()
        }
    }

    @Test func disconnectCancelsTheHandler() async throws {
        try await withWaitingServer { client, handler in
            let call = try await client.makeCall(path: "/test.Wait/Forever")
            try await call.send(buffer("x"))
            await handler.started.wait()
            await client.close()
            await handler.cancelled.wait()
            #expect(await endingStatus(of: call)?.code == .unavailable)
        }
    }
}
