/// The result of `operation`, or nil once `deadline` has passed without one; then
/// `operation` is cancelled and awaited. Only for operations that end promptly when
/// cancelled (a read of a gRPC stream resets the stream).
///
/// How the etcd clients notice a member that stopped answering on a stream that is still
/// open (a frozen process keeps its TCP connection): a renewal or a watcher's creation
/// that does not arrive in time is a lost connection.
func untilDeadline<Value: Sendable>(
    _ deadline: ContinuousClock.Instant, _ operation: @escaping @Sendable () async throws -> Value
) async throws -> Value? {
    try await withThrowingTaskGroup(of: Value?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            // A timer, not synchronisation: the deadline is the caller's.
            try? await Task.sleep(until: deadline, clock: .continuous)
            return nil
        }
        defer { group.cancelAll() }
        // The first child to finish decides: a value, a timeout (nil), or an error.
        guard let first = try await group.next() else { return nil }
        return first
    }
}
