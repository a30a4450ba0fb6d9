import SluiceAPI
import SluiceStorage
import Synchronization

/// Where one follower's copy of a led partition stands, as it last reported it on its
/// Replicate stream, and when it was last caught up with the leader (Kafka's
/// `lastCaughtUpTimeMs`, which decides when it leaves the in-sync replicas).
struct FollowerProgress: Sendable, Equatable {
    var logEnd: Int64
    var durableEnd: Int64
    /// Not known to be intact (not yet scrubbed, or damaged and not refetched): never in sync.
    var suspect: Bool
    var lastCaughtUpMs: Int64
}

/// A follower's report of one partition: its position in a Replicate request (from
/// `replica`), the leader's log end when it arrived, and the leader's log end and time of
/// the previous answer to that follower (nil for its first request).
struct PositionReport: Sendable {
    let replica: UInt32
    let position: ReplicaPosition
    let leaderEnd: Int64
    let previousAnswer: (leaderEnd: Int64, atMs: Int64)?
    let nowMs: Int64
}

/// A partition this broker leads, at one leader epoch: its followers' progress, the ISR
/// change it has asked for, and the rules that turn them into a replica floor and ISR
/// changes. A new leader epoch is a new `PartitionFollowers`, so a follower that has not
/// reported since this broker became leader is not known here (it holds the floor, and
/// counts as caught up when the leadership began, as Kafka does).
final class PartitionFollowers: Sendable {
    /// An ISR change written or being written: `wanted`, asked when the metadata showed
    /// `base`. Until the metadata moves away from `base`, the floor counts the members of
    /// both (Kafka's "maximal ISR", KIP-497): a follower being added counts before the
    /// metadata shows it, one being removed still counts until it is gone.
    struct PendingChange: Sendable, Equatable {
        let base: [UInt32]
        let wanted: [UInt32]
        /// When it was asked (the broker's clock): a change whose write the metadata never
        /// showed (another write put `base` back before this broker saw it) is given up
        /// after the lag bound, so the partition can ask again.
        let askedMs: Int64
    }

    /// What the in-sync followers hold, for `PartitionLog.setReplicaFloor`.
    enum Floor: Sendable, Equatable {
        /// Set the floor to this (nil: the ISR is this broker alone).
        case set(Int64?)
        /// An in-sync follower has not reported since this broker became leader: leave
        /// the floor where it is rather than guess.
        case hold
    }

    private struct State {
        var followers: [UInt32: FollowerProgress] = [:]
        var pending: PendingChange?
    }

    let partition: Partition
    let leaderEpoch: UInt32
    /// This broker's id (never a follower of its own partition).
    let local: UInt32
    /// The log end when this record began: where this leader epoch starts if nothing was
    /// appended at it before (see `epochStartOffset`).
    private let logEndAtStart: Int64
    /// When this broker began to lead at `leaderEpoch` (the broker's clock).
    let sinceMs: Int64
    private let state = Mutex(State())

    init(partition: Partition, leaderEpoch: UInt32, local: UInt32, nowMs: Int64) {
        self.partition = partition
        self.leaderEpoch = leaderEpoch
        self.local = local
        self.sinceMs = nowMs
        logEndAtStart = partition.log.logEndOffset
    }

    /// Where this leader epoch starts in the log: a follower joins the ISR only once it
    /// holds the whole of the epoch before it (Kafka's leaderEpochStartOffset). Read only
    /// when a follower may join, since it copies the log's epoch checkpoint.
    private var epochStartOffset: Int64 {
        let epoch = Int32(clamping: leaderEpoch)
        // Nothing appended at this epoch when the record began: it starts at that log end.
        return partition.log.epochStarts.last { $0.epoch == epoch }?.startOffset ?? logEndAtStart
    }

    /// Under `FsyncPolicy.always` followers count their durable ends (as the leader's own
    /// end is its durable end there).
    private var countsDurableEnds: Bool { partition.log.config.fsyncPolicy == .always }

