public import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceWire

/// Runs one `sluice bench` measurement against a broker and returns its result.
///
/// Producers (one `Producer`, so one connection, each) send on a fixed schedule under
/// `rate` (open loop, see `OpenLoopSchedule`) or as fast as the client accepts; a
/// collector per producer awaits the answers in send order and records each latency from
/// the message's due time. Subscribers (one `Consumer` each, partitions dealt out
/// round-robin) start at the partitions' high watermarks taken before the first send, so
/// in end-to-end mode they see exactly this run's messages.
public struct BenchRunner: Sendable {
    public let settings: BenchSettings
    let progress: @Sendable (String) -> Void
    let logger: Logger
    let clock = BenchClock()

    /// `progress` receives a line every `settings.progressInterval`.
    public init(settings: BenchSettings, logger: Logger? = nil, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        precondition(settings.problem == nil, "settings are validated before a run")
        self.settings = settings
        self.progress = progress
        self.logger = logger ?? {
            var quiet = Logger(label: "sluice.bench")
            quiet.logLevel = .critical
            return quiet
        }()
    }

    public func run() async throws -> BenchResult {
        let hardDeadline = clock.now + settings.timeLimit.nanoseconds
        let topic = try await prepareTopic()
        let tally = BenchTally()
        let reporter = Task { await reportProgress(tally) }
        defer { reporter.cancel() }
        switch settings.mode {
        case .produce, .endToEnd:
            return try await runProducers(topic: topic, tally: tally, hardDeadline: hardDeadline)
        case .consume:
            return try await runCatchUp(topic: topic, tally: tally, hardDeadline: hardDeadline)
        }
    }

    // MARK: Topic

    /// Describes the topic, creating it with `settings.partitions` when it does not exist.
    func prepareTopic() async throws -> TopicDescription {
        let admin = try await SluiceAdminClient(bootstrap: settings.brokers, logger: logger)
        do {
            let topic = try await describeOrCreate(admin)
            await admin.close()
            return topic
        } catch {
            await admin.close()
            throw error
        }
    }

    private func describeOrCreate(_ admin: SluiceAdminClient) async throws -> TopicDescription {
        do {
            return try await admin.describeTopic(named: settings.topic)
        } catch let status as GRPCStatus where status.code == .notFound && settings.mode != .consume {
            do {
                return try await admin.createTopic(CreateTopicRequest(name: settings.topic, partitions: UInt32(settings.partitions)))
            } catch let status as GRPCStatus where status.code == .alreadyExists {
                // Another bench created it meanwhile.
                return try await admin.describeTopic(named: settings.topic)
            }
        }
    }

    // MARK: Produce and end to end

    func runProducers(topic: TopicDescription, tally: BenchTally, hardDeadline: Int64) async throws -> BenchResult {
        let runID = UInt64.random(in: 1...UInt64.max)
        let start = clock.now
        let measureStart = start + settings.warmup.nanoseconds
        let stopAt = settings.duration.map { measureStart + $0.nanoseconds } ?? (settings.messages == nil ? measureStart + Duration.seconds(10).nanoseconds : nil)
        let plan = SendPlan(
            runID: runID, start: start, measureStart: measureStart,
            stopAt: min(stopAt ?? hardDeadline, hardDeadline), filler: BenchPayload.filler(size: settings.messageSize, seed: runID))

        var subscribers: [Task<MessageLedger, Never>] = []
        if settings.mode == .endToEnd {
            let starts = Dictionary(uniqueKeysWithValues: topic.partitions.map { (Int($0.partition), ConsumerStart.offset($0.highWatermark)) })
            for assigned in Self.deal(partitions: starts.keys.sorted(), among: settings.consumers) {
                let positions = starts.filter { assigned.contains($0.key) }
                subscribers.append(Task { await subscribe(positions, runID: runID, measureStart: measureStart, tally: tally) })
            }
        }

        var acked = MessageLedger(senders: settings.producers)
        await withTaskGroup(of: MessageLedger.self) { group in
            for index in 0..<settings.producers {
                group.addTask { await produce(sender: index, plan: plan, tally: tally) }
            }
            for await ledger in group { acked.merge(ledger) }
        }

        // With acks none the producer's "delivered" means "written to the socket": the run
        // ends when the log end reaches what was sent, found the way a peer without per-message
        // answers finds it (NATS JetStream's stream info in bench/nats-bench.py).
        var logEndReachedAt: Int64?
        if settings.acks == .none, settings.mode == .produce {
            logEndReachedAt = try await waitForLogEnd(
                from: topic, toInclude: tally.final().sent, deadline: hardDeadline)
        }

        var received: MessageLedger?
        if !subscribers.isEmpty {
            // Wait (bounded) for the subscribers to receive what was acknowledged.
            let expected = settings.acks == .none ? tally.final().sent : acked.count
            let drainDeadline = min(clock.now + settings.drainTimeout.nanoseconds, hardDeadline)
            while tally.consumedCount < expected, clock.now < drainDeadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
            var merged = MessageLedger(senders: settings.producers)
            for subscriber in subscribers {
                subscriber.cancel()
                merged.merge(await subscriber.value)
            }
            received = merged
        }
        var result = result(tally: tally, measureStart: measureStart, hardDeadline: hardDeadline, acked: acked, received: received)
        if let logEndReachedAt {
            let seconds = Double(max(logEndReachedAt - measureStart, 1)) / 1e9
            result.completion = "log end"
            result.seconds = seconds
            result.messagesPerSecond = Double(result.measuredMessages) / seconds
            result.megabytesPerSecond = Double(result.measuredMessages * settings.messageSize) / 1e6 / seconds
        }
        return result
    }

