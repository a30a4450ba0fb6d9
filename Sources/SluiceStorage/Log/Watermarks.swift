/// The ends a partition's offsets move past, each its own type so that one cannot be
/// passed where another is meant (a durable end where the high watermark is wanted was
/// an easy slip while all three were `Int64`). Each is exclusive: every offset below it
/// has reached the state it names.
///
/// Their order, asserted wherever the log moves one (`LogState.checkWatermarkOrder`):
/// `durableEnd <= logEnd` and `highWatermark <= logEnd`; none ever goes backwards except
/// through `PartitionLog.truncate(to:)`, which lowers all three to the new end together.
///
/// The log holds all three under its one lock, as Kafka's `UnifiedLog` holds the high
/// watermark, so a wait can be registered and a watermark moved without a wake-up
/// falling between them (`WatermarkWaiters`). What moves the high watermark is a rule,
/// `HighWatermarkRule`: on one node the fsync policy picks it; on a replica the
/// replication layer's floor bounds it.
public protocol Watermark: Sendable, Comparable, CustomStringConvertible {
    /// Every offset below this has reached the state the watermark names.
    var offset: Int64 { get }
    init(_ offset: Int64)
    /// Which of the log's waiting lists holds the waits for this watermark.
    static var lane: WatermarkLane { get }
}

extension Watermark {
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.offset < rhs.offset }
    /// Whether `offset` is below this end (has reached the state it names).
    public func covers(_ offset: Int64) -> Bool { offset < self.offset }
    public var description: String { "\(Self.lane) \(offset)" }
}

/// The offset the next appended batch gets: every offset below it is in the log
/// (in the page cache at least).
public struct LogEndOffset: Watermark {
    public let offset: Int64
    public init(_ offset: Int64) { self.offset = offset }
    public static var lane: WatermarkLane { .logEnd }
}

/// Every offset below it was covered by an fdatasync of its segment.
public struct DurableEndOffset: Watermark {
    public let offset: Int64
    public init(_ offset: Int64) { self.offset = offset }
    public static var lane: WatermarkLane { .durableEnd }
}

/// Offsets below it may be read by subscribers: nothing a consumer saw can be taken
/// back. On one node it is the durable end under `FsyncPolicy.always` and the log end
/// otherwise (`HighWatermarkRule`); on a replica it is the end every in-sync replica
/// holds (`HighWatermarkRule.replicated`), and `acks=all` waits on it.
public struct HighWatermark: Watermark {
    public let offset: Int64
    public init(_ offset: Int64) { self.offset = offset }
    public static var lane: WatermarkLane { .highWatermark }
}

/// One waiting list per watermark. A fourth watermark (say, a replicated end distinct
/// from the high watermark) is one more case here, one more `Watermark` type, and the
/// one place in `LogState.moveWatermarks` that computes it; waiting, bounds,
/// cancellation and truncation need nothing new.
public enum WatermarkLane: Int, Sendable, CaseIterable, CustomStringConvertible {
    case logEnd
    case durableEnd
    case highWatermark

    public var description: String {
        switch self {
        case .logEnd: "log end"
        case .durableEnd: "durable end"
        case .highWatermark: "high watermark"
        }
    }
}

/// What moves a log's high watermark (`LogState.moveWatermarks`, the one place it moves
/// forward, so `acks=all` producers and subscribers wake through the same waits
/// whichever rule moved it). Chosen when the log opens: `LogConfig.replicated` picks
/// `.replicated`, else the fsync policy picks one of the other two.
public enum HighWatermarkRule: Sendable, Equatable {
    /// The high watermark is the log end (`FsyncPolicy.interval` and `.never`: the
    /// operator traded durability for latency; serving only synced data would delay
    /// every read by up to the interval, or forever under `never`).
    case followsLogEnd
    /// The high watermark is the durable end (`FsyncPolicy.always`: subscribers only see
    /// batches an fdatasync covered, so a crash never takes back what a consumer saw).
    case followsDurableEnd
    /// A replica in a cluster: the high watermark is the smaller of the replica floor
    /// (`PartitionLog.setReplicaFloor`: what every in-sync follower holds, or on a
    /// follower the leader's high watermark) and this log's own end (its durable end
    /// under `FsyncPolicy.always`, else its log end). It starts at the high watermark
    /// the log last checkpointed, never above the log end.
    case replicated

    /// The rule a single node uses for `policy`.
    public init(_ policy: FsyncPolicy) {
        self = policy == .always ? .followsDurableEnd : .followsLogEnd
    }
}

/// The three watermarks of a log read together under its lock.
public struct LogWatermarks: Sendable, Equatable {
    public var logEnd: LogEndOffset
    public var durableEnd: DurableEndOffset
    public var highWatermark: HighWatermark

    /// The end of `lane` as a plain offset.
    public func offset(of lane: WatermarkLane) -> Int64 {
        switch lane {
        case .logEnd: logEnd.offset
        case .durableEnd: durableEnd.offset
        case .highWatermark: highWatermark.offset
        }
    }
}
