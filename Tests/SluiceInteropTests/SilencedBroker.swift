import Foundation
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The two ways a broker goes silent without closing anything, for the client's deadline
/// tests: every wait a user can hit must end by its own deadline (or cancellation) in both.
enum Silence: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// SIGSTOP: the kernel still accepts connections into the backlog and buffers what is
    /// sent until the windows fill; the process answers nothing.
    case frozenBroker
    /// A proxy that reads everything and forwards nothing (`StallingProxy`).
    case stalledProxy

    var testDescription: String { rawValue }
}

/// A broker with topic "orders" (1 partition), reached directly or through a
/// `StallingProxy`; `silence()` makes it stop answering. `end()` resumes and removes it.
final class SilenceableBroker: @unchecked Sendable {
    // @unchecked: used by one test task at a time.
    let broker: BrokerProcess
    let proxy: StallingProxy?
    let kind: Silence

    init(_ kind: Silence, stallAtServerHeaders: Bool = false) async throws {
        self.kind = kind
        broker = try await BrokerProcess()
        do {
            try await broker.createTopic("orders", partitions: 1)
            proxy = kind == .stalledProxy ? try StallingProxy(upstreamPort: broker.port, stallAtServerHeaders: stallAtServerHeaders) : nil
        } catch {
            await broker.remove()
            throw error
        }
    }

    /// Where clients connect; a connect attempt gives up after `connectTimeout`.
    func address(connectTimeout: Duration = .seconds(1)) -> BrokerAddress {
        var address = BrokerAddress(host: "127.0.0.1", port: proxy?.port ?? broker.port)
        address.connectTimeout = connectTimeout
        return address
    }

    /// Returns once the broker answers nothing more: SIGSTOP is delivered asynchronously, so
    /// a frozen broker is waited for until the kernel reports it stopped.
    func silence() async throws {
        switch kind {
        case .frozenBroker:
            guard let pid = broker.process?.processIdentifier else { throw TestProcessError("no broker process") }
            kill(pid, SIGSTOP)
            try await eventually("the broker to be stopped") { Self.isStopped(pid) }
        case .stalledProxy:
            proxy?.stall()
        }
    }

    /// /proc/PID/stat: "pid (comm) state ...", state T when stopped by a signal. comm may
    /// hold spaces and parentheses, so the state is read after the last ')'.
    static func isStopped(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first == "T"
    }

    func end() async {
        if let pid = broker.process?.processIdentifier { kill(pid, SIGCONT) }
        proxy?.stop()
        await broker.remove()
    }
}

/// Runs `body` against a fresh silenceable broker and removes it whatever happened.
func withSilenceableBroker(
    _ kind: Silence, stallAtServerHeaders: Bool = false, _ body: (SilenceableBroker) async throws -> Void
) async throws {
    let broker = try await SilenceableBroker(kind, stallAtServerHeaders: stallAtServerHeaders)
    do {
        try await body(broker)
    } catch {
        await broker.end()
        throw error
    }
    await broker.end()
}

/// `body`'s error, for expectations on errors with associated values.
func thrownError(_ body: () async throws -> Void) async -> (any Error)? {
    do {
        try await body()
        return nil
    } catch {
        return error
    }
}
