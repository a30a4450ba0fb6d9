import NIOCore
import Testing
@testable import SluiceWire

@Suite(.timeLimit(.minutes(2))) struct CancellationTests {
    /// A handler that waits until cancelled and records that it saw the cancellation.
    static func waitingForever(started: Signal, cancelled: Signal) -> GRPCMethod {
        .bidirectional("/test.Wait/Forever") { requests, _, _ in
            await started.fire()
            do {
                for try await _ in requests {}
                try await Task.sleep(for: .seconds(3600))  // awaits cancellation, not a timing
            } catch {
                if Task.isCancelled { await cancelled.fire() }
                throw error
            }
        }
    }

    @Test func serverEnforcesTheDeadline() async throws {
        let started = Signal()
        let cancelled = Signal()
        // Bidirectional, so the handler body runs even if the deadline expires before its task
        // is scheduled (a unary wrapper would fail reading the request and skip the body).
        let methods = [
            GRPCMethod.bidirectional("/test.Wait/Unary") { _, _, _ in
                await started.fire()
                do {
                    try await Task.sleep(for: .seconds(3600))
                } catch {
                    if Task.isCancelled { await cancelled.fire() }
                    throw error
                }
            }
        ]
        try await withServerAndClient(methods, configureClient: { $0.enforcesDeadlineLocally = false }) {
            _, client in
            let error = await #expect(throws: GRPCStatus.self) {
                _ = try await client.unary(path: "/test.Wait/Unary", request: buffer(""), timeout: .milliseconds(100))
            }
            #expect(error?.code == .deadlineExceeded)
            await cancelled.wait()  // the handler's task observed cancellation
            // The context carried the deadline and the connection still works.
            let error2 = await #expect(throws: GRPCStatus.self) {
                _ = try await client.unary(path: "/test.Wait/Unary", request: buffer(""), timeout: .milliseconds(50))
            }
            #expect(error2?.code == .deadlineExceeded)
        }
    }

    @Test func clientEnforcesItsDeadlineLocally() async throws {
        let started = Signal()
        let cancelled = Signal()
        try await withServerAndClient([Self.waitingForever(started: started, cancelled: cancelled)]) { _, client in
            let call = try await client.makeCall(path: "/test.Wait/Forever", timeout: .milliseconds(100))
            let error = await #expect(throws: GRPCStatus.self) {
                for try await _ in call.responses {}
            }
            #expect(error?.code == .deadlineExceeded)
            await cancelled.wait()
        }
    }

    @Test func clientCancelReachesTheHandler() async throws {
        let started = Signal()
        let cancelled = Signal()
        try await withServerAndClient([Self.waitingForever(started: started, cancelled: cancelled)]) { _, client in
            let call = try await client.makeCall(path: "/test.Wait/Forever")
            try await call.send(buffer("hello"))
            await started.wait()
            call.cancel()
            let error = await #expect(throws: GRPCStatus.self) {
                for try await _ in call.responses {}
            }
            #expect(error?.code == .cancelled)
            await cancelled.wait()
            let sendError = await #expect(throws: GRPCStatus.self) { try await call.send(buffer("after")) }
            #expect(sendError?.code == .cancelled)
        }
    }

    @Test func cancellingTheCallersTaskCancelsTheCall() async throws {
        let started = Signal()
        let cancelled = Signal()
        try await withServerAndClient([Self.waitingForever(started: started, cancelled: cancelled)]) { _, client in
            let call = try await client.makeCall(path: "/test.Wait/Forever")
            let reader = Task {
                for try await _ in call.responses {}
            }
            await started.wait()
            reader.cancel()
            await #expect(throws: GRPCStatus.self) { try await reader.value }
            await cancelled.wait()
        }
    }

    @Test func disconnectCancelsTheHandler() async throws {
        let started = Signal()
        let cancelled = Signal()
        try await withServerAndClient([Self.waitingForever(started: started, cancelled: cancelled)]) { _, client in
            let call = try await client.makeCall(path: "/test.Wait/Forever")
            try await call.send(buffer("x"))
            await started.wait()
            await client.close()
            await cancelled.wait()
            let error = await #expect(throws: GRPCStatus.self) { for try await _ in call.responses {} }
            #expect(error?.code == .unavailable)
        }
    }
}