    /// Records a report; Kafka's rule for when the follower was last caught up: now, if
    /// it holds the leader's log end; else the time of the previous answer, if it holds
    /// what the leader had then.
    func record(_ report: PositionReport) {
        state.withLock { s in
            var progress = s.followers[report.replica]
                ?? FollowerProgress(logEnd: -1, durableEnd: -1, suspect: false, lastCaughtUpMs: sinceMs)
            let position = report.position
            progress.logEnd = position.logEndOffset
            progress.durableEnd = min(position.durableEndOffset, position.logEndOffset)
            progress.suspect = position.suspect
            if progress.logEnd >= report.leaderEnd {
                progress.lastCaughtUpMs = max(progress.lastCaughtUpMs, report.nowMs)
            } else if let previous = report.previousAnswer, progress.logEnd >= previous.leaderEnd {
                progress.lastCaughtUpMs = max(progress.lastCaughtUpMs, previous.atMs)
            }
            s.followers[report.replica] = progress
        }
    }

    func progress(of replica: UInt32) -> FollowerProgress? { state.withLock { $0.followers[replica] } }

    /// Recomputes the floor from the ISR the metadata shows (`currentISR`, read under this
    /// partition's lock, nil once leadership moved on) and sets it on the log, under that
    /// lock: two streams' reports cannot set a floor computed from an older ISR after one
    /// computed from a newer, larger one.
    func updateFloor(currentISR: () -> [UInt32]?) {
        // A log not opened replicated derives its high watermark itself (a cluster broker
        // run without replicated storage, as in tests of the metadata alone).
        guard partition.log.config.replicated else { return }
        let durable = countsDurableEnds
        state.withLock { s in
            guard let isr = currentISR() else { return }
            if let pending = s.pending, pending.base != isr { s.pending = nil }
            if case .set(let floor) = Self.floor(of: s, isr: isr, local: local, durable: durable) {
                partition.log.setReplicaFloor(floor)
            }
        }
    }

    private static func floor(of s: State, isr: [UInt32], local: UInt32, durable: Bool) -> Floor {
        var members = Set(isr)
        if let pending = s.pending { members.formUnion(pending.wanted) }
        members.remove(local)
        guard !members.isEmpty else { return .set(nil) }
        var floor = Int64.max
        for member in members {
            guard let progress = s.followers[member] else { return .hold }
            floor = min(floor, durable ? progress.durableEnd : progress.logEnd)
        }
        return .set(floor)
    }

    /// The ISR to ask for now, if any, marked as this partition's one outstanding change:
    /// without the in-sync followers that are suspect or were last caught up more than
    /// `lagMaxMs` ago (never this broker); failing that, with the followers that are not
    /// in it, are not suspect, and hold the high watermark and this epoch's start.
    func nextChange(replicas: [UInt32], isr: [UInt32], highWatermark: Int64, nowMs: Int64, lagMaxMs: Int64) -> [UInt32]? {
        state.withLock { s -> [UInt32]? in
            if let pending = s.pending, pending.base == isr, nowMs - pending.askedMs <= lagMaxMs { return nil }
            s.pending = nil
            let lagging = isr.filter { member in
                guard member != local else { return false }
                let progress = s.followers[member]
                if progress?.suspect == true { return true }
                return nowMs - (progress?.lastCaughtUpMs ?? sinceMs) > lagMaxMs
            }
            var wanted = isr.filter { !lagging.contains($0) }
            if lagging.isEmpty {
                let candidates = replicas.filter { replica in
                    guard replica != local, !isr.contains(replica), let progress = s.followers[replica] else { return false }
                    return !progress.suspect && progress.logEnd >= highWatermark
                }
                if !candidates.isEmpty {
                    let epochStart = epochStartOffset
                    wanted += candidates.filter { (s.followers[$0]?.logEnd ?? -1) >= epochStart }
                }
            }
            guard wanted != isr else { return nil }
            s.pending = PendingChange(base: isr, wanted: wanted, askedMs: nowMs)
            return wanted
        }
    }

    /// The change asked for was not written (stale or failed): the next check may ask again.
    func changeNotWritten(_ wanted: [UInt32]) {
        state.withLock { s in
            if s.pending?.wanted == wanted { s.pending = nil }
        }
    }
}
