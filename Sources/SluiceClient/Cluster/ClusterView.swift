import Logging
import SluiceAPI
import SluiceWire
import Synchronization

/// A client's `ClusterMetadata`, fetched with the Metadata RPC from any live broker and
/// refreshed when the client finds it wrong: NOT_LEADER, a subscription ended "not leader",
/// a lost connection, a partition it has no leader for.
///
/// Refreshes are bounded: one runs at a time (later requests join it), none starts sooner
/// than `minimumInterval` after the previous one started (a client told NOT_LEADER by every
/// batch asks once per interval, not once per batch), and each asks the known brokers and
/// then the bootstrap list in turn, each try bounded by its connect timeout and
/// `requestTimeout`.
package final class ClusterView: Sendable {
    package let bootstrap: [BrokerAddress]
    let requestTimeout: Duration
    let logger: Logger

    private struct State {
        var metadata = ClusterMetadata()
        var policy: MetadataRefreshPolicy
        var running: Task<Void, Never>?
        var refreshes = 0
        /// The number (`refreshes` at its start) of the last fetch that ended.
        var completed = 0
        var version = 0

        mutating func changed(_ change: (inout ClusterMetadata) -> Void) {
            let before = metadata
            change(&metadata)
            if metadata != before { version += 1 }
        }
    }

    private let state: Mutex<State>

    /// Kafka's `retry.backoff.ms` floor for metadata requests.
    package static let defaultMinimumInterval: Duration = .milliseconds(100)

    package init(bootstrap: [BrokerAddress], minimumInterval: Duration = defaultMinimumInterval,
                 requestTimeout: Duration, logger: Logger) {
        precondition(!bootstrap.isEmpty, "a client needs at least one bootstrap broker")
        self.bootstrap = bootstrap
        state = Mutex(State(policy: MetadataRefreshPolicy(minimumInterval: minimumInterval)))
        self.requestTimeout = requestTimeout
        self.logger = logger
    }

    deinit {
        state.withLock { $0.running?.cancel() }
    }

    package var metadata: ClusterMetadata { state.withLock { $0.metadata } }

    /// Bumped on every change of the metadata, so a client can act once per change.
    package var version: Int { state.withLock { $0.version } }

    /// Metadata requests sent so far (each refresh counts once, whichever broker answered).
    package var refreshCount: Int { state.withLock { $0.refreshes } }

    /// Where `place`'s leader is reached, with the bootstrap brokers' transport settings;
    /// nil when no answer named one yet.
    package func leader(of place: TopicPartition) -> BrokerAddress? {
        guard let address = state.withLock({ $0.metadata.leader(of: place) }) else { return nil }
        return broker(at: address)
    }

    /// The bootstrap entry written `address` (its own settings), else one with theirs.
    package func broker(at address: String) -> BrokerAddress? {
        bootstrap.first { $0.description == address } ?? BrokerAddress(hostPort: address, settings: bootstrap[0])
    }

    /// Takes a NOT_LEADER answer's hint if its epoch is newer; true when the leader moved.
    package func adopt(_ hint: LeaderHint, at place: TopicPartition) -> Bool {
        state.withLock { state in
            var moved = false
            state.changed { moved = $0.adopt(hint, at: place) }
            return moved
        }
    }

    /// Starts a refresh unless one is under way, without waiting for it.
    package func requestRefresh(reason: String) {
        _ = refreshTask(reason: reason)
    }

    /// Waits for a fetch that starts after this call (joining one still waiting for its
    /// turn, or following the one under way with another: an answer read before what the
    /// caller saw, a "not leader" say, cannot tell it anything new); a cancelled caller
    /// stops waiting at once, the refresh goes on for the others.
    package func refresh(reason: String) async throws {
        let seen = state.withLock { $0.refreshes }
        while state.withLock({ $0.completed <= seen }) {
            let task = refreshTask(reason: reason)
            try await firstOf(within: nil, timeoutError: CancellationError()) { await task.value }
        }
    }

    private func refreshTask(reason: String) -> Task<Void, Never> {
        let fetch = MetadataFetch(requestTimeout: requestTimeout, logger: logger)
        return state.withLock { state in
            if let running = state.running { return running }
            let notBefore = state.policy.earliestStart(now: .now)
            let candidates = Self.candidates(known: state.metadata, bootstrap: bootstrap)
            let task = Task { [weak self, counted = ClientTasks.begin()] in
                defer { counted.end() }
                // A timer, not synchronisation: the floor between two metadata requests.
                try? await Task.sleep(until: notBefore, clock: .continuous)
                guard !Task.isCancelled, self?.markStarted() != nil else { return }
                let answer = await fetch.first(of: candidates, reason: reason)
                self?.finished(answer)
            }
            state.running = task
            return task
        }
    }

    private func markStarted() {
        state.withLock { state in
            state.policy.started(at: .now)
            state.refreshes += 1
        }
    }

    private func finished(_ answer: MetadataFetch.Answer?) {
        state.withLock { state in
            state.running = nil
            state.completed = state.refreshes
            switch answer {
            case .metadata(let response)?:
                var adopted = false
                state.changed { adopted = $0.adopt(response) }
                if !adopted {
                    logger.debug("kept the newer metadata", metadata: [
                        "held": "\(state.metadata.revision ?? -1)", "answered": "\(response.metadataRevision)"])
                }
            case .singleNode(let address)?: state.changed { $0.adoptSingleNode(address) }
            case nil: break
            }
        }
    }

    /// The brokers of the last answer first (they are the cluster now), then the bootstrap
    /// list, each once.
    private static func candidates(known: ClusterMetadata, bootstrap: [BrokerAddress]) -> [BrokerAddress] {
        var seen = Set<String>()
        let learned = known.brokers.sorted { $0.key < $1.key }.compactMap { BrokerAddress(hostPort: $0.value, settings: bootstrap[0]) }
        let single = known.singleNode.flatMap { address in bootstrap.first { $0.description == address } }
        return ([single].compactMap { $0 } + learned + bootstrap).filter { seen.insert($0.description).inserted }
    }
}

