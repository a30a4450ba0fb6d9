import Logging
import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceCluster
import SluiceStorage
import SluiceWire
import Synchronization

/// A partition as the Replicate stream names it.
struct ReplicaKey: Hashable, Sendable, CustomStringConvertible {
    let topic: String
    let partition: UInt32
    var description: String { "\(topic)/\(partition)" }
}

/// What a fetcher is told to follow for one partition: this broker's copy, the leader
/// epoch its metadata gives the partition, and the copy's health.
struct FollowTarget: Sendable {
    let partition: Partition
    let leaderEpoch: UInt32
    let health: ReplicaHealth
}

/// The follower's end of one Replicate stream to one leader broker, for every partition
/// this broker follows from it (`ReplicaFetcherManager` says which). One request is
/// outstanding at a time: it names the positions that changed since the last one (the
/// first request of a stream names every partition) and the partitions that left; the
/// leader's one answer is appended (`Partition.appendReplicated`, which checks both CRCs
/// of every batch), its high watermark becomes the copy's replica floor, and the next
/// request carries the new log end. Under `--fsync always` that request waits for the
/// appended batches to be synced, so the leader counts only durable copies.
///
/// Every wait is bounded: the connection by its connect timeout, an answer by
/// `ReplicaFetcherSettings.answerBound` (past it the stream is cancelled), a sync by the
/// same bound. Any transport failure closes the connection and reconnects after a capped
/// backoff. It holds one answer at a time (at most `maxReceiveMessageBytes`).
final class ReplicaFetcher: Sendable {
    /// One followed partition: its target and, while the leader refused it, until when it
    /// is left out of the stream.
    struct Followed {
        var target: FollowTarget
        var hold: Hold?
    }

    struct Hold {
        var until: ContinuousClock.Instant
        /// Ended by a new leader epoch in the metadata as well (NOT_LEADER, FENCED_LEADER_EPOCH).
        var untilNewEpoch: Bool
    }

    let leader: BrokerInfo
    let context: Context
    let logger: Logger
    /// The partitions followed. Answers are appended under this lock, so a partition
    /// taken out by `follow` gets nothing appended after `follow` returns.
    let followed = Mutex<[ReplicaKey: Followed]>([:])
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// What every fetcher of a broker shares.
    struct Context: Sendable {
        let brokerID: UInt32
        /// The metadata as Produce reads it, checked again before each partition's answer
        /// is applied.
        let leadership: (any PartitionLeadership)?
        let clock: any LogClock
        let settings: ReplicaFetcherSettings
        let logger: Logger
    }

    init(leader: BrokerInfo, context: Context) {
        self.leader = leader
        self.context = context
        var logger = context.logger
        logger[metadataKey: "leader"] = "\(leader.id)"
        self.logger = logger
    }

    /// Follows exactly `targets` from now on. A partition whose leader epoch changed is
    /// asked for again at once, whatever the leader last refused.
    func follow(_ targets: [ReplicaKey: FollowTarget]) {
        followed.withLock { followed in
            var next: [ReplicaKey: Followed] = [:]
            for (key, target) in targets {
                var entry = Followed(target: target)
                if let old = followed[key], old.target.partition === target.partition, old.target.leaderEpoch == target.leaderEpoch {
                    entry.hold = old.hold
                }
                next[key] = entry
            }
            followed = next
        }
    }

    /// Starts the stream's task unless it runs.
    func start() {
        task.withLock { task in
            guard task == nil else { return }
            task = Task { await self.run() }
        }
    }

    /// Cancels the task and waits for it to end.
    func stop() async {
        let running = task.withLock { $0 }
        running?.cancel()
        await running?.value
    }

    // MARK: The connection

    private func run() async {
        var backoff = context.settings.reconnectBackoff
        var failures = 0
        while !Task.isCancelled {
            do {
                if try await stream() { (backoff, failures) = (context.settings.reconnectBackoff, 0) }
            } catch {
                guard !Task.isCancelled else { return }
                failures += 1
                // The first failure of a run is news; the retries after it are not.
                logger.log(
                    level: failures == 1 ? .notice : .debug, "the Replicate stream to the leader failed; reconnecting",
                    metadata: ["address": "\(leader.address)", "error": "\(error)", "retry in": "\(backoff)"])
            }
            do {
                try await Task.sleep(for: backoff)
            } catch {
                return
            }
            backoff = min(backoff * 2, context.settings.maxReconnectBackoff)
        }
    }

