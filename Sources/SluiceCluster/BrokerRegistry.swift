public import Logging
import NIOCore
import SluiceAPI
import Synchronization

/// A broker as the cluster sees it: registered under its key, with its lease.
public struct RegisteredBroker: Sendable, Hashable, CustomStringConvertible {
    public var info: BrokerInfo
    /// The lease its key is attached to.
    public var lease: Int64
    /// The revision that created its key: a new value each time the broker registers (a
    /// restart, a re-registration after a lost lease), so it tells one incarnation from
    /// the next, as Kafka's broker epoch does.
    public var registrationRevision: Int64

    public var id: UInt32 { info.id }
    public var description: String { "\(info) (registered at revision \(registrationRevision))" }
}

/// The live brokers of a cluster, kept current by watching `/sluice/<cluster>/brokers/`
/// from the revision of an initial read: what the controller places replicas on and
/// watches for brokers that leave (a key deleted by an expired or revoked lease).
///
/// `snapshot` is the set as of a revision; `changes()` streams every change after it.
/// When the watch cannot resume (history compacted, etcd unreachable for the watch's
/// reconnect period), the registry reads the brokers again and reports the difference
/// as changes, so a subscriber's view stays the registry's.
public final class BrokerRegistry: Sendable {
    /// The live brokers as of `revision`.
    public struct Snapshot: Sendable, Equatable {
        public var brokers: [UInt32: RegisteredBroker]
        /// The etcd revision the set is current at.
        public var revision: Int64
    }

    /// One change of the live set, at an etcd revision.
    public enum Change: Sendable, Equatable {
        /// A broker registered (or registered again: a new `registrationRevision`).
        case joined(RegisteredBroker, revision: Int64)
        /// A live broker's info changed without it re-registering.
        case updated(RegisteredBroker, revision: Int64)
        /// A broker's key was deleted: its lease expired or was revoked.
        case left(id: UInt32, revision: Int64)
    }

    private struct State {
        var snapshot: Snapshot
        var subscribers: [Int: AsyncStream<Change>.Continuation] = [:]
        var nextSubscriber = 0
    }

    public let keys: ClusterKeys
    private let state: Mutex<State>
    private let watcher: Mutex<Task<Void, Never>?> = Mutex(nil)

    /// Reads the registered brokers, then keeps watching them until `stop()`. Throws
    /// `GRPCStatus` when the first read fails.
    public static func start(client: EtcdClient, keys: ClusterKeys, logger: Logger) async throws -> BrokerRegistry {
        let first = try await read(client: client, keys: keys, logger: logger)
        let registry = BrokerRegistry(keys: keys, snapshot: first)
        let task = Task { await registry.follow(client: client, logger: logger) }
        registry.watcher.withLock { $0 = task }
        return registry
    }

    private init(keys: ClusterKeys, snapshot: Snapshot) {
        self.keys = keys
        state = Mutex(State(snapshot: snapshot))
    }

    public var snapshot: Snapshot { state.withLock { $0.snapshot } }

    /// Every change after the snapshot current when this is called, in revision order,
    /// until `stop()`. Buffered without bound: broker changes are rare and small.
    public func changes() -> AsyncStream<Change> {
        subscribe().changes
    }

