import Synchronization

/// Hands each `RebalanceEvent` to every stream made by `GroupConsumer.events()`, beside the
/// `onEvent` callback. Each stream keeps the newest `bufferedEvents` events its reader has
/// not taken yet (older ones are dropped: a reader that stops reading never holds the
/// consumer back); every stream finishes when `run` ends.
final class RebalanceEventFanOut: Sendable {
    static let bufferedEvents = 256

    private struct State {
        var finished = false
        var nextID = 0
        var streams: [Int: AsyncStream<RebalanceEvent>.Continuation] = [:]
    }

    private let state = Mutex(State())

    func stream() -> AsyncStream<RebalanceEvent> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: RebalanceEvent.self, bufferingPolicy: .bufferingNewest(Self.bufferedEvents))
        let id: Int? = state.withLock { state in
            guard !state.finished else { return nil }
            state.nextID += 1
            state.streams[state.nextID] = continuation
            return state.nextID
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.streams.removeValue(forKey: id) }
        }
        return stream
    }

    func yield(_ event: RebalanceEvent) {
        let streams = state.withLock { Array($0.streams.values) }
        for stream in streams { stream.yield(event) }
    }

    func finish() {
        let streams = state.withLock { state in
            state.finished = true
            defer { state.streams.removeAll() }
            return Array(state.streams.values)
        }
        for stream in streams { stream.finish() }
    }
}
