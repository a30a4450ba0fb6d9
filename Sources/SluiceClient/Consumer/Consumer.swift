import DequeModule
public import Logging
import NIOCore
import SluiceAPI
import SluiceWire

/// Reads a topic as an `AsyncSequence` of `ConsumerRecord`s (docs/client.md).
///
/// Iterating opens a `Subscribe` stream for the chosen partitions (all of them when none
/// are named) at their leader (one stream per partition when their leaders differ:
/// `ConsumerSource`) and yields records in offset order per partition. Records before a requested
/// offset (the broker starts at the batch containing it) and, for a timestamp start, records
/// older than the requested time in the first batch, are skipped here. After a dropped
/// connection the iterator reconnects with backoff and resubscribes each partition at the
/// offset after the last record it handed out, so nothing is skipped or repeated; partitions
/// that handed out nothing yet restart from their original position. Each iteration is its
/// own subscription with its own positions.
public struct Consumer: AsyncSequence, Sendable {
    public typealias Element = ConsumerRecord

    /// The first bootstrap broker.
    public let address: BrokerAddress
    /// The brokers the consumer starts from; it subscribes at the partitions' leader.
    public let bootstrap: [BrokerAddress]
    public let topic: String
    /// Partition -> start; nil reads every partition from `defaultStart`.
    public let partitions: [Int: ConsumerStart]?
    public let defaultStart: ConsumerStart
    public let configuration: ConsumerConfiguration
    let logger: Logger
    /// Set by `withConsumer`: its subscriptions end with the scope.
    let scope: ConsumerScope?
    /// Shared by the consumer's iterations.
    let cluster: ClusterView

    public init(
        address: BrokerAddress, topic: String, partitions: [Int: ConsumerStart]? = nil,
        defaultStart: ConsumerStart = .earliest, configuration: ConsumerConfiguration = ConsumerConfiguration(),
        logger: Logger = Logger(label: "sluice.consumer")
    ) {
        self.init(
            bootstrap: [address], topic: topic, partitions: partitions, defaultStart: defaultStart, configuration: configuration,
            logger: logger, scope: nil)
    }

    /// A consumer that starts from the first of `bootstrap` that answers (a non-empty list)
    /// and follows its partitions' leader.
    public init(
        bootstrap: [BrokerAddress], topic: String, partitions: [Int: ConsumerStart]? = nil,
        defaultStart: ConsumerStart = .earliest, configuration: ConsumerConfiguration = ConsumerConfiguration(),
        logger: Logger = Logger(label: "sluice.consumer")
    ) {
        self.init(
            bootstrap: bootstrap, topic: topic, partitions: partitions, defaultStart: defaultStart, configuration: configuration,
            logger: logger, scope: nil)
    }

    init(
        bootstrap: [BrokerAddress], topic: String, partitions: [Int: ConsumerStart]?, defaultStart: ConsumerStart,
        configuration: ConsumerConfiguration, logger: Logger, scope: ConsumerScope?, cluster: ClusterView? = nil
    ) {
        precondition(!bootstrap.isEmpty, "a consumer needs at least one bootstrap broker")
        address = bootstrap[0]
        self.bootstrap = bootstrap
        self.cluster = cluster ?? ClusterView(
            bootstrap: bootstrap.map { var broker = $0; broker.connectTimeout = configuration.connectTimeout; return broker },
            requestTimeout: configuration.requestTimeout, logger: logger)
        self.topic = topic
        self.partitions = partitions
        self.defaultStart = defaultStart
        self.configuration = configuration
        self.logger = logger
        self.scope = scope
    }

    /// The same consumer reading `partitions` only, with the same cluster view and scope.
    func reading(_ partitions: [Int: ConsumerStart]) -> Consumer {
        Consumer(
            bootstrap: bootstrap, topic: topic, partitions: partitions, defaultStart: defaultStart,
            configuration: configuration, logger: logger, scope: scope, cluster: cluster)
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(source: ConsumerSource(consumer: self))
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let source: ConsumerSource

        /// The next record; nil when the broker ended the subscription normally. Throws
        /// `ConsumerError`, or `CancellationError` when the task is cancelled.
        public mutating func next() async throws -> ConsumerRecord? {
            try await source.next()
        }

        /// The offset the next record of `partition` will have, once anything was read from it.
        public func position(of partition: Int) -> Int64? {
            source.position(of: partition)
        }
    }
}

