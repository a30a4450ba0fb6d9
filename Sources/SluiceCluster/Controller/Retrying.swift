import Logging
import SluiceWire

/// Runs `attempt` until it returns, with a pause after each failure that grows from 200 ms
/// to `ClusterLimits.retryPauseCap`: how a broker keeps asking an etcd that does not answer
/// (a member restarting, no leader yet) without hammering it. Nil once the calling task is
/// cancelled or the client was closed (it will never answer again).
func retryingUntilAnswered<Value: Sendable>(
    _ what: String, logger: Logger, _ attempt: () async throws -> Value
) async -> Value? {
    var pause = Duration.milliseconds(200)
    while !Task.isCancelled {
        do {
            return try await attempt()
        } catch let status as GRPCStatus where status == EtcdConnector.closedStatus {
            return nil
        } catch {
            if Task.isCancelled { return nil }
            logger.warning("\(what) failed; retrying", metadata: ["error": "\(error)"])
            // Pauses between attempts at an etcd that does not answer, growing to a cap.
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, ClusterLimits.defaults.retryPauseCap.value)
        }
    }
    return nil
}

/// `attempt`'s result, tried again after a transport failure (UNAVAILABLE, DEADLINE_EXCEEDED:
/// etcd may not have seen the request, or its answer was lost) up to `attempts` times in
/// all, with the pauses of `retryingUntilAnswered`; so `attempt` must read before it
/// writes. Anything else (etcd refused, the client is closed), or the last failure once
/// the attempts are spent, throws `.etcd`.
func retryingTransportFailures<Value: Sendable>(
    _ what: String, attempts: Int, _ attempt: () async throws -> Value
) async throws(ControllerError) -> Value {
    precondition(attempts > 0, "at least one attempt")
    var pause = Duration.milliseconds(200)
    for remaining in (0..<attempts).reversed() {
        do {
            return try await attempt()
        } catch let status as GRPCStatus
            where remaining > 0 && status != EtcdConnector.closedStatus && [.unavailable, .deadlineExceeded].contains(status.code)
        {
            // Pauses between attempts at an etcd that did not answer; bounded by `attempts`.
            try? await Task.sleep(for: pause)
            if Task.isCancelled { throw .etcd("\(what) was cancelled after \(status)") }
            pause = min(pause * 2, ClusterLimits.defaults.retryPauseCap.value)
        } catch {
            throw .etcd("\(what) failed: \(error)")
        }
    }
    preconditionFailure("the last attempt returns or throws")
}
