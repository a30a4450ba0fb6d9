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