/// Per-partition positions of one subscription, and the skipping rules. Kept apart from
/// the network so the rules are tested on their own.
struct ConsumerPositions {
    /// The offset after the last record handed out, or the requested start offset.
    var nextOffset: [Int: Int64] = [:]
    /// For a timestamp start: records older than this are skipped until one is handed out.
    var notBefore: [Int: Int64] = [:]

    init(starts: [Int: ConsumerStart]) {
        for (partition, start) in starts {
            switch start {
            case .offset(let offset): nextOffset[partition] = offset
            case .timestamp(let milliseconds): notBefore[partition] = milliseconds
            case .earliest, .latest: break
            }
        }
    }

    /// Whether `record` is handed out; updates the position when it is.
    mutating func accept(_ record: RecordBatchCodec.DecodedRecord, partition: Int) -> Bool {
        if let next = nextOffset[partition], record.offset < next { return false }
        if let floor = notBefore[partition] {
            guard record.timestampMs >= floor else { return false }
            notBefore[partition] = nil
        }
        nextOffset[partition] = record.offset + 1
        return true
    }

    /// Where to resume each partition after a reconnect.
    func resumeStart(_ partition: Int, original: ConsumerStart) -> ConsumerStart {
        if let next = nextOffset[partition] { return .offset(next) }
        return original
    }
}

/// The state of one iteration: connection, stream, buffered records, positions.
final class Subscription {
    let consumer: Consumer
    var positions: ConsumerPositions
    private var connection: GRPCClientConnection?
    private var call: ProtobufCall<SubscribeRequest, SubscribeResponse>?
    private var responses: ProtobufCall<SubscribeRequest, SubscribeResponse>.Responses.AsyncIterator?
    private var buffered: Deque<ConsumerRecord> = []
    private var failedAttempts = 0
    private var finished = false

    init(consumer: Consumer) {
        self.consumer = consumer
        positions = ConsumerPositions(starts: consumer.partitions ?? [:])
    }

    deinit {
        call?.cancel()
        if let connection {
            Task { [counted = ClientTasks.begin()] in
                defer { counted.end() }
                await connection.close()
            }
        }
    }

    func next() async throws -> ConsumerRecord? {
        while true {
            if consumer.scope?.isClosed == true {
                finished = true
                await close()
                return nil
            }
            if let record = buffered.popFirst() { return record }
            guard !finished else { return nil }
            try Task.checkCancellation()
            if responses == nil { try await subscribe() }
            do {
                guard let response = try await responses?.next() else {
                    finished = true
                    await close()
                    return nil
                }
                failedAttempts = 0
                try take(response)
            } catch let status as GRPCStatus {
                try Task.checkCancellation()
                await close()
                if consumer.scope?.isClosed == true {
                    finished = true
                    return nil
                }
                guard Self.isRetriable(status.code) else {
                    finished = true
                    throw ConsumerError.refused(status)
                }
                await lostLeader(status)
                try await backOff(after: "\(status.message) (\(status.code))")
            }
        }
    }

    private static func isRetriable(_ code: GRPCStatus.Code) -> Bool {
        code == .unavailable || code == .aborted || code == .unknown || code == .cancelled || code == .deadlineExceeded
    }

    private func take(_ response: SubscribeResponse) throws(ConsumerError) {
        let partition = Int(response.partition)
        for batch in response.batches {
            let records: [RecordBatchCodec.DecodedRecord]
            do {
                records = try RecordBatchCodec.records(
                    of: batch, maxDecompressedBytes: consumer.configuration.maxDecompressedBatchBytes)
            } catch {
                finished = true
                throw ConsumerError.corruptBatch(partition: partition, error)
            }
            for record in records where positions.accept(record, partition: partition) {
                buffered.append(ConsumerRecord(
                    topic: consumer.topic, partition: partition, offset: record.offset, timestampMs: record.timestampMs,
                    key: record.key, value: record.value, headers: record.headers))
            }
        }
    }

