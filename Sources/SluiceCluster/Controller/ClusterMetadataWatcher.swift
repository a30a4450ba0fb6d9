public import Logging
import NIOCore
import Synchronization

/// Keeps a broker's `ClusterMetadataCache` current: one read of every key under
/// `/sluice/<cluster>/`, then a watch of that prefix from the read's revision + 1, each
/// event applied to a `ClusterKeyspace` and the new snapshot handed to the cache. Brokers
/// never poll.
///
/// `EtcdWatch` resumes a broken stream from the revision after the last event received,
/// so no event is missed across a disconnect. When it cannot (the history was compacted,
/// or no etcd member could be watched for `ClusterLimits.watchReconnectFor`), the watcher
/// reads everything again and watches from there: the cache then jumps to the current
/// state in one update.
public final class ClusterMetadataWatcher: Sendable {
    public let cache: ClusterMetadataCache
    public let keys: ClusterKeys
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let reads = Atomic<Int>(1)

    /// Reads the cluster's keys and starts watching them, into `cache` when given (one the
    /// server was configured with before the broker joined, holding a placeholder such as
    /// `ClusterKeyspace(keys:revision: 0).snapshot`), else into a new one. Throws
    /// `GRPCStatus` when the first read fails.
    public static func start(
        client: EtcdClient, keys: ClusterKeys, into cache: ClusterMetadataCache? = nil, logger: Logger
    ) async throws -> ClusterMetadataWatcher {
        let first = try await ClusterKeyspace.read(client: client, keys: keys)
        let fed = cache ?? ClusterMetadataCache(first.snapshot)
        fed.update(first.snapshot)
        let watcher = ClusterMetadataWatcher(keys: keys, cache: fed)
        let task = Task { await watcher.follow(first, client: client, logger: logger) }
        watcher.task.withLock { $0 = task }
        return watcher
    }

    private init(keys: ClusterKeys, cache: ClusterMetadataCache) {
        self.keys = keys
        self.cache = cache
    }

    /// How many times it read every key: 1, plus one per watch that could not resume (a
    /// resumed watch reads nothing again).
    public var fullReads: Int { reads.load(ordering: .relaxed) }

    /// Stops watching; the cache keeps its last snapshot.
    public func stop() async {
        let task = task.withLock { $0 }
        task?.cancel()
        await task?.value
    }

    private func follow(_ first: ClusterKeyspace, client: EtcdClient, logger: Logger) async {
        var keyspace = first
        let root = ByteBuffer(string: keys.root)
        while !Task.isCancelled {
            do {
                var events = client.watch(prefix: root, from: keyspace.revision + 1).makeAsyncIterator()
                while let event = try await events.next() {
                    keyspace.apply(event)
                    // One update per watch response, which holds whole revisions: a Txn's
                    // changes (a topic's creation, a failover of many partitions) reach
                    // readers together, never half-applied.
                    if !events.hasBufferedEvents { cache.update(keyspace.snapshot) }
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("the cluster metadata watch ended; reading everything again", metadata: ["error": "\(error)"])
            }
            guard let fresh = await retryingUntilAnswered("reading the cluster metadata", logger: logger, {
                try await ClusterKeyspace.read(client: client, keys: keys)
            }) else { return }
            keyspace = fresh
            reads.add(1, ordering: .relaxed)
            cache.update(keyspace.snapshot)
        }
    }
}
