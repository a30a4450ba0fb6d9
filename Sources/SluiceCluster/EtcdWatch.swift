public import NIOCore
public import SluiceAPI
import SluiceWire

/// The changes of one key or range in etcd, as an `AsyncSequence` of events from a known
/// revision on, each exactly once and in revision order, across lost connections.
///
/// Each iterator opens its own Watch stream (`proto/etcd/etcdserverpb/watch.proto`). When
/// the stream breaks (the member died, restarted, lost its leader, or answered nothing in
/// time), the iterator reconnects (to the next endpoint; `EtcdConnector`) and creates the
/// watcher again from the revision after the last event it received, so nothing is missed
/// and nothing repeated:
///
/// - etcd sends a revision's events in one response (fragmenting is never asked for), so
///   after a whole response the next revision not received is the last event's + 1;
/// - any event of a revision below that (a member behind its cluster could send one) is
///   dropped rather than repeated.
///
/// Progress notifications do not move the resume point: in etcd before 3.4.26 a progress
/// notification's revision could run ahead of events not yet sent (etcd issue 15220).
///
/// Ends by throwing `EtcdWatchError`: `.compacted` when the history from the next revision
/// on is gone (the consumer must read the current state again and watch from there),
/// `.cancelled` when etcd cancels the watcher for another reason, `.unreachable` when no
/// endpoint could be watched for `Options.reconnectFor`; `CancellationError` when the
/// consuming task is cancelled.
public struct EtcdWatch: AsyncSequence, Sendable {
    public typealias Element = EtcdEvent

    static let path = "/etcdserverpb.Watch/Watch"

    public struct Options: Sendable {
        /// Attach each event's previous key-value pair (absent when compacted away).
        public var prevKV = false
        /// How long reconnecting may fail, from the moment the stream broke, before the
        /// watch gives up with `.unreachable`.
        public var reconnectFor = ClusterLimits.defaults.watchReconnectFor.value

        public init() {}
    }

    let connector: EtcdConnector
    public let key: ByteBuffer
    public let rangeEnd: ByteBuffer
    /// The first revision whose events are delivered; 0 means from the revision after the
    /// one current when the watcher is first created.
    public let startRevision: Int64
    public let options: Options

    public init(connector: EtcdConnector, key: ByteBuffer, rangeEnd: ByteBuffer = ByteBuffer(), startRevision: Int64,
                options: Options = Options()) {
        precondition(key.readableBytes > 0, "etcd keys are never empty")
        precondition(startRevision >= 0, "revisions are never negative")
        self.connector = connector
        self.key = key
        self.rangeEnd = rangeEnd
        self.startRevision = startRevision
        self.options = options
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(cursor: Cursor(watch: self))
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let cursor: Cursor

        public mutating func next() async throws -> EtcdEvent? {
            try await cursor.next()
        }

        /// The first revision not yet received: where a new watch would resume.
        public var nextRevision: Int64 { cursor.nextRevision }

        /// Whether events of the last response are still to be handed out. False after the
        /// last event of a response: every event of its revisions has been handed out (etcd
        /// sends a revision whole), so a consumer can publish a state that shows no
        /// transaction half-applied.
        public var hasBufferedEvents: Bool { cursor.hasBufferedEvents }
    }

    /// One iterator's state: its stream, the events of the last response not yet handed
    /// out, and the resume point. Owned by one iterator, used by one task at a time.
    final class Cursor {
        let watch: EtcdWatch
        private(set) var nextRevision: Int64
        private var pending: [EtcdEvent] = []
        private var pendingIndex = 0
        private var stream: (call: GRPCClientCall, connection: GRPCClientConnection)?
        /// When the last stream broke; nil while one is open.
        private var brokenSince: ContinuousClock.Instant?
        private var lastProblem = ""
        private var finished = false

        init(watch: EtcdWatch) {
            self.watch = watch
            nextRevision = watch.startRevision
        }

        var hasBufferedEvents: Bool { pendingIndex < pending.count }

        deinit {
            stream?.call.cancel()
        }

        func next() async throws -> EtcdEvent? {
            while true {
                if pendingIndex < pending.count {
                    defer { pendingIndex += 1 }
                    return pending[pendingIndex]
                }
                pending.removeAll(keepingCapacity: true)
                pendingIndex = 0
                if finished { return nil }
                do {
                    try Task.checkCancellation()
                    if stream == nil { try await open() }
                    try await receive()
                } catch {
                    finished = true
                    stream?.call.cancel()
                    stream = nil
                    throw Task.isCancelled ? CancellationError() : error
                }
            }
        }

        /// Opens a stream and creates the watcher from `nextRevision`, retrying with a
        /// growing pause until `reconnectFor` has passed since the last stream broke.
        private func open() async throws {
            var pause = Duration.milliseconds(50)
            while true {
                do {
                    try await create()
                    brokenSince = nil
                    return
                } catch let problem as Disconnected {
                    try Task.checkCancellation()
                    lastProblem = problem.description
                    let since = brokenSince ?? .now
                    brokenSince = since
                    guard ContinuousClock.now - since < watch.options.reconnectFor else {
                        throw EtcdWatchError.unreachable(for: watch.options.reconnectFor, lastProblem: lastProblem)
                    }
                    // A pause between attempts at a member that is restarting or gone.
                    try await Task.sleep(for: pause)
                    pause = Swift.min(pause * 2, .seconds(1))
                }
            }
        }

