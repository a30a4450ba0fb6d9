import SluiceAPI
import SluiceStorage

/// A per-batch refusal: the error code and message a `ProduceResponse` carries. Every
/// refusal is made by one of the constructors below, one per kind of failure, so a code
/// and its wording are chosen in this file only (the rules themselves live with the code
/// that checks them: `ProducedBatch`, `ProducerState`, `ProducerIDRegistry`).
struct ProduceFailure: Error, Sendable, Equatable {
    let code: ErrorCode
    let message: String

    private init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    /// A broker error refusing this one batch (a topic or partition that cannot be used),
    /// with its per-entry code from the broker's error table (`BrokerError+ErrorCode.swift`).
    init(_ error: BrokerError) {
        self.init(ErrorCode(error.code), error.message)
    }

    /// The refusal an idempotent producer's verdict means (a sequence gap, a fenced
    /// epoch, an unknown id); nil for a verdict that lets the batch through.
    init?(_ verdict: ProducerState.Verdict) {
        switch verdict {
        case .append, .duplicate: return nil
        case .outOfOrder(let message): self.init(.outOfOrderSequence, message)
        case .fenced(let message): self.init(.producerFenced, message)
        case .unknownProducer(let message): self.init(.unknownProducerId, message)
        }
    }

    /// The batch breaks a batch rule (docs/produce-subscribe.md).
    static func invalidBatch(_ why: String) -> ProduceFailure { ProduceFailure(.invalidBatch, why) }

    /// The batch is larger than its topic or the log accepts.
    static func messageTooLarge(_ why: String) -> ProduceFailure { ProduceFailure(.messageTooLarge, why) }

    static let corruptBatch = ProduceFailure(.corruptBatch, "records_crc32c does not match the CRC32C of the records bytes")

    /// A batch that can never be admitted: larger than the whole in-flight memory budget.
    static func throttled(batchBytes: Int, budgetBytes: Int) -> ProduceFailure {
        ProduceFailure(
            .throttled,
            "a batch of \(batchBytes) bytes can never fit the broker's in-flight memory budget of \(budgetBytes) bytes (--max-inflight-bytes)")
    }

    /// A batch checked just before a change of leader, appended just after one checked at
    /// the newer epoch: leadership moved under it, so the producer asks for metadata again
    /// and retries, as for any NOT_LEADER.
    static func leaderEpochEnded(topic: String, partition: UInt32, epoch: Int32, latest: Int32) -> ProduceFailure {
        ProduceFailure(.notLeader, "not leader for \(topic)/\(partition): leader epoch \(epoch) ended; the log holds batches of epoch \(latest)")
    }

    /// An append the log refused.
    init(_ error: LogError, topic: String, partition: UInt32) {
        switch error {
        case .batchTooLarge(let bytes, let limit):
            self = .messageTooLarge("batch of \(bytes) bytes exceeds the limit of \(limit) bytes (a batch must fit in one segment: segment.bytes)")
        case .invalidBatch(.recordsChecksumMismatch):
            self = .corruptBatch
        case .invalidBatch(let defect):
            self = .invalidBatch("\(defect)")
        case .closed:
            self.init(.topicDeleted(topic))
        default:
            self.init(.storageError, "partition \(partition) of topic \"\(topic)\" failed: \(error)")
        }
    }

    // What can end an appended batch's wait for durability (`acks` durable or all).

    static func notDurable(baseOffset: Int64, fence: LogError) -> ProduceFailure {
        ProduceFailure(.storageError, "the batch was appended at offset \(baseOffset) but could not be made durable: \(fence)")
    }

    static func deletedBeforeDurable(topic: String) -> ProduceFailure {
        ProduceFailure(.unknownTopic, "topic \"\(topic)\" was deleted before the batch became durable")
    }

    /// The partition held its bound of watermark waits (`LogConfig.maxWatermarkWaits`).
    static func tooManyWaits(baseOffset: Int64, limit: Int) -> ProduceFailure {
        ProduceFailure(
            .throttled,
            "the batch was appended at offset \(baseOffset) but the partition already holds \(limit) waits for durability and data, so its durability cannot be confirmed; send fewer batches at once")
    }

    // acks=all in a cluster (Replication/).

    static func notEnoughReplicas(isr: [UInt32], minimum: Int) -> ProduceFailure {
        ProduceFailure(
            .notEnoughReplicas,
            "the in-sync replicas \(isr) are fewer than the topic's min.insync.replicas \(minimum); nothing was appended")
    }

    static func notEnoughReplicasAfterAppend(baseOffset: Int64, isr: [UInt32], minimum: Int) -> ProduceFailure {
        ProduceFailure(
            .notEnoughReplicasAfterAppend,
            "the batch was appended at offset \(baseOffset), but the in-sync replicas shrank to \(isr), fewer than the topic's min.insync.replicas \(minimum), before it was acknowledged")
    }

    /// The wait ended because this broker stopped leading, or its log was truncated to
    /// follow a new leader: the batch may be lost (or kept by the new leader).
    static func leadershipLost(baseOffset: Int64, topic: String, partition: UInt32) -> ProduceFailure {
        ProduceFailure(
            .notLeader,
            "not leader for \(topic)/\(partition): leadership moved before every in-sync replica had the batch appended at offset \(baseOffset); it may be lost, retry")
    }

    /// The metadata named this broker leader, but its replicas at that epoch could not be
    /// read with it (leadership moving as the batch arrived): nothing is appended, since
    /// an acks=all answer needs the in-sync replicas it waits for.
    static func leadershipChanging(topic: String, partition: UInt32) -> ProduceFailure {
        ProduceFailure(.notLeader, "the leadership of \(topic)/\(partition) is changing; retry")
    }

    static func notDurableInTime(baseOffset: Int64) -> ProduceFailure {
        ProduceFailure(
            .requestTimedOut,
            "the batch was appended at offset \(baseOffset) but did not become durable within the request's timeout")
    }
}

extension ProduceResponse {
    /// This answer refuses its batch.
    mutating func refuse(_ failure: ProduceFailure) {
        error = failure.code
        errorMessage = failure.message
    }
}
