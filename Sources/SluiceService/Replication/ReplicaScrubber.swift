import Logging
import SluiceBroker
import SluiceStorage
import Synchronization

/// Whether a follower's copy of a partition may say it is intact (`ReplicaPosition.suspect`
/// false): only once its scrub has checked every stored batch, and not while a batch that
/// failed a check (found by the scrub, or fetched from the leader) has not been fetched
/// again. The leader keeps a suspect replica out of the ISR, so it is never elected.
final class ReplicaHealth: Sendable {
    private struct State {
        var scrubbed = false
        /// A batch at this offset failed its check and was cut off; suspect until the log
        /// ends past it (fetched again from the leader).
        var refetchPast: Int64?
    }

    private let state = Mutex(State())

    /// Whether the copy, whose log ends at `logEnd`, must report itself suspect.
    func isSuspect(logEnd: Int64) -> Bool {
        state.withLock { s in
            if let offset = s.refetchPast {
                guard logEnd > offset else { return true }
                s.refetchPast = nil
            }
            return !s.scrubbed
        }
    }

    func scrubFinished() { state.withLock { $0.scrubbed = true } }

    /// The batch at `offset` failed a check; the log was cut below it (or never stored it).
    func damaged(at offset: Int64) {
        state.withLock { s in s.refetchPast = min(s.refetchPast ?? offset, offset) }
    }
}

/// Checks every stored batch of each followed copy once after the broker starts
/// (`PartitionLog.verifyStoredBatches`, both CRCs, offsets and lengths), one copy at a
/// time in steps of `ReplicaFetcherSettings.scrubStepBytes`, so a large log never holds
/// its lock for long. Damage cuts the log below the damaged batch, which the fetcher then
/// fetches again; the copy reports itself suspect meanwhile (`ReplicaHealth`). Batches
/// appended while the scrub runs were checked by `appendReplicated`, so it checks up to
/// the log end it found when it started.
final class ReplicaScrubber: Sendable {
    private struct State {
        var pending: [(Partition, ReplicaHealth)] = []
        var task: Task<Void, Never>?
        var stopped = false
    }

    private let state = Mutex(State())
    private let broker: Broker
    private let stepBytes: Int
    private let logger: Logger

    init(broker: Broker, stepBytes: Int, logger: Logger) {
        self.broker = broker
        self.stepBytes = stepBytes
        self.logger = logger
    }

    /// Queues `partition` for a scrub; `health` says it is scrubbed when it is.
    func enqueue(_ partition: Partition, _ health: ReplicaHealth) {
        state.withLock { s in
            guard !s.stopped else { return }
            s.pending.append((partition, health))
            if s.task == nil { s.task = Task { await self.drain() } }
        }
    }

    /// Stops scrubbing (the broker is shutting down) and waits for the step in progress.
    func stop() async {
        let task = state.withLock { s -> Task<Void, Never>? in
            s.stopped = true
            s.pending = []
            return s.task
        }
        task?.cancel()
        await task?.value
    }

    private func drain() async {
        while let (partition, health) = next() {
            await scrub(partition, health)
        }
    }

    private func next() -> (Partition, ReplicaHealth)? {
        state.withLock { s in
            guard !s.stopped, !s.pending.isEmpty else {
                s.task = nil
                return nil
            }
            return s.pending.removeFirst()
        }
    }

    private func scrub(_ partition: Partition, _ health: ReplicaHealth) async {
        let log = partition.log
        let name = "\(partition.topicName)/\(partition.index)"
        var offset = log.logStartOffset
        // The starts of the last two steps: intact batch starts below any damage found
        // next, where the cut can fall back to.
        var earlier: [Int64] = []
        let end = log.logEndOffset
        while offset < end {
            guard !Task.isCancelled, !partition.isClosed else { return }
            do throws(LogError) {
                switch try log.verifyStoredBatches(from: offset, upTo: end, maxBytes: stepBytes) {
                case .intact(let next):
                    guard next > offset else { return finish(health, name) }
                    earlier = (earlier + [offset]).suffix(2)
                    offset = next
                case .damaged(let damaged, let reason):
                    let fallbacks = (earlier + [offset]).filter { $0 < damaged }.reversed() + [log.logStartOffset]
                    cut(partition, at: damaged, fallingBackTo: fallbacks, reason: reason)
                    health.damaged(at: damaged)
                    return finish(health, name)
                }
            } catch .offsetOutOfRange {
                // Retention moved the log start past the scrub: what is left starts there.
                let start = log.logStartOffset
                guard start > offset else { return finish(health, name) }
                offset = start
            } catch .closed {
                return
            } catch {
                // Unverified is not intact: the copy stays out of the ISR.
                logger.error("cannot scrub the follower's copy of a partition; it reports itself suspect", metadata: [
                    "partition": "\(name)", "offset": "\(offset)", "error": "\(error)"])
                return
            }
            await Task.yield()
        }
        finish(health, name)
    }

    private func finish(_ health: ReplicaHealth, _ name: String) {
        health.scrubFinished()
        logger.debug("scrubbed the follower's copy of a partition", metadata: ["partition": "\(name)"])
    }

    /// Cuts the copy below the damaged batch, so the fetcher fetches it again. A cut
    /// finds its place by the header of the batch it cuts at, which may be the damaged
    /// one: then it cuts at the next lower intact batch start in `fallbacks`.
    private func cut(_ partition: Partition, at offset: Int64, fallingBackTo fallbacks: [Int64], reason: String) {
        let log = partition.log
        let base = log.segmentBaseOffsets.last { $0 <= offset } ?? log.logStartOffset
        let file = log.directory + "/" + String(repeating: "0", count: max(0, 20 - String(base).count)) + String(base) + ".log"
        let name = "\(partition.topicName)/\(partition.index)"
        logger.error("a stored batch of the follower's copy fails its check: the log is cut below it and fetched again from the leader", metadata: [
            "partition": "\(name)", "file": "\(file)", "offset": "\(offset)", "reason": "\(reason)"])
        var failure: LogError?
        for target in [offset] + fallbacks where target < log.logEndOffset {
            do throws(LogError) {
                try partition.truncate(to: target, nowMs: broker.storage.clock.nowMilliseconds())
                return
            } catch {
                failure = error
            }
        }
        if let failure {
            logger.error("cannot cut the damaged copy", metadata: ["partition": "\(name)", "offset": "\(offset)", "error": "\(failure)"])
        }
    }
}