/// One metadata request: the first broker of a list that answers Metadata.
struct MetadataFetch: Sendable {
    enum Answer: Sendable {
        case metadata(MetadataResponse)
        /// A single node (`cluster` empty), or a broker older than the Metadata RPC
        /// (UNIMPLEMENTED): the broker answering leads everything.
        case singleNode(String)
    }

    static let path = "/sluice.v1.Broker/Metadata"

    let requestTimeout: Duration
    let logger: Logger

    func first(of candidates: [BrokerAddress], reason: String) async -> Answer? {
        for broker in candidates {
            let connection: GRPCClientConnection
            do {
                connection = try await broker.connect(logger: logger)
            } catch {
                if Task.isCancelled { return nil }
                logger.debug("a broker did not answer; trying the next", metadata: ["broker": "\(broker)", "error": "\(error)"])
                continue
            }
            let answer: Answer?
            do {
                let response: MetadataResponse = try await connection.unary(
                    path: Self.path, request: MetadataRequest(), timeout: requestTimeout)
                logger.debug("cluster metadata refreshed", metadata: [
                    "reason": "\(reason)", "from": "\(broker)", "revision": "\(response.metadataRevision)"])
                // A single node names the address it listens on, a wildcard (0.0.0.0) say:
                // the address it was reached at is the one to keep using (docs/api.md).
                answer = response.cluster.isEmpty ? .singleNode(broker.description) : .metadata(response)
            } catch let status as GRPCStatus where status.code == .unimplemented {
                answer = .singleNode(broker.description)
            } catch {
                logger.debug("a broker did not answer Metadata; trying the next", metadata: [
                    "broker": "\(broker)", "error": "\(error)"])
                answer = nil
            }
            await connection.close()
            if let answer { return answer }
            if Task.isCancelled { return nil }
        }
        logger.warning("no broker answered Metadata", metadata: ["reason": "\(reason)"])
        return nil
    }
}

/// When a metadata request may start: not sooner than `minimumInterval` after the previous
/// one started, so a burst of NOT_LEADER answers costs one request per interval.
package struct MetadataRefreshPolicy: Sendable {
    package let minimumInterval: Duration
    package private(set) var lastStarted: ContinuousClock.Instant?

    package init(minimumInterval: Duration) {
        precondition(minimumInterval >= .zero, "a negative interval between metadata requests")
        self.minimumInterval = minimumInterval
    }

    package func earliestStart(now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        guard let lastStarted else { return now }
        return max(now, lastStarted.advanced(by: minimumInterval))
    }

    package mutating func started(at instant: ContinuousClock.Instant) {
        lastStarted = instant
    }
}