    /// One connection and its stream, until either fails or the task is cancelled. True
    /// when at least one answer came (the leader is reachable: the backoff starts over).
    private func stream() async throws -> Bool {
        guard let endpoint = EtcdEndpoint(Substring(leader.address)) else {
            throw GRPCStatus(.unavailable, "the address of \(leader) is not HOST:PORT")
        }
        var configuration = GRPCClientConfiguration(host: endpoint.host, port: endpoint.port)
        configuration.maxReceiveMessageBytes = context.settings.maxReceiveMessageBytes
        let connection = try await GRPCClientConnection.connect(configuration, logger: logger)
        let watchdog = AnswerWatchdog()
        let syncDeadlines = WaitDeadline()
        defer { syncDeadlines.stop() }
        do {
            let call = try await connection.makeCall(path: "/\(BrokerService.serviceName)/Replicate")
            let guardTask = Task { await watchdog.watch(call) }
            defer { guardTask.cancel() }
            var answers = call.responses.makeAsyncIterator()
            var session: [ReplicaKey: ReplicaPosition] = [:]
            var answered = false
            while !Task.isCancelled {
                let request = nextRequest(session: &session)
                try await call.send(request.protobufBytes())
                watchdog.arm(ContinuousClock.now + context.settings.answerBound)
                guard let bytes = try await answers.next() else {
                    throw GRPCStatus(.unavailable, "the leader ended the Replicate stream")
                }
                watchdog.disarm()
                answered = true
                let answer = try ReplicateResponse(protobuf: bytes)
                let appended = take(answer)
                try await awaitSyncs(appended, deadlines: syncDeadlines)
            }
            call.cancel()
            await connection.close()
            return answered
        } catch {
            await connection.close()
            throw error
        }
    }

    /// The next request: the positions that changed since the session last heard them,
    /// and the partitions the session holds that are no longer followed (or are held).
    private func nextRequest(session: inout [ReplicaKey: ReplicaPosition]) -> ReplicateRequest {
        let now = ContinuousClock.now
        var request = ReplicateRequest(
            replicaId: context.brokerID, maxWaitMs: UInt32(context.settings.maxWait.milliseconds),
            maxBytes: UInt32(context.settings.maxBytes))
        followed.withLock { followed in
            for (key, entry) in followed {
                if let hold = entry.hold {
                    guard hold.until <= now else { continue }
                    followed[key]?.hold = nil
                }
                let position = Self.position(key, entry.target)
                if session[key] != position {
                    request.partitions.append(position)
                    session[key] = position
                }
            }
            for key in session.keys where followed[key] == nil || followed[key]?.hold != nil {
                request.removed.append(ReplicaPartitionName(topic: key.topic, partition: key.partition))
                session[key] = nil
            }
        }
        return request
    }

    /// Where this broker's copy stands, as the leader is told.
    static func position(_ key: ReplicaKey, _ target: FollowTarget) -> ReplicaPosition {
        let log = target.partition.log
        let watermarks = log.watermarks
        return ReplicaPosition(
            topic: key.topic, partition: key.partition, logEndOffset: watermarks.logEnd.offset,
            durableEndOffset: watermarks.durableEnd.offset, lastFetchedEpoch: log.latestLeaderEpoch,
            currentLeaderEpoch: target.leaderEpoch, suspect: target.health.isSuspect(logEnd: watermarks.logEnd.offset))
    }

    /// Under `--fsync always`: waits until each copy's durable end covers what was just
    /// appended to it, so the next request reports durable ends the leader may count.
    /// `deadlines` (one per stream) bounds each wait without a timer task per wait.
    private func awaitSyncs(_ appended: [(PartitionLog, Int64)], deadlines: WaitDeadline) async throws {
        for (log, lastOffset) in appended where log.config.fsyncPolicy == .always {
            let wait = log.wait(for: DurableEndOffset.self, toCover: lastOffset)
            if wait.resolved == nil { deadlines.watch(wait, until: .now + context.settings.answerBound) }
            let outcome = await wait.outcome()
            switch outcome {
            case .reached, .truncated, .interrupted: continue
            case .cancelled:
                if Task.isCancelled { throw CancellationError() }
                throw GRPCStatus(.deadlineExceeded, "a sync of a follower's copy took longer than \(context.settings.answerBound)")
            case .failed(let error):
                // A fenced or closed log: the partition is not copied further here; the
                // next request reports what is durable and the leader judges.
                logger.error("a follower's copy cannot sync", metadata: ["directory": "\(log.directory)", "error": "\(error)"])
            }
        }
    }
}

/// Cancels a stream whose answer is overdue. One sleeping task per stream, not one per
/// request: it sleeps until the armed deadline (a second while none is armed) and looks
/// again, so a deadline is kept to within that second.
final class AnswerWatchdog: Sendable {
    private let deadline = Mutex<ContinuousClock.Instant?>(nil)

    func arm(_ at: ContinuousClock.Instant) { deadline.withLock { $0 = at } }
    func disarm() { deadline.withLock { $0 = nil } }

    /// Until cancelled: cancels `call` once an armed deadline passes.
    func watch(_ call: GRPCClientCall) async {
        while !Task.isCancelled {
            let due = deadline.withLock { $0 }
            let now = ContinuousClock.now
            if let due, due <= now {
                call.cancel()
                return
            }
            do {
                // Armed: sleep to the deadline; idle: the deadline is at least this far.
                try await Task.sleep(until: due ?? now + .seconds(1), clock: .continuous)
            } catch {
                return
            }
        }
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
