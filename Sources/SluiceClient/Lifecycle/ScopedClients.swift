import Logging
import SluiceWire
import Synchronization

/// Runs `body` with a new `Producer` and closes it on every way out of `body`: when it
/// returns (a full close: what is buffered is flushed, bounded by `closeTimeout` or, when
/// nil, by the records' delivery timeouts), when it throws (the same close, then the error
/// is rethrown), and when the task is cancelled (the close fails what is still unanswered
/// at once with `ProducerError.closed`, as `close()` does in a cancelled task).
public func withProducer<Result>(
    address: BrokerAddress, configuration: ProducerConfiguration = ProducerConfiguration(),
    logger: Logger = Logger(label: "sluice.producer"), closeTimeout: Duration? = nil,
    _ body: (Producer) async throws -> Result
) async throws -> Result {
    let producer = Producer(address: address, configuration: configuration, logger: logger)
    let result: Result
    do {
        result = try await body(producer)
    } catch {
        await producer.close(timeout: closeTimeout)
        throw error
    }
    await producer.close(timeout: closeTimeout)
    return result
}

/// Runs `body` with a `Consumer` of `topic`; when `body` ends (returns, throws, or its task
/// is cancelled) every subscription opened by iterating the consumer inside it is closed
/// (its stream reset, its connection closed and waited for), and iterating it afterwards
/// ends at once (`next()` returns nil). Without the scope a subscription is closed when its
/// iterator is dropped.
public func withConsumer<Result>(
    address: BrokerAddress, topic: String, partitions: [Int: ConsumerStart]? = nil,
    defaultStart: ConsumerStart = .earliest, configuration: ConsumerConfiguration = ConsumerConfiguration(),
    logger: Logger = Logger(label: "sluice.consumer"),
    _ body: (Consumer) async throws -> Result
) async throws -> Result {
    let scope = ConsumerScope()
    let consumer = Consumer(
        bootstrap: [address], topic: topic, partitions: partitions, defaultStart: defaultStart,
        configuration: configuration, logger: logger, scope: scope)
    let result: Result
    do {
        result = try await body(consumer)
    } catch {
        await scope.close()
        throw error
    }
    await scope.close()
    return result
}

/// Runs a `GroupConsumer` with `handler` for as long as `body` runs: the member joins at
/// once, `body` gets it (for `commit()`, `events()`, `assignment`), and when `body` returns
/// the member is closed (the batch in the handler finishes, offsets are committed as
/// `delivery` says, the member leaves) before its result is returned. If `run` fails
/// (`GroupConsumerError`, the handler's error) `body` is cancelled and the error thrown; if
/// `body` throws, the member is closed and the error thrown; a cancelled task cancels both.
/// Nothing of the member is left running when this returns.
public func withGroupConsumer<Result: Sendable>(
    address: BrokerAddress, configuration: GroupConsumerConfiguration,
    logger: Logger = Logger(label: "sluice.group-consumer"),
    onEvent: @escaping @Sendable (RebalanceEvent) -> Void = { _ in },
    handler: @escaping @Sendable (GroupBatch) async throws -> Void,
    _ body: @escaping @Sendable (GroupConsumer) async throws -> Result
) async throws -> Result {
    let consumer = GroupConsumer(address: address, configuration: configuration, logger: logger, onEvent: onEvent)
    return try await withThrowingTaskGroup(of: Result?.self) { group in
        group.addTask {
            try await consumer.run(handler)
            return nil
        }
        group.addTask { try await body(consumer) }
        var result: Result?
        do {
            while let finished = try await group.next() {
                // `body` is done: the member stops, and `run` returns once it left.
                if let finished {
                    result = finished
                    await consumer.close()
                }
            }
        } catch {
            await consumer.close()
            group.cancelAll()
            // Both children end before the group returns: `run` leaves, `body` sees cancellation.
            while (try? await group.next()) != nil {}
            throw error
        }
        guard let result else {
            // `run` ended (someone called `close()`), and `body` was cancelled meanwhile.
            throw CancellationError()
        }
        return result
    }
}

/// The subscriptions of one `withConsumer` scope, closed together when it ends.
final class ConsumerScope: Sendable {
    private struct State {
        var closed = false
        var open: [ObjectIdentifier: GRPCClientConnection] = [:]
    }

    private let state = Mutex(State())

    var isClosed: Bool { state.withLock { $0.closed } }

    /// Adopts a subscription's connection; false (and the caller closes it) once the scope ended.
    func adopt(_ connection: GRPCClientConnection) -> Bool {
        state.withLock { state in
            guard !state.closed else { return false }
            state.open[ObjectIdentifier(connection)] = connection
            return true
        }
    }

    func release(_ connection: GRPCClientConnection) {
        _ = state.withLock { $0.open.removeValue(forKey: ObjectIdentifier(connection)) }
    }

    func close() async {
        let open = state.withLock { state in
            state.closed = true
            defer { state.open.removeAll() }
            return Array(state.open.values)
        }
        for connection in open { await connection.close() }
    }
}