    /// Polls the topic until the partitions' high watermarks (the log end under fsync never)
    /// have grown by `count` records since `topic` was described; returns when they had.
    /// Polling every 5 ms is what the NATS driver does with its stream info: the same
    /// resolution on both sides.
    func waitForLogEnd(from topic: TopicDescription, toInclude count: Int, deadline: Int64) async throws -> Int64 {
        let startSum = topic.partitions.reduce(Int64(0)) { $0 + $1.highWatermark }
        let admin = try await SluiceAdminClient(bootstrap: settings.brokers, logger: logger)
        do {
            while clock.now < deadline {
                let now = try await admin.describeTopic(named: settings.topic)
                let stored = now.partitions.reduce(Int64(0)) { $0 + $1.highWatermark } - startSum
                if stored >= Int64(count) {
                    let reachedAt = clock.now
                    await admin.close()
                    return reachedAt
                }
                try await Task.sleep(for: .milliseconds(5))
            }
            throw BenchLogEndTimeout(expected: count)
        } catch {
            await admin.close()
            throw error
        }
    }

    /// What every sender shares.
    struct SendPlan: Sendable {
        var runID: UInt64
        var start: Int64
        var measureStart: Int64
        var stopAt: Int64
        var filler: [UInt8]
    }

    struct Pending: Sendable {
        var delivery: Delivery
        var sequence: Int
        var due: Int64
    }

    /// One producer's sending loop and its collector; returns the acknowledged messages.
    func produce(sender: Int, plan: SendPlan, tally: BenchTally) async -> MessageLedger {
        let producer = Producer(bootstrap: settings.brokers, configuration: settings.producerConfiguration, logger: logger)
        let (stream, continuation) = AsyncStream<[Pending]>.makeStream()
        let collector = Task { await collect(stream, sender: sender, plan: plan, tally: tally) }
        let schedule = settings.rate.map {
            // Senders are offset by a fraction of their interval so they do not fire together.
            let perSender = $0 / Double(settings.producers)
            return OpenLoopSchedule(
                startNanoseconds: plan.start + Int64(1e9 / $0 * Double(sender)), ratePerSecond: perSender)
        }
        let quota = settings.messages.map { $0 / settings.producers + (sender < $0 % settings.producers ? 1 : 0) }
        let allocator = ByteBufferAllocator()
        var chunk: [Pending] = []
        var sequence = 0
        while !Task.isCancelled {
            if let quota, sequence >= quota { break }
            let due: Int64
            if let schedule {
                due = schedule.dueTime(of: sequence)
                // The offer ends with the run: a sender still behind at the end (the broker
                // took less than the rate) stops there rather than sending the whole overdue
                // backlog; what it never sent is offered but not accepted (rate x duration
                // against `sent`), which is how a surge above capacity must be read.
                if due >= plan.stopAt || clock.now >= plan.stopAt { break }
                if due > clock.now {
                    // About to wait: hand over what was sent so its answers are timed promptly.
                    if !chunk.isEmpty { continuation.yield(chunk); chunk = [] }
                    do { try await Task.sleep(until: clock.instant(at: due), clock: .continuous) } catch { break }
                }
            } else {
                due = clock.now
                if due >= plan.stopAt { break }
            }
            let header = BenchPayload.Header(dueNanoseconds: due, sender: sender, sequence: sequence, runID: plan.runID)
            var key: ByteBuffer?
            if settings.keyed {
                var buffer = allocator.buffer(capacity: 8)
                buffer.writeInteger(header.messageID)
                key = buffer
            }
            do {
                let delivery = try await producer.enqueue(
                    topic: settings.topic, key: key, value: BenchPayload.encode(header, filler: plan.filler, allocator: allocator))
                tally.sent()
                chunk.append(Pending(delivery: delivery, sequence: sequence, due: due))
            } catch {
                tally.failed("\(error)")
                break
            }
            sequence += 1
            if chunk.count >= 64 { continuation.yield(chunk); chunk = [] }
        }
        if !chunk.isEmpty { continuation.yield(chunk) }
        continuation.finish()
        let acked = await collector.value
        await producer.close()
        return acked
    }

