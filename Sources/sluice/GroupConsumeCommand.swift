import ArgumentParser
import Foundation
import Logging
import SluiceAPI
import SluiceClient
import Synchronization

/// The options of `sluice consume --group`.
struct GroupConsumeOptions: ParsableArguments {
    @Option(help: "Read as a member of this consumer group; runs until SIGTERM/SIGINT or --max-messages.")
    var group: String?
    @Option(help: "With --group: at-least-once (commit after printing a batch) or at-most-once (commit before).")
    var delivery: DeliveryArgument = .atLeastOnce
    @Option(help: "With --group: a stable id for static membership (a restart within the session timeout keeps the partitions).")
    var instanceId: String?
    @Option(help: "With --group: the session timeout in ms (broker default when absent).")
    var sessionTimeoutMs: UInt32?
    @Option(help: "With --group: the assignment strategy: sticky, range or round-robin.")
    var strategy: StrategyArgument = .sticky
    @Option(help: "With --group: where a partition without a committed offset starts: earliest, latest or error.")
    var resetPolicy: ResetPolicyArgument = .earliest
    @Option(help: "For tests only: with --group, pause this many milliseconds after printing each record (a slow consumer).")
    var processingDelayMs: UInt32 = 0

    enum DeliveryArgument: String, ExpressibleByArgument, CaseIterable {
        case atLeastOnce = "at-least-once"
        case atMostOnce = "at-most-once"
    }

    enum StrategyArgument: String, ExpressibleByArgument, CaseIterable {
        case sticky, range
        case roundRobin = "round-robin"

        var strategy: AssignmentStrategy {
            switch self {
            case .sticky: .sticky
            case .range: .range
            case .roundRobin: .roundRobin
            }
        }
    }

    enum ResetPolicyArgument: String, ExpressibleByArgument, CaseIterable {
        case earliest, latest, error

        var policy: OffsetResetPolicy {
            switch self {
            case .earliest: .earliest
            case .latest: .latest
            case .error: .error
            }
        }
    }
}

extension ConsumeCommand {
    func validateGroupOptions() throws {
        guard groupOptions.group != nil else { return }
        guard partitions.isEmpty else { throw ValidationError("--partition cannot be used with --group: the group assigns partitions") }
        guard !follow else { throw ValidationError("--group always follows; leave out --follow") }
    }

    /// `sluice consume --group`: one line per record on stdout, written as the record is
    /// processed (unbuffered), in --format; membership changes on stderr, one line each:
    ///   sluice: joined group G as MEMBER
    ///   sluice: assigned generation N: t/0,t/1 (new: t/1)
    ///   sluice: revoked generation N: t/2
    ///   sluice: lost t/0,t/1: REASON
    ///   sluice: commit refused for t/0: REASON
    func runInGroup() async throws {
        guard let group = groupOptions.group else { return }
        var configuration = GroupConsumerConfiguration(group: group, topics: [topic])
        configuration.delivery = groupOptions.delivery == .atMostOnce ? .atMostOnce : .atLeastOnce(commit: .auto)
        configuration.instanceId = groupOptions.instanceId
        configuration.sessionTimeout = groupOptions.sessionTimeoutMs.map { .milliseconds(Int64($0)) }
        configuration.strategy = groupOptions.strategy.strategy
        configuration.resetPolicy = groupOptions.resetPolicy.policy
        var logger = Logger(label: "sluice")
        logger.logLevel = .critical
        let consumer = GroupConsumer(
            bootstrap: tuning.bootstrap(options.broker), configuration: configuration,
            logger: logger, onEvent: { event in StandardStreams.emit("sluice: \(Self.describe(event, group: group))\n", to: STDERR_FILENO) })

        let signals = ShutdownSignal()
        let stopOnSignal = Task {
            _ = await signals.wait()
            await consumer.close()
        }
        defer { stopOnSignal.cancel() }

        let format = format
        let topicName = topic
        let maxMessages = maxMessages
        let delay = groupOptions.processingDelayMs
        let printed = PrintedCount()
        do {
            try await consumer.run { batch in
                for record in batch.records {
                    StandardStreams.emit(Self.line(record, format: format, topic: topicName) + "\n", to: STDOUT_FILENO)
                    // Simulated processing time, so tests can stop a member in the middle of a batch.
                    if delay > 0 { try? await Task.sleep(for: .milliseconds(Int64(delay))) }
                }
                let total = printed.add(batch.records.count)
                // Stops after the batch that reaches the count, so a commit never covers unprinted records.
                if let maxMessages, total >= maxMessages { await consumer.close() }
            }
        } catch {
            fail("\(error)")
        }
    }

    static func describe(_ event: RebalanceEvent, group: String) -> String {
        func list(_ partitions: [TopicPartition]) -> String {
            partitions.isEmpty ? "-" : partitions.map(\.description).joined(separator: ",")
        }
        switch event {
        case .joined(let memberId): return "joined group \(group) as \(memberId)"
        case .assigned(let generation, let partitions, let added):
            return "assigned generation \(generation): \(list(partitions)) (new: \(list(added)))"
        case .revoked(let generation, let partitions): return "revoked generation \(generation): \(list(partitions))"
        case .lost(let partitions, let reason): return "lost \(list(partitions)): \(reason)"
        case .left(let partitions):
            return partitions.isEmpty ? "left group \(group)" : "left group \(group), releasing \(list(partitions))"
        case .commitRefused(let partitions, let reason): return "commit refused for \(list(partitions)): \(reason)"
        }
    }
}

/// Records printed so far, shared with the handler.
final class PrintedCount: Sendable {
    private let count = Mutex(0)

    func add(_ more: Int) -> Int {
        count.withLock { value in
            value += more
            return value
        }
    }
}