    /// The current set and every change after it, taken together so that nothing falls
    /// between them.
    public func subscribe() -> (snapshot: Snapshot, changes: AsyncStream<Change>) {
        let (stream, continuation) = AsyncStream<Change>.makeStream()
        let (id, snapshot) = state.withLock { state in
            defer { state.nextSubscriber += 1 }
            state.subscribers[state.nextSubscriber] = continuation
            return (state.nextSubscriber, state.snapshot)
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return (snapshot, stream)
    }

    /// Stops watching; every `changes()` stream finishes.
    public func stop() async {
        let task = watcher.withLock { $0 }
        task?.cancel()
        await task?.value
        let subscribers = state.withLock { state in
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }

    private func follow(client: EtcdClient, logger: Logger) async {
        while !Task.isCancelled {
            do {
                let watch = client.watch(prefix: keys.brokersPrefix, from: snapshot.revision + 1)
                for try await event in watch {
                    apply(event, logger: logger)
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("the broker watch ended; reading the brokers again", metadata: ["error": "\(error)"])
            }
            await reread(client: client, logger: logger)
        }
    }

    /// Reads the brokers again (retrying until etcd answers or the registry stops) and
    /// reports the difference from the current set.
    private func reread(client: EtcdClient, logger: Logger) async {
        var pause = Duration.milliseconds(200)
        while !Task.isCancelled {
            do {
                let fresh = try await Self.read(client: client, keys: keys, logger: logger)
                publish { snapshot in
                    var changes: [Change] = []
                    for (id, old) in snapshot.brokers where fresh.brokers[id]?.registrationRevision != old.registrationRevision {
                        changes.append(.left(id: id, revision: fresh.revision))
                    }
                    for (id, new) in fresh.brokers.sorted(by: { $0.key < $1.key }) {
                        let old = snapshot.brokers[id]
                        if old?.registrationRevision != new.registrationRevision {
                            changes.append(.joined(new, revision: fresh.revision))
                        } else if old != new {
                            changes.append(.updated(new, revision: fresh.revision))
                        }
                    }
                    snapshot = fresh
                    return changes
                }
                return
            } catch {
                logger.warning("reading the brokers failed; retrying", metadata: ["error": "\(error)"])
                // Pauses between attempts at an etcd that does not answer, growing to a cap.
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, ClusterLimits.defaults.retryPauseCap.value)
            }
        }
    }

    private func apply(_ event: EtcdEvent, logger: Logger) {
        guard let kv = event.kv, let id = keys.brokerID(of: kv.key) else { return }
        let revision = kv.modRevision
        publish { snapshot in
            snapshot.revision = max(snapshot.revision, revision)
            switch event.type {
            case .put:
                guard let broker = Self.broker(id: id, kv, logger: logger) else {
                    // Unreadable: not a live broker, whatever was there before.
                    return snapshot.brokers.removeValue(forKey: id) == nil ? [] : [.left(id: id, revision: revision)]
                }
                let old = snapshot.brokers.updateValue(broker, forKey: id)
                if let old, old.registrationRevision == broker.registrationRevision {
                    return [.updated(broker, revision: revision)]
                }
                return (old == nil ? [] : [.left(id: id, revision: revision)]) + [.joined(broker, revision: revision)]
            case .delete:
                return snapshot.brokers.removeValue(forKey: id) == nil ? [] : [.left(id: id, revision: revision)]
            case .unrecognized(let number):
                logger.warning("etcd event of unknown type \(number) ignored")
                return []
            }
        }
    }

    /// Applies `change` to the snapshot and hands its changes to every subscriber under
    /// the lock, so each subscriber sees changes in the order they were applied.
    private func publish(_ change: (inout Snapshot) -> [Change]) {
        state.withLock { state in
            for item in change(&state.snapshot) {
                for subscriber in state.subscribers.values { subscriber.yield(item) }
            }
        }
    }

    private static func read(client: EtcdClient, keys: ClusterKeys, logger: Logger) async throws -> Snapshot {
        let prefix = keys.brokersPrefix
        let response = try await client.kv.range(key: prefix, rangeEnd: EtcdKVClient.prefixEnd(of: prefix))
        var brokers: [UInt32: RegisteredBroker] = [:]
        for kv in response.kvs {
            guard let id = keys.brokerID(of: kv.key), let broker = broker(id: id, kv, logger: logger) else { continue }
            brokers[id] = broker
        }
        return Snapshot(brokers: brokers, revision: response.header?.revision ?? 0)
    }

    private static func broker(id: UInt32, _ kv: EtcdKeyValue, logger: Logger) -> RegisteredBroker? {
        guard let info = BrokerInfo(decoding: kv.value), info.id == id else {
            logger.warning("ignoring \(String(buffer: kv.key)): its value is not a BrokerInfo of that id")
            return nil
        }
        return RegisteredBroker(info: info, lease: kv.lease, registrationRevision: kv.createRevision)
    }
}