    /// Awaits each answer in send order and records its latency from the due time.
    func collect(_ stream: AsyncStream<[Pending]>, sender: Int, plan: SendPlan, tally: BenchTally) async -> MessageLedger {
        var acked = MessageLedger(senders: settings.producers)
        for await chunk in stream {
            for pending in chunk {
                do {
                    _ = try await pending.delivery.result()
                    let now = clock.now
                    tally.acked(at: now, latencyNanoseconds: now - pending.due, measured: pending.due >= plan.measureStart)
                    acked.mark(sender: sender, sequence: pending.sequence)
                } catch {
                    tally.failed("\(error)")
                }
            }
        }
        return acked
    }

    /// One subscriber of end-to-end mode; returns the messages it received.
    func subscribe(_ positions: [Int: ConsumerStart], runID: UInt64, measureStart: Int64, tally: BenchTally) async -> MessageLedger {
        var received = MessageLedger(senders: settings.producers)
        let consumer = Consumer(
            bootstrap: settings.brokers, topic: settings.topic, partitions: positions,
            configuration: settings.consumerConfiguration, logger: logger)
        do {
            for try await record in consumer {
                let now = clock.now
                guard let header = BenchPayload.decode(record.value), header.runID == runID,
                      header.sender < settings.producers
                else {
                    tally.foreignRecord()
                    continue
                }
                received.mark(sender: header.sender, sequence: header.sequence)
                tally.consumed(
                    at: now, bytes: record.value.readableBytes, latencyNanoseconds: now - header.dueNanoseconds,
                    measured: header.dueNanoseconds >= measureStart)
            }
        } catch is CancellationError {
            // The run is over.
        } catch {
            if !Task.isCancelled { tally.note("subscriber: \(error)") }
        }
        return received
    }

    // MARK: Catch-up read

    func runCatchUp(topic: TopicDescription, tally: BenchTally, hardDeadline: Int64) async throws -> BenchResult {
        let start = clock.now
        let stopAt = min(settings.duration.map { start + $0.nanoseconds } ?? hardDeadline, hardDeadline)
        // Read [log start, high watermark) of each non-empty partition.
        let ends = Dictionary(uniqueKeysWithValues: topic.partitions
            .filter { $0.highWatermark > $0.logStartOffset }
            .map { (Int($0.partition), $0.highWatermark) })
        let backlog = topic.partitions.reduce(Int64(0)) { $0 + max($1.highWatermark - $1.logStartOffset, 0) }
        let target = settings.messages.map { min(Int64($0), backlog) } ?? backlog
        await withTaskGroup(of: Void.self) { group in
            for assigned in Self.deal(partitions: ends.keys.sorted(), among: settings.consumers) {
                let mine = ends.filter { assigned.contains($0.key) }
                group.addTask { await readBacklog(mine, target: Int(target), stopAt: stopAt, tally: tally) }
            }
        }
        var result = result(tally: tally, measureStart: start, hardDeadline: hardDeadline, acked: nil, received: nil)
        result.backlog = Int(backlog)
        if result.consumed ?? 0 < target {
            result.errors.append("read \(result.consumed ?? 0) of \(target) backlog records")
            result.passed = false
        }
        return result
    }

