import Glibc

/// When the log calls fdatasync on the active segment.
public enum FsyncPolicy: Sendable, Equatable {
    /// Group commit: `append` returns only after an fdatasync that covers the batch;
    /// appends that arrive while one sync runs share the next one.
    case always
    /// A background sync every `milliseconds`; `append` returns once written.
    case interval(milliseconds: Int)
    /// The OS writes back when it likes; only `flush()`, rolling and closing sync.
    case never
}

/// Per-log settings. Sizes in bytes, times in milliseconds. The defaults, and why each is
/// what it is, are `StorageLimits`'s (docs/limits.md).
public struct LogConfig: Sendable, Equatable {
    /// Roll the active segment before it would grow past this (at most 4 GiB - 1,
    /// since index positions are 32-bit).
    public var segmentBytes: Int64 = StorageLimits.defaults.segmentBytes.value
    /// Roll the active segment once its first batch is this old.
    public var segmentMs: Int64 = StorageLimits.defaults.segmentMs.value
    /// One offset-index entry per this many bytes of batches.
    public var indexIntervalBytes: Int = StorageLimits.defaults.indexIntervalBytes.value
    /// Largest stored batch (header plus records) accepted by `append`. A batch never
    /// spans segments, so `segmentBytes` caps it too (see `batchLimitBytes`).
    public var maxBatchBytes: Int = StorageLimits.defaults.maxBatchBytes.value
    /// Delete sealed segments whose largest timestamp is older than this; nil keeps all.
    public var retentionMs: Int64? = StorageLimits.defaults.retentionMs.value
    /// Delete the oldest sealed segments while the log would stay at least this big; nil keeps all.
    public var retentionBytes: Int64? = StorageLimits.defaults.retentionBytes.value
    public var fsyncPolicy: FsyncPolicy = .always
    /// Group-commit window: with `.always` (or a durable-acks request), a sync run waits
    /// this long before its first fdatasync so that more appends share it. Zero (the
    /// default) syncs at once, and again as soon as a sync ends while appends wait for
    /// one, which already groups under load.
    public var groupCommitWindow: Duration = StorageLimits.defaults.groupCommitWindow.value
    /// Sealed segments kept open (one descriptor each, plus their indexes in memory);
    /// the active segment holds three descriptors on top.
    public var maxOpenSealedSegments: Int = StorageLimits.defaults.maxOpenSealedSegments.value
    /// Waits for this log's watermarks registered at once (acks=durable batches waiting
    /// for their sync, subscribers waiting for data); past it a wait fails at once with
    /// `LogError.tooManyWaits`.
    public var maxWatermarkWaits: Int = StorageLimits.defaults.maxWatermarkWaits.value
    /// The log is a replica of a partition in a cluster: its high watermark follows
    /// `HighWatermarkRule.replicated` instead of the fsync policy.
    public var replicated = false

    public init() {}

    /// The size limit `append` applies: the smaller of the two settings.
    public var batchLimitBytes: Int { Int(min(Int64(maxBatchBytes), segmentBytes)) }

    func validate() -> String? {
        if segmentBytes < Int64(BatchHeader.size) || segmentBytes > Int64(UInt32.max) {
            return "segmentBytes \(segmentBytes) must be in \(BatchHeader.size)...\(UInt32.max)"
        }
        if segmentMs <= 0 { return "segmentMs must be positive" }
        if indexIntervalBytes <= 0 { return "indexIntervalBytes must be positive" }
        if maxBatchBytes <= BatchHeader.size { return "maxBatchBytes must exceed the \(BatchHeader.size)-byte header" }
        if maxOpenSealedSegments < 1 { return "maxOpenSealedSegments must be at least 1" }
        if maxWatermarkWaits < 1 { return "maxWatermarkWaits must be at least 1" }
        if case .interval(let milliseconds) = fsyncPolicy, milliseconds <= 0 { return "fsync interval must be positive" }
        return nil
    }
}

/// Wall-clock milliseconds, injectable so tests drive rolling and retention by age.
public protocol LogClock: Sendable {
    func nowMilliseconds() -> Int64
}

public struct SystemLogClock: LogClock {
    public init() {}
    public func nowMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
