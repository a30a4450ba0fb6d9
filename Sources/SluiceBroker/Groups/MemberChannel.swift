public import SluiceAPI
import Synchronization

/// The coordinator's side of one member's Join stream: a bounded queue of messages to
/// send, and how the stream ends. The coordinator pushes while holding its lock (never
/// waiting); the service's writer task pulls and writes to the wire. A member that does
/// not read lets the queue fill, and `push` refusing is the coordinator's cue to expire
/// it, so a stalled member costs at most `capacity` messages.
public final class MemberChannel: Sendable {
    /// How a member's stream ends.
    public enum Ending: Sendable, Equatable {
        /// The member left (LeaveGroup or half-close): the stream ends OK.
        case left
        /// The member lost its membership; the stream ends with FAILED_PRECONDITION and
        /// this text (session expired, fenced by a newer instance, not reading).
        case expelled(String)
        /// The broker is shutting down (UNAVAILABLE).
        case shutdown
    }

    public enum Item: Sendable, Equatable {
        case message(CoordinatorMessage)
        case end(Ending)
    }

    private struct State {
        var queue: [CoordinatorMessage] = []
        var ending: Ending?
        var waiter: CheckedContinuation<Item, Never>?
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int) {
        precondition(capacity >= 1, "a member channel needs room for one message")
        self.capacity = capacity
    }

    /// Queues a message; false when the queue is full (the member is not reading). After
    /// the channel ended, messages are dropped (and true returned: nothing to expire).
    @discardableResult
    func push(_ message: CoordinatorMessage) -> Bool {
        let (accepted, waiter) = state.withLock { s -> (Bool, CheckedContinuation<Item, Never>?) in
            guard s.ending == nil else { return (true, nil) }
            if let waiter = s.waiter {
                s.waiter = nil
                return (true, waiter)
            }
            guard s.queue.count < capacity else { return (false, nil) }
            s.queue.append(message)
            return (true, nil)
        }
        waiter?.resume(returning: .message(message))
        return accepted
    }

    /// Ends the stream once the queued messages are sent (for `.left`) or at once
    /// (otherwise: an expelled member is told why without delay). The first ending wins.
    func end(_ ending: Ending) {
        let waiter = state.withLock { s -> CheckedContinuation<Item, Never>? in
            guard s.ending == nil else { return nil }
            s.ending = ending
            if ending != .left { s.queue.removeAll() }
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: .end(ending))
    }

    /// How the stream ended, nil while it runs.
    public var ending: Ending? { state.withLock { $0.ending } }

    /// The next message to send, or the ending once the queue is drained. One reader.
    /// Cancelling the reader ends the channel as `.shutdown`.
    public func next() async -> Item {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Item, Never>) in
                let ready = state.withLock { s -> Item? in
                    if !s.queue.isEmpty { return .message(s.queue.removeFirst()) }
                    if let ending = s.ending { return .end(ending) }
                    precondition(s.waiter == nil, "a member channel has one reader")
                    s.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            end(.shutdown)
        }
    }

    /// Takes every queued message without waiting (tests of the state machine).
    public func drain() -> [CoordinatorMessage] {
        state.withLock { s in
            defer { s.queue.removeAll() }
            return s.queue
        }
    }
}