    func readBacklog(_ ends: [Int: Int64], target: Int, stopAt: Int64, tally: BenchTally) async {
        let consumer = Consumer(
            bootstrap: settings.brokers, topic: settings.topic, partitions: ends.mapValues { _ in .earliest },
            configuration: settings.consumerConfiguration, logger: logger)
        // The subscription may wait for records that never come (a partition truncated
        // meanwhile): a guard ends it at the stop time.
        let reader = Task {
            var remaining = Set(ends.keys)
            do {
                for try await record in consumer {
                    guard let end = ends[record.partition], record.offset < end else { continue }
                    tally.consumed(at: clock.now, bytes: record.value.readableBytes + (record.key?.readableBytes ?? 0), latencyNanoseconds: nil, measured: true)
                    if record.offset == end - 1 { remaining.remove(record.partition) }
                    if remaining.isEmpty || tally.consumedCount >= target || clock.now >= stopAt { break }
                }
            } catch {
                if !Task.isCancelled { tally.note("subscriber: \(error)") }
            }
        }
        let guardTask = Task {
            try? await Task.sleep(until: clock.instant(at: stopAt), clock: .continuous)
            reader.cancel()
        }
        await reader.value
        guardTask.cancel()
    }

    // MARK: Shared

    /// Partitions dealt round-robin; subscribers beyond the partition count get none.
    static func deal(partitions: [Int], among subscribers: Int) -> [Set<Int>] {
        var sets = Array(repeating: Set<Int>(), count: min(subscribers, partitions.count))
        for (index, partition) in partitions.enumerated() { sets[index % sets.count].insert(partition) }
        return sets
    }

    func result(tally: BenchTally, measureStart: Int64, hardDeadline: Int64, acked: MessageLedger?, received: MessageLedger?) -> BenchResult {
        let state = tally.final()
        var result = BenchResult(settings: settings)
        result.sent = state.sent
        result.acked = state.acked
        result.failed = state.failed
        result.errors = state.errors
        result.timeLimitReached = clock.now >= hardDeadline
        if settings.mode != .consume {
            let seconds = Double(max(state.lastAckAt - measureStart, 1)) / 1e9
            result.seconds = seconds
            result.measuredMessages = state.measuredAcked
            result.messagesPerSecond = Double(state.measuredAcked) / seconds
            result.megabytesPerSecond = Double(state.measuredAcked * settings.messageSize) / 1e6 / seconds
            result.ackLatency = state.ackLatency.summary
        }
        if settings.mode != .produce {
            let seconds = Double(max(state.lastConsumeAt - measureStart, 1)) / 1e9
            result.consumed = state.consumed
            result.consumedPerSecond = Double(state.measuredConsumed) / seconds
            result.consumedMegabytesPerSecond = Double(state.measuredConsumedBytes) / 1e6 / seconds
            if settings.mode == .consume {
                result.seconds = seconds
                result.measuredMessages = state.measuredConsumed
                result.messagesPerSecond = result.consumedPerSecond ?? 0
                result.megabytesPerSecond = result.consumedMegabytesPerSecond ?? 0
            }
        }
        if let acked, let received {
            result.endToEndLatency = state.endToEndLatency.summary
            // With acks none nothing is acknowledged: every sent message is expected.
            result.missing = settings.acks == .none ? max(state.sent - received.count, 0) : received.missing(from: acked)
            result.duplicates = received.repeats
            result.foreign = state.foreign
        }
        result.passed = result.failed == 0 && (result.missing ?? 0) == 0 && (result.duplicates ?? 0) == 0
            && !result.timeLimitReached
        return result
    }

    func reportProgress(_ tally: BenchTally) async {
        let start = clock.now
        var last = tally.snapshot()
        var lastAt = start
        while !Task.isCancelled {
            do { try await Task.sleep(for: settings.progressInterval) } catch { return }
            let now = clock.now
            let snapshot = tally.snapshot()
            progress(BenchReport.progressLine(
                elapsedSeconds: Double(now - start) / 1e9, intervalSeconds: Double(now - lastAt) / 1e9,
                mode: settings.mode, messageSize: settings.messageSize, previous: last, current: snapshot))
            last = snapshot
            lastAt = now
        }
    }
}

extension Duration {
    /// Whole nanoseconds (sub-nanosecond parts dropped).
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
