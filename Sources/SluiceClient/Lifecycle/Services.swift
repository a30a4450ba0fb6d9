import Logging
public import ServiceLifecycle

/// A `Producer` in a `ServiceGroup` (swift-service-lifecycle): `run()` keeps it open until
/// the group shuts down gracefully (SIGTERM, another service ending), then closes it: what
/// is buffered is flushed within the delivery timeouts, the stream and connection are
/// closed. When the group cancels instead, the close fails what is still unanswered at
/// once. The producer is used from other services meanwhile, as usual.
extension Producer: Service {
    public func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            // Cancelled: close at once, then report the cancellation as ServiceGroup expects.
            await close(timeout: .zero)
            throw error
        }
        await close()
    }
}

/// A `GroupConsumer` with its handler, as a `Service` for a `ServiceGroup`: `run()` joins
/// the group and hands batches to the handler; a graceful shutdown lets the batch in the
/// handler finish, commits as the delivery setting says and leaves the group, then `run()`
/// returns. A GroupConsumer is not a Service itself because its `run` needs the handler.
///
/// ```swift
/// let group = ServiceGroup(
///     services: [consumer.service { batch in try await handle(batch) }],
///     gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
public struct GroupConsumerService: Service {
    public let consumer: GroupConsumer
    let handler: @Sendable (GroupBatch) async throws -> Void

    public init(_ consumer: GroupConsumer, handler: @escaping @Sendable (GroupBatch) async throws -> Void) {
        self.consumer = consumer
        self.handler = handler
    }

    public func run() async throws {
        let consumer = consumer
        try await withGracefulShutdownHandler {
            try await consumer.run(handler)
        } onGracefulShutdown: {
            Task { [counted = ClientTasks.begin()] in
                defer { counted.end() }
                await consumer.close()
            }
        }
    }
}

extension GroupConsumer {
    /// This consumer with `handler`, as a `Service` (`GroupConsumerService`).
    public nonisolated func service(_ handler: @escaping @Sendable (GroupBatch) async throws -> Void) -> GroupConsumerService {
        GroupConsumerService(self, handler: handler)
    }
}
