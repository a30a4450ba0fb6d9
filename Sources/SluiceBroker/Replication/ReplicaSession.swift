import SluiceAPI
import SluiceStorage
import Synchronization

/// The partitions one Replicate stream follows, each with the follower's last reported
/// position and what the follower was last told of it, so that an answer carries only
/// news (proto section "Replicate": records, a divergence, an error, a high watermark or
/// log start not yet told).
struct ReplicaSession: Sendable {
    struct Name: Hashable, Sendable {
        let topic: String
        let partition: UInt32
    }

    /// What an answer last said of a partition besides records. A partition whose state
    /// equals what it was told (and has no records to send) is left out of the answer: an
    /// error or a divergence is told once, not on every request (a follower that does not
    /// act on it would otherwise spin).
    struct Told: Sendable, Equatable {
        var leaderEpoch: UInt32 = 0
        var highWatermark: Int64 = 0
        var logStartOffset: Int64 = 0
        var error: ErrorCode = .none
        var errorMessage = ""
        var divergingEpoch: DivergingEpoch?
    }

    struct Followed: Sendable {
        let name: Name
        var position: ReplicaPosition
        var told: Told?
        /// The leader's log end when the previous answer was composed, and when (the
        /// broker's clock): what "caught up as of the previous answer" means.
        var previousAnswer: (leaderEnd: Int64, atMs: Int64)?
        /// Waits ringing the stream while a request is held; cancelled at each answer.
        var waits: [WatermarkWait] = []
    }

    /// The follower's broker id, from its latest request.
    private(set) var replica: UInt32 = 0
    private(set) var followed: [Followed] = []
    private var indexes: [Name: Int] = [:]
    /// Where the next answer starts reading, so that a partition with much to send does
    /// not starve the ones after it when `max_bytes` runs out.
    private(set) var rotation = 0
    /// One-off answers to the latest request (a partition the session had no room for).
    var refusals: [ReplicaPartitionData] = []

    /// Applies a request: the partitions it removes leave, the positions it lists are
    /// updated or added while the session has room (`maxPartitions`); a partition past the
    /// bound gets a refusal in the next answer.
    mutating func apply(_ request: ReplicateRequest, maxPartitions: Int) {
        replica = request.replicaId
        for removed in request.removed {
            guard let index = indexes[Name(topic: removed.topic, partition: removed.partition)] else { continue }
            for wait in followed[index].waits { wait.cancel() }
            followed.remove(at: index)
            indexes = Dictionary(uniqueKeysWithValues: followed.enumerated().map { ($0.element.name, $0.offset) })
        }
        for position in request.partitions {
            let name = Name(topic: position.topic, partition: position.partition)
            if let index = indexes[name] {
                followed[index].position = position
            } else if followed.count < maxPartitions {
                indexes[name] = followed.count
                followed.append(Followed(name: name, position: position))
            } else {
                refusals.append(ReplicaPartitionData(
                    topic: position.topic, partition: position.partition, error: .throttled,
                    errorMessage: "this Replicate stream already follows \(maxPartitions) partitions (replicateMaxPartitionsPerSession); follow the rest on another stream"))
            }
        }
    }

    /// Records what an answer told, and when, and moves the rotation on.
    mutating func answered(_ told: [(index: Int, told: Told?, leaderEnd: Int64?)], atMs: Int64) {
        for entry in told {
            if let state = entry.told { followed[entry.index].told = state }
            if let leaderEnd = entry.leaderEnd { followed[entry.index].previousAnswer = (leaderEnd, atMs) }
        }
        rotation = followed.isEmpty ? 0 : (rotation + 1) % followed.count
        refusals = []
        cancelWaits()
    }

    mutating func arm(_ index: Int, _ waits: [WatermarkWait]) {
        followed[index].waits = waits
    }

    func isArmed(_ index: Int) -> Bool { !followed[index].waits.isEmpty }

    mutating func cancelWaits() {
        for index in followed.indices {
            for wait in followed[index].waits { wait.cancel() }
            followed[index].waits = []
        }
    }

    /// The indexes in answer order, starting at the rotation.
    var answerOrder: [Int] {
        followed.indices.map { (rotation + $0) % followed.count }
    }
}

/// The hand-over between a Replicate stream's reader and its server. At most one request
/// waits here: a follower sends its next request only after the answer to the one
/// before, so a well-behaved one never has more in flight, and one that pipelines is held
/// back by HTTP/2 flow control. A request arriving while another is held ends the hold.
final class ReplicateInbox: Sendable {
    private struct State {
        var waiting: ReplicateRequest?
        var ended = false
    }

    private let state = Mutex(State())
    private let serverBell: AsyncStream<Void>.Continuation
    private let readerBells: AsyncStream<Void>
    private let readerBell: AsyncStream<Void>.Continuation

    /// `serverBell` is the stream's doorbell, rung when a request arrives or the stream ends.
    init(serverBell: AsyncStream<Void>.Continuation) {
        self.serverBell = serverBell
        (readerBells, readerBell) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Hands a request over once the one before was taken. Only the reader calls this.
    func put(_ request: ReplicateRequest) async throws {
        var bell = readerBells.makeAsyncIterator()
        while state.withLock({ $0.waiting != nil && !$0.ended }) {
            guard await bell.next() != nil else { throw CancellationError() }
        }
        state.withLock { $0.waiting = request }
        serverBell.yield()
    }

    /// The waiting request, if any.
    func take() -> ReplicateRequest? {
        let request = state.withLock { $0.waiting.take() }
        if request != nil { readerBell.yield() }
        return request
    }

    /// A request waits, or no more will come: a held request is answered now.
    var hasNews: Bool { state.withLock { $0.waiting != nil || $0.ended } }

    var isEnded: Bool { state.withLock { $0.ended && $0.waiting == nil } }

    /// The request stream ended (or failed): wakes both sides.
    func end() {
        state.withLock { $0.ended = true }
        serverBell.yield()
        readerBell.yield()
    }
}
