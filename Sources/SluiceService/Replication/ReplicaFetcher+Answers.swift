import Logging
import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceStorage
import Synchronization

/// What a follower does with each partition of the leader's answer.
extension ReplicaFetcher {
    /// Applies `answer` to the copies still followed: appends records, sets replica
    /// floors, truncates where the logs diverged, holds partitions the leader refused.
    /// Returns each log appended to, with the last offset appended. Runs under the
    /// followed set's lock (every step is synchronous), so a partition taken out of the
    /// set meanwhile is left alone.
    func take(_ answer: ReplicateResponse) -> [(PartitionLog, Int64)] {
        let now = ContinuousClock.now
        return followed.withLock { followed in
            var appended: [(PartitionLog, Int64)] = []
            for data in answer.partitions {
                let key = ReplicaKey(topic: data.topic, partition: data.partition)
                guard let entry = followed[key], entry.hold == nil, !entry.target.partition.isClosed else { continue }
                if let hold = take(data, key, entry.target, into: &appended) {
                    followed[key]?.hold = Hold(until: now + hold.delay, untilNewEpoch: hold.untilNewEpoch)
                }
            }
            return appended
        }
    }

    /// One partition's part of an answer; the hold to put it under, if any.
    private func take(
        _ data: ReplicaPartitionData, _ key: ReplicaKey, _ target: FollowTarget, into appended: inout [(PartitionLog, Int64)]
    ) -> (delay: Duration, untilNewEpoch: Bool)? {
        let partition = target.partition
        // The metadata moved on since the manager last applied it (Produce reads it
        // directly): a partition this broker now leads, or at another epoch, is left alone
        // until the manager catches up, so a stale leader's answer never cuts or extends
        // what this broker appends as leader.
        if let leadership = context.leadership {
            let now = leadership.replicaSet(topic: key.topic, partition: key.partition)
            guard let now, now.leaderEpoch == target.leaderEpoch, now.leader != leadership.localBrokerID else {
                return (context.settings.retryDelay, true)
            }
        }
        switch data.error {
        case .none:
            break
        case .notLeader, .fencedLeaderEpoch:
            logger.info("the leader refused a partition; it waits for new metadata", metadata: [
                "partition": "\(key)", "error": "\(data.error)", "message": "\(data.errorMessage)",
                "leader epoch": "\(target.leaderEpoch)"])
            return (context.settings.fencedRetryDelay, true)
        case .offsetOutOfRange:
            return startOver(partition, key, leaderLogStart: data.logStartOffset, message: data.errorMessage)
        default:
            // UNKNOWN_LEADER_EPOCH (the leader's metadata lags), a log not open there yet.
            logger.debug("the leader cannot serve a partition yet; asking again shortly", metadata: [
                "partition": "\(key)", "error": "\(data.error)", "message": "\(data.errorMessage)"])
            return (context.settings.retryDelay, false)
        }
        if let diverging = data.divergingEpoch {
            return truncate(partition, key, diverging) ? nil : (context.settings.retryDelay, false)
        }
        let nowMs = context.clock.nowMilliseconds()
        if data.records.readableBytes > 0 {
            do throws(LogError) {
                let stored = try partition.appendReplicated(data.records, nowMs: nowMs)
                appended.append((partition.log, stored.lastOffset))
            } catch {
                return refused(data.records, by: error, key, target)
            }
        }
        // A log opened without `replicated` (a cluster broker configured so in a test)
        // keeps its own high watermark rule.
        if partition.log.config.replicated { partition.log.setReplicaFloor(data.highWatermark) }
        return nil
    }

    /// An append the copy refused. A batch failing a check (a CRC, its offsets) was not
    /// stored, nor any after it; those before it were. The copy reports itself suspect
    /// until it holds that offset again, and asks for it again shortly.
    private func refused(
        _ records: ByteBuffer, by error: LogError, _ key: ReplicaKey, _ target: FollowTarget
    ) -> (delay: Duration, untilNewEpoch: Bool) {
        let end = target.partition.log.logEndOffset
        if case .invalidBatch = error {
            target.health.damaged(at: end)
            logger.error("a batch fetched from the leader fails its check; it is fetched again", metadata: [
                "partition": "\(key)", "offset": "\(end)", "bytes": "\(records.readableBytes)", "error": "\(error)"])
        } else {
            logger.error("the follower's copy cannot store what the leader sent", metadata: [
                "partition": "\(key)", "offset": "\(end)", "error": "\(error)"])
        }
        return (context.settings.retryDelay, false)
    }

    /// OFFSET_OUT_OF_RANGE: the leader holds no epoch the copy's last batch could follow,
    /// or its log does not reach the copy's end: the copy starts over, emptied to its own
    /// log start (Kafka's truncate-fully). A copy that ends below the leader's log start
    /// (retention ran while it was away) cannot skip ahead in this version: it stays
    /// behind, out of the ISR, logged as an error.
    private func startOver(
        _ partition: Partition, _ key: ReplicaKey, leaderLogStart: Int64, message: String
    ) -> (delay: Duration, untilNewEpoch: Bool)? {
        let log = partition.log
        let (start, end) = (log.logStartOffset, log.logEndOffset)
        guard end >= leaderLogStart, end > start else {
            logger.error("the leader no longer holds the offsets this copy needs next; it cannot catch up", metadata: [
                "partition": "\(key)", "log": "\(start)..<\(end)", "leader log start": "\(leaderLogStart)", "message": "\(message)"])
            return (context.settings.fencedRetryDelay, false)
        }
        do throws(LogError) {
            try partition.truncate(to: start, nowMs: context.clock.nowMilliseconds())
            logger.notice("the leader's log holds nothing this copy's could follow: the copy starts over", metadata: [
                "partition": "\(key)", "from": "\(end)", "to": "\(start)", "message": "\(message)"])
            return nil
        } catch {
            logger.error("cannot empty the follower's copy to start over", metadata: ["partition": "\(key)", "error": "\(error)"])
            return (context.settings.retryDelay, false)
        }
    }

    /// The copy diverged from the leader's log (KIP-279): cuts it to the smaller of where
    /// the leader's `diverging.epoch` ends and where the copy's own largest epoch at or
    /// below it ends, never lower (not to the high watermark), then asks again from there.
    /// A copy holding no epoch the leader knows is emptied. False when the cut failed.
    private func truncate(_ partition: Partition, _ key: ReplicaKey, _ diverging: DivergingEpoch) -> Bool {
        let log = partition.log
        let own = log.endOffset(forEpoch: diverging.epoch)
        let target: Int64
        if diverging.epoch < 0 || diverging.endOffset < 0 || own.epoch < 0 {
            target = log.logStartOffset
        } else {
            target = min(diverging.endOffset, own.endOffset)
        }
        let end = log.logEndOffset
        guard target < end else { return true }
        do throws(LogError) {
            try partition.truncate(to: target, nowMs: context.clock.nowMilliseconds())
            logger.notice("the follower's copy diverged from the leader's log; cut back to where they agree", metadata: [
                "partition": "\(key)", "from": "\(end)", "to": "\(target)", "leader's epoch": "\(diverging.epoch) ends at \(diverging.endOffset)", "own": "\(own)"])
            return true
        } catch {
            logger.error("cannot cut the follower's copy back to where it agrees with the leader", metadata: [
                "partition": "\(key)", "to": "\(target)", "error": "\(error)"])
            return false
        }
    }
}