        private func create() async throws {
            let opened: (call: GRPCClientCall, connection: GRPCClientConnection)
            do {
                opened = try await watch.connector.openStream(EtcdWatch.path)
            } catch let status as GRPCStatus where Disconnected.covers(status) {
                throw Disconnected("\(status)")
            }
            let (call, connection) = opened
            do {
                let create = EtcdWatchCreateRequest(
                    key: watch.key, rangeEnd: watch.rangeEnd, startRevision: nextRevision, prevKv: watch.options.prevKV)
                try await call.send(EtcdWatchRequest(requestUnion: .createRequest(create)).protobufBytes())
                let deadline = ContinuousClock.now + watch.connector.configuration.requestTimeout
                let answer = try await untilDeadline(deadline) {
                    var responses = call.responses.makeAsyncIterator()
                    return try await responses.next()
                }
                guard let answer else { throw Disconnected("etcd did not confirm the watcher in time") }
                guard let bytes = answer else { throw Disconnected("etcd ended the watch stream") }
                let response = try Self.decode(bytes)
                if response.canceled { throw cancellation(response) }
                guard response.created else {
                    throw GRPCStatus(.internalError, "etcd's first watch response did not confirm the watcher")
                }
                if nextRevision == 0 { nextRevision = (response.header?.revision ?? 0) + 1 }
                stream = (call, connection)
            } catch {
                call.cancel()
                if let status = error as? GRPCStatus, Disconnected.covers(status) {
                    await watch.connector.failed(connection)
                    throw Disconnected("\(status)")
                }
                if error is Disconnected { await watch.connector.failed(connection) }
                throw error
            }
        }

        /// Reads one response into `pending`; a broken stream is dropped for `open` to
        /// replace on the next call.
        private func receive() async throws {
            guard let (call, connection) = stream else { preconditionFailure("receive needs an open stream") }
            do {
                var responses = call.responses.makeAsyncIterator()
                guard let bytes = try await responses.next() else { throw Disconnected("etcd ended the watch stream") }
                let response = try Self.decode(bytes)
                if response.canceled { throw cancellation(response) }
                // Progress notifications (no events) say nothing this watch relies on.
                let fresh = response.events.filter { ($0.kv?.modRevision ?? 0) >= nextRevision }
                if let last = fresh.last?.kv?.modRevision {
                    pending = fresh
                    nextRevision = last + 1
                }
            } catch {
                let disconnected: Bool
                if let status = error as? GRPCStatus { disconnected = Disconnected.covers(status) } else { disconnected = error is Disconnected }
                guard disconnected, !Task.isCancelled else { throw error }
                call.cancel()
                stream = nil
                brokenSince = .now
                lastProblem = "\(error)"
                await watch.connector.failed(connection)
            }
        }

        private func cancellation(_ response: EtcdWatchResponse) -> EtcdWatchError {
            if response.compactRevision > 0 {
                return .compacted(requested: nextRevision, oldestKept: response.compactRevision)
            }
            return .cancelled(reason: response.cancelReason.isEmpty ? "no reason given" : response.cancelReason)
        }

        private static func decode(_ bytes: ByteBuffer) throws -> EtcdWatchResponse {
            do {
                return try EtcdWatchResponse(protobuf: bytes)
            } catch {
                throw GRPCStatus(.internalError, "a watch response from etcd is not valid protobuf: \(error)")
            }
        }
    }

    /// A stream that broke in a way another attempt may get past.
    struct Disconnected: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }

        /// The statuses of a lost connection or member rather than of a refused request:
        /// UNAVAILABLE (connection lost, no leader), CANCELLED (reset by the peer or by a
        /// connection closing), UNKNOWN (a stream ended without a status).
        /// A client closed on purpose ends its watches instead.
        static func covers(_ status: GRPCStatus) -> Bool {
            status != EtcdConnector.closedStatus
                && [.unavailable, .cancelled, .unknown, .deadlineExceeded].contains(status.code)
        }
    }
}

/// Why an `EtcdWatch` ended.
public enum EtcdWatchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The history from `requested` on is gone: etcd compacted it up to `oldestKept`.
    case compacted(requested: Int64, oldestKept: Int64)
    /// etcd cancelled the watcher for another reason.
    case cancelled(reason: String)
    /// No endpoint could be watched for this long after the stream broke.
    case unreachable(for: Duration, lastProblem: String)

    public var description: String {
        switch self {
        case .compacted(let requested, let oldestKept):
            "revision \(requested) is gone: etcd compacted its history up to revision \(oldestKept); read the current state again and watch from there"
        case .cancelled(let reason):
            "etcd cancelled the watch: \(reason)"
        case .unreachable(let duration, let lastProblem):
            "no etcd endpoint could be watched for \(duration): \(lastProblem)"
        }
    }
}