    /// Opens the stream; connection failures count as reconnect attempts.
    private func subscribe() async throws {
        while responses == nil {
            do {
                let connection = try await connectToLeader()
                if let scope = consumer.scope, !scope.adopt(connection) {
                    // The `withConsumer` scope ended while this connected.
                    await connection.close()
                    throw CancellationError()
                }
                self.connection = connection
                let request = try await makeRequest(connection)
                let call = try await ProtobufCall<SubscribeRequest, SubscribeResponse>(
                    connection, path: BrokerMethod.subscribe)
                try await call.send(request)
                try await call.finishSending()
                self.call = call
                responses = call.responses.makeAsyncIterator()
            } catch let error as ConsumerError {
                await close()
                finished = true
                throw error
            } catch let status as GRPCStatus where Self.isRetriable(status.code) {
                await close()
                await lostLeader(status)
                try await backOff(after: "\(status.message) (\(status.code))")
            } catch let status as GRPCStatus {
                await close()
                finished = true
                throw ConsumerError.refused(status)
            }
        }
    }

    /// The partitions' leader as the cluster metadata says (the first one's: a subscription
    /// is one stream to one broker, and `ConsumerSource` makes one per partition when their
    /// leaders differ), else the first bootstrap broker that answers, while a metadata
    /// refresh finds the leader.
    private func connectToLeader() async throws -> GRPCClientConnection {
        let first = consumer.partitions?.keys.min() ?? 0
        let timeout = consumer.configuration.connectTimeout
        if let leader = consumer.cluster.leader(of: TopicPartition(topic: consumer.topic, partition: first)) {
            return try await leader.connect(logger: consumer.logger, timeout: timeout)
        }
        consumer.cluster.requestRefresh(reason: "no leader known for \(consumer.topic)/\(first)")
        return try await BrokerAddress.connectFirst(of: consumer.bootstrap, logger: consumer.logger, timeout: timeout).0
    }

    /// A stream that ended "not leader" (the broker's UNAVAILABLE for a partition it does
    /// not lead) waits for fresh metadata before subscribing again, so the next attempt
    /// goes to the new leader; a lost connection asks for it without waiting.
    private func lostLeader(_ status: GRPCStatus) async {
        let reason = "subscription of \(consumer.topic) ended: \(status.message)"
        guard status.code == .unavailable, status.message.hasPrefix("not leader for") else {
            consumer.cluster.requestRefresh(reason: reason)
            return
        }
        let cluster = consumer.cluster
        try? await firstOf(within: consumer.configuration.requestTimeout, timeoutError: CancellationError()) {
            try await cluster.refresh(reason: reason)
        }
    }

    private func makeRequest(_ connection: GRPCClientConnection) async throws -> SubscribeRequest {
        var request = SubscribeRequest(
            topic: consumer.topic, defaultStart: consumer.defaultStart.protobuf,
            minBytes: consumer.configuration.minBytes,
            maxWaitMs: UInt32(clamping: consumer.configuration.maxWait.wholeMilliseconds),
            maxBytes: consumer.configuration.maxBytes)
        var starts = consumer.partitions
        if starts == nil && !positions.nextOffset.isEmpty {
            // Resuming "every partition" with per-partition offsets needs the list.
            let topic: TopicDescription
            do {
                topic = try await SluiceAdminClient(connection: connection, timeout: consumer.configuration.requestTimeout)
                    .describeTopic(named: consumer.topic)
            } catch let status as GRPCStatus where status.code == .notFound {
                throw ConsumerError.refused(status)
            }
            starts = Dictionary(uniqueKeysWithValues: (0..<Int(topic.partitionCount)).map { ($0, consumer.defaultStart) })
        }
        if let starts {
            request.partitions = starts.keys.sorted().map { partition in
                PartitionSubscription(
                    partition: UInt32(partition),
                    start: positions.resumeStart(partition, original: starts[partition] ?? consumer.defaultStart).protobuf)
            }
        }
        return request
    }

    private func backOff(after failure: String) async throws {
        failedAttempts += 1
        let configuration = consumer.configuration
        guard failedAttempts <= configuration.maxReconnectAttempts else {
            finished = true
            throw ConsumerError.reconnectsExhausted(attempts: failedAttempts - 1, last: failure)
        }
        consumer.logger.debug("subscription lost, reconnecting", metadata: ["reason": "\(failure)", "attempt": "\(failedAttempts)"])
        let doublings = min(failedAttempts - 1, 16)
        try await Task.sleep(for: min(configuration.reconnectBackoff * (1 << doublings), configuration.maxReconnectBackoff))
    }

    private func close() async {
        call?.cancel()
        call = nil
        responses = nil
        if let connection {
            consumer.scope?.release(connection)
            await connection.close()
        }
        connection = nil
    }
}
