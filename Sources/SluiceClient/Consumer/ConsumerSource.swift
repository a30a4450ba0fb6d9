import Synchronization

/// What one iteration of a `Consumer` reads from: one `Subscription` (one stream to one
/// broker) while its partitions have one leader, or none is known (a single node, an older
/// broker); one per partition, merged, when the cluster metadata names different leaders,
/// so each partition is read from its own leader.
final class ConsumerSource {
    let consumer: Consumer
    private var single: Subscription?
    private var merged: MergedSubscriptions?

    init(consumer: Consumer) {
        self.consumer = consumer
    }

    func next() async throws -> ConsumerRecord? {
        if single == nil && merged == nil { try await choose() }
        if let merged { return try await merged.next() }
        return try await single?.next()
    }

    func position(of partition: Int) -> Int64? {
        merged?.positions[partition] ?? single?.positions.nextOffset[partition]
    }

    /// Asks for the cluster's metadata once (bounded by the connect timeout; a broker without
    /// the Metadata RPC answers at once), then picks by how many leaders the partitions have.
    private func choose() async throws {
        let cluster = consumer.cluster
        let reason = "the first subscription of \(consumer.topic)"
        if consumer.partitions.map({ $0.count > 1 }) ?? true {
            _ = try? await firstOf(within: consumer.configuration.connectTimeout, timeoutError: CancellationError()) {
                try await cluster.refresh(reason: reason)
            }
            try Task.checkCancellation()
        }
        let metadata = cluster.metadata
        let partitions = consumer.partitions.map { Array($0.keys) } ?? metadata.partitions(of: consumer.topic)
        let leaders = Set(partitions.map { metadata.leader(of: TopicPartition(topic: consumer.topic, partition: $0)) })
        if leaders.count > 1 {
            consumer.logger.debug("the partitions have several leaders: one subscription each", metadata: [
                "topic": "\(consumer.topic)", "partitions": "\(partitions.count)"])
            let starts = consumer.partitions ?? Dictionary(uniqueKeysWithValues: partitions.map { ($0, consumer.defaultStart) })
            merged = MergedSubscriptions(consumer: consumer, starts: starts)
        } else {
            single = Subscription(consumer: consumer)
        }
    }
}

/// One subscription per partition, read at once and handed out in arrival order (each
/// partition's records stay in offset order: one `next()` per partition is outstanding at
/// a time, so a partition reads ahead by one record at most).
final class MergedSubscriptions {
    private struct Outcome: Sendable {
        var partition: Int
        var result: Result<ConsumerRecord?, any Error>
    }

    /// A subscription lent to the task that waits for its next record: one at a time.
    private final class Lent: @unchecked Sendable {
        let subscription: Subscription
        init(_ subscription: Subscription) { self.subscription = subscription }
    }

    private var open: [Int: Lent]
    private var waiting: [Int: Task<Void, Never>] = [:]
    private let outcomes: AsyncStream<Outcome>
    private let sink: AsyncStream<Outcome>.Continuation
    private var iterator: AsyncStream<Outcome>.AsyncIterator
    private(set) var positions: [Int: Int64] = [:]

    init(consumer: Consumer, starts: [Int: ConsumerStart]) {
        open = Dictionary(uniqueKeysWithValues: starts.map { partition, start in
            (partition, Lent(Subscription(consumer: consumer.reading([partition: start]))))
        })
        (outcomes, sink) = AsyncStream.makeStream(of: Outcome.self)
        iterator = outcomes.makeAsyncIterator()
    }

    deinit {
        for task in waiting.values { task.cancel() }
        sink.finish()
    }

    func next() async throws -> ConsumerRecord? {
        while !open.isEmpty {
            for (partition, lent) in open where waiting[partition] == nil {
                waiting[partition] = Task { [sink, counted = ClientTasks.begin()] in
                    defer { counted.end() }
                    do {
                        sink.yield(Outcome(partition: partition, result: .success(try await lent.subscription.next())))
                    } catch {
                        sink.yield(Outcome(partition: partition, result: .failure(error)))
                    }
                }
            }
            guard let outcome = await iterator.next() else { break }
            waiting[outcome.partition] = nil
            switch outcome.result {
            case .success(let record?):
                positions[record.partition] = record.offset + 1
                return record
            case .success(nil):
                open[outcome.partition] = nil
            case .failure(let error):
                stop()
                throw error
            }
        }
        // The stream of outcomes ends only with this iteration's task cancelled.
        stop()
        try Task.checkCancellation()
        return nil
    }

    private func stop() {
        for task in waiting.values { task.cancel() }
        waiting.removeAll()
        open.removeAll()
    }
}
