import CZstd
import Synchronization

/// zstd decompression contexts kept for reuse. Making one (`ZSTD_createDCtx`, which
/// allocates and initialises its tables) costs more than decompressing a small batch: on a
/// broker counting the records of 64 KiB zstd batches it was 3.6% of all samples against
/// 0.2% for the decompression itself, and reusing contexts took zstd ingest from 12% to 6%
/// below what it was without the count (docs/benchmarks.md, "Counting records on
/// produce"). lz4 still makes a context per frame: pooling it measured no difference.
///
/// A context is reset to a new session when taken, so one left mid-frame by corrupt or
/// oversized input is clean again. At most `capacity` idle contexts are kept (about
/// 100-200 KiB each); one given back to a full pool is freed. A context is used by one
/// caller at a time: taken, used inside one function, given back.
final class ZstdDecompressionContexts: Sendable {
    static let shared = ZstdDecompressionContexts(capacity: 8)

    /// A context held idle in the pool, touched by no one until taken.
    private struct Idle: @unchecked Sendable { let context: OpaquePointer }

    private let capacity: Int
    private let idle = Mutex<[Idle]>([])

    private init(capacity: Int) { self.capacity = capacity }

    /// An idle context, reset, or a new one; nil only when zstd cannot allocate one.
    func take() -> OpaquePointer? {
        if let reused = idle.withLock({ $0.popLast() }) {
            ZSTD_DCtx_reset(reused.context, ZSTD_reset_session_only)
            return reused.context
        }
        return ZSTD_createDCtx()
    }

    func give(back context: OpaquePointer) {
        let kept = idle.withLock { contexts -> Bool in
            guard contexts.count < capacity else { return false }
            contexts.append(Idle(context: context))
            return true
        }
        if !kept { ZSTD_freeDCtx(context) }
    }
}
