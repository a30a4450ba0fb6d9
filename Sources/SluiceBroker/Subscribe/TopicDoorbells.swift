import Synchronization

/// The doorbells of Subscribe streams that read every partition of a topic, rung when
/// CreatePartitions adds partitions so those streams start reading them at once (a
/// stream waiting at every high watermark would otherwise never look again). Keyed by
/// topic id, so a topic re-created under the same name never rings an old stream.
/// Bounded by the open streams; each removes its entry when it ends.
final class TopicDoorbells: Sendable {
    private let doorbells = Mutex<[String: [UInt64: AsyncStream<Void>.Continuation]]>([:])

    func add(topicID: String, id: UInt64, _ doorbell: AsyncStream<Void>.Continuation) {
        doorbells.withLock { $0[topicID, default: [:]][id] = doorbell }
    }

    func remove(topicID: String, id: UInt64) {
        doorbells.withLock { all in
            all[topicID]?[id] = nil
            if all[topicID]?.isEmpty == true { all[topicID] = nil }
        }
    }

    func ring(topicID: String) {
        let waiting = doorbells.withLock { Array(($0[topicID] ?? [:]).values) }
        for doorbell in waiting { doorbell.yield() }
    }
}
