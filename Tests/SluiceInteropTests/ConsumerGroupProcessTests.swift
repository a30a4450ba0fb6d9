import Foundation
import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 7's acceptance: `sluice consume --group` processes against a real broker. Members
/// print one line per processed record (stdout) and their membership events (stderr); the
/// tests wait on what DescribeGroup, FetchOffsets and those files show, never on time.
/// Record counts are small by default; SLUICE_SOAK=1 multiplies them by 20.
@Suite("Consumer groups across processes", .serialized, .timeLimit(.minutes(10)))
struct ConsumerGroupProcessTests {
    static let soak = ProcessInfo.processInfo.environment["SLUICE_SOAK"] == "1"
    static let recordsPerPhase = soak ? 3_000 : 150
    /// The bound of every wait: for a loaded 2-core machine, not a timing claim.
    static let patience: Duration = .seconds(60)

    func withBroker(_ body: (BrokerProcess, SluiceAdminClient) async throws -> Void) async throws {
        try await withStarted(
            { try await BrokerProcess() }, open: { try await $0.admin() }, close: { await $0.close() },
            stop: { await $0.remove() }, body)
    }

    func createTopic(_ name: String, partitions: UInt32, _ admin: SluiceAdminClient) async throws {
        _ = try await admin.createTopic(CreateTopicRequest(name: name, partitions: partitions))
    }

    /// Produces `count` keyed records "v-<start+i>" and waits for every answer.
    func produce(_ topic: String, from start: Int, count: Int, to broker: BrokerProcess, partition: Int? = nil) async throws {
        var configuration = ProducerConfiguration()
        configuration.linger = .milliseconds(20)
        let producer = Producer(address: broker.address, configuration: configuration)
        var deliveries: [Delivery] = []
        for index in start..<(start + count) {
            deliveries.append(try await producer.enqueue(
                topic: topic, key: ByteBuffer(string: "k-\(index)"), value: ByteBuffer(string: "v-\(index)"), partition: partition))
        }
        await producer.flush()
        for delivery in deliveries { _ = try await delivery.result() }
        await producer.close()
    }

    /// DescribeGroup, or nil while the broker does not know the group yet.
    func describe(_ group: String, _ admin: SluiceAdminClient) async throws -> GroupDescription? {
        do {
            return try await admin.describeGroup(named: group)
        } catch let status as GRPCStatus where status.code == .notFound {
            return nil
        }
    }

    /// Waits until the group is stable with exactly `members` (member ids) owning every partition.
    @discardableResult
    func waitForStable(_ group: String, members: [GroupMemberProcess], partitions: Int, _ admin: SluiceAdminClient) async throws -> GroupDescription {
        var last: GroupDescription?
        do {
            try await eventually("group \(group) stable with \(members.map(\.name))", within: Self.patience) {
                guard let description = try await describe(group, admin) else { return false }
                last = description
                let ids = Set(members.compactMap(\.memberId))
                guard ids.count == members.count, description.state == .stable,
                      Set(description.members.map(\.memberId)) == ids
                else { return false }
                let owned = description.members.flatMap { $0.assigned.flatMap(\.partitions) }
                return owned.count == partitions && Set(owned).count == partitions
                    && description.members.allSatisfy { $0.pendingRevocation.flatMap(\.partitions).isEmpty }
            }
        } catch {
            Issue.record("last description: \(String(describing: last)); stderr: \(members.map { "\($0.name): \($0.stderr)" })")
            throw error
        }
        guard let last else { throw TestProcessError("no description") }
        return last
    }

    func waitForZeroLag(_ group: String, topic: String, _ admin: SluiceAdminClient) async throws {
        let described = try await admin.describeTopic(named: topic)
        try await eventually("lag of \(group) reaches zero", within: Self.patience) {
            guard let description = try await describe(group, admin) else { return false }
            let lags = description.partitions.filter { $0.topic == topic }
            return lags.count == Int(described.partitionCount) && lags.allSatisfy { $0.lag == 0 && $0.committedOffset == $0.logEndOffset }
        }
    }

    static func owners(_ description: GroupDescription) -> [Int: String] {
        var owners: [Int: String] = [:]
        for member in description.members {
            for partition in member.assigned.flatMap(\.partitions) { owners[Int(partition)] = member.memberId }
        }
        return owners
    }

    /// Partitions named by "revoked generation N: t/0,t/1" lines in `text`.
    static func revoked(in text: Substring) -> [Int] {
        text.split(separator: "\n").filter { $0.contains("revoked generation") }.flatMap { line -> [Int] in
            guard let list = line.split(separator: ": ").last else { return [] }
            return list.split(separator: ",").compactMap { $0.split(separator: "/").last.flatMap { Int($0) } }
        }
    }

    @Test("three members, one SIGKILLed, a fourth added: nothing lost (at-least-once) or nothing repeated (at-most-once)",
          arguments: ["at-least-once", "at-most-once"])
    func killAndScale(delivery: String) async throws {
        try await withBroker { broker, admin in
            let topic = "orders"
            try await createTopic(topic, partitions: 6, admin)
            // A SIGKILLed dynamic member's stream breaks, which removes it at once; the long
            // session timeout only keeps a member stalled by a loaded machine from expiring.
            let member = { (name: String, group: String) in
                try GroupMemberProcess(name: name, broker: broker, arguments: [
                    "--topic", topic, "--group", group, "--delivery", delivery, "--session-timeout-ms", "10000",
                    "--processing-delay-ms", "3",
                ])
            }
            var members = [try member("m1", "billing")]
            try await waitForStable("billing", members: members, partitions: 6, admin)
            members.append(try member("m2", "billing"))
            members.append(try member("m3", "billing"))
            // A second group reads the same topic on its own.
            let audit = try member("audit", "audit")
            let beforeKill = try await waitForStable("billing", members: members, partitions: 6, admin)

            let perPhase = Self.recordsPerPhase
            try await produce(topic, from: 0, count: perPhase, to: broker)
            let victim = members[0]
            try await eventually("the victim processes records", within: Self.patience) { victim.records.count >= 5 }
            await victim.crash()
            try await produce(topic, from: perPhase, count: perPhase, to: broker)
            let survivors = Array(members.dropFirst())
            let afterKill = try await waitForStable("billing", members: survivors, partitions: 6, admin)

            // The fourth member: only the partitions that move are revoked.
            let stderrBefore = survivors.map { $0.stderr.count }
            let fourth = try member("m4", "billing")
            let afterJoin = try await waitForStable("billing", members: survivors + [fourth], partitions: 6, admin)
            #expect(afterJoin.generation > afterKill.generation)
            let before = Self.owners(afterKill)
            let after = Self.owners(afterJoin)
            let moved = Set(before.keys.filter { before[$0] != after[$0] })
            #expect(!moved.isEmpty && moved.count < 6, "the fourth member took some partitions, not all: \(before) -> \(after)")
            for (index, survivor) in survivors.enumerated() {
                let newText = survivor.stderr.dropFirst(stderrBefore[index])
                let revoked = Set(Self.revoked(in: newText))
                #expect(revoked.isSubset(of: moved), "\(survivor.name) revoked only moved partitions: \(revoked) vs \(moved)")
                let lost = moved.filter { before[$0] == survivor.memberId }
                #expect(revoked == lost, "\(survivor.name) gave up exactly what moved away from it: \(newText)")
            }

            try await produce(topic, from: 2 * perPhase, count: perPhase, to: broker)
            try await waitForZeroLag("billing", topic: topic, admin)
            try await waitForZeroLag("audit", topic: topic, admin)
            for process in survivors + [fourth, audit] {
                #expect(await process.stop() == 0, "\(process.name) leaves and exits 0: \(process.stderr)")
            }

            let total = 3 * perPhase
            let described = try await admin.describeTopic(named: topic)
            var expected = Set<PrintedRecord.Position>()
            for partition in described.partitions {
                for offset in partition.logStartOffset..<partition.highWatermark {
                    expected.insert(.init(partition: Int(partition.partition), offset: offset))
                }
            }
            #expect(expected.count == total)

            let auditRecords = audit.records
            #expect(Set(auditRecords.map(\.position)) == expected, "the second group saw everything")
            #expect(auditRecords.count == total, "the second group, never disturbed, saw each record once")

            let printed = (members + [fourth]).flatMap(\.records)
            var counts: [PrintedRecord.Position: [String]] = [:]
            for record in printed { counts[record.position, default: []].append(record.member) }
            // What the victim held when it was killed (it joined first; nothing moved since).
            let victimPartitions = Set(Self.owners(beforeKill).filter { $0.value == victim.memberId }.keys)
            #expect(!victimPartitions.isEmpty)
            if delivery == "at-least-once" {
                #expect(expected.isSubset(of: Set(counts.keys)), "every record processed at least once")
                for (position, printers) in counts where printers.count > 1 {
                    #expect(printers.count == 2 && printers.contains(victim.name) && victimPartitions.contains(position.partition),
                            "a duplicate only where the killed member processed without committing: \(position) \(printers)")
                }
            } else {
                for (position, printers) in counts {
                    #expect(printers.count == 1, "at-most-once: \(position) processed by \(printers)")
                }
                var lastByVictim: [Int: Int64] = [:]
                for record in victim.records { lastByVictim[record.partition] = max(lastByVictim[record.partition] ?? -1, record.offset) }
                // The victim may have committed a batch and died before printing any of it.
                for missing in expected.subtracting(counts.keys) {
                    #expect(victimPartitions.contains(missing.partition) && (lastByVictim[missing.partition] ?? -1) < missing.offset,
                            "only the killed member's committed-but-unprocessed records may be missing: \(missing)")
                }
            }
        }
    }

    @Test("a static member restarted within its session timeout gets its partitions back without a new generation")
    func staticRestart() async throws {
        try await withBroker { broker, admin in
            try await createTopic("ledger", partitions: 4, admin)
            let member = { (name: String, instance: String?) in
                try GroupMemberProcess(name: name, broker: broker, arguments: [
                    "--topic", "ledger", "--group", "static", "--session-timeout-ms", "30000",
                ] + (instance.map { ["--instance-id", $0] } ?? []))
            }
            let fixed = try member("fixed", "ledger-worker-1")
            let other = try member("other", nil)
            let stable = try await waitForStable("static", members: [fixed, other], partitions: 4, admin)
            let owned = Self.owners(stable).filter { $0.value == fixed.memberId }.keys.sorted()
            let otherStderr = other.stderr.count

            await fixed.crash()
            let restarted = try member("fixed-again", "ledger-worker-1")
            try await eventually("the restarted member is assigned", within: Self.patience) {
                restarted.stderr.contains("assigned generation")
            }
            let assignedLine = restarted.stderr.split(separator: "\n").first { $0.contains("assigned generation") } ?? ""
            #expect(assignedLine.contains("assigned generation \(stable.generation):"), "same generation: \(assignedLine)")
            let now = try await describe("static", admin)
            #expect(now?.generation == stable.generation, "no rebalance")
            let instance = now?.members.first { $0.instanceId == "ledger-worker-1" }
            #expect(instance.map { $0.assigned.flatMap(\.partitions).map(Int.init).sorted() } == owned)
            #expect(!other.stderr.dropFirst(otherStderr).contains("revoked"), "the other member saw no revocation")
            try await produce("ledger", from: 0, count: 20, to: broker)
            try await waitForZeroLag("static", topic: "ledger", admin)
            #expect(await restarted.stop() == 0)
            #expect(await other.stop() == 0)
        }
    }

    @Test("a zombie (SIGSTOP past its session timeout, then SIGCONT) cannot commit for a partition that moved")
    func zombieCannotCommit() async throws {
        try await withBroker { broker, admin in
            try await createTopic("payments", partitions: 1, admin)
            let zombie = try GroupMemberProcess(name: "zombie", broker: broker, arguments: [
                "--topic", "payments", "--group", "pay", "--session-timeout-ms", "3000", "--processing-delay-ms", "2000",
            ])
            try await waitForStable("pay", members: [zombie], partitions: 1, admin)
            try await produce("payments", from: 0, count: 3, to: broker)
            try await eventually("the zombie is in the middle of a batch", within: Self.patience) { !zombie.records.isEmpty }
            zombie.signal(SIGSTOP)

            let successor = try GroupMemberProcess(name: "successor", broker: broker, arguments: [
                "--topic", "payments", "--group", "pay", "--session-timeout-ms", "10000",
            ])
            try await eventually("the successor owns the partition", within: Self.patience) {
                guard let description = try await describe("pay", admin), let id = successor.memberId else { return false }
                return Self.owners(description)[0] == id && description.members.count == 1
            }
            try await waitForZeroLag("pay", topic: "payments", admin)
            try await produce("payments", from: 3, count: 2, to: broker)
            try await waitForZeroLag("pay", topic: "payments", admin)
            let committed = try await admin.fetchOffsets(group: "pay", partitions: [TopicPartitions(topic: "payments", partitions: [0])])
            #expect(committed.first?.offset == 5)

            zombie.signal(SIGCONT)
            try await eventually("the zombie's commit is refused", within: Self.patience) {
                zombie.stderr.contains("commit refused for payments/0")
            }
            let after = try await admin.fetchOffsets(group: "pay", partitions: [TopicPartitions(topic: "payments", partitions: [0])])
            #expect(after.first?.offset == 5, "the new owner's offset is untouched")
            #expect(Set(successor.records.map(\.offset)) == [0, 1, 2, 3, 4], "the successor processed everything")
            await zombie.stop()
            #expect(await successor.stop() == 0)
        }
    }

    @Test("sluice group list, describe, reset-offsets (dry run and real) and delete")
    func groupCommands() async throws {
        try await withBroker { broker, admin in
            try await createTopic("stock", partitions: 2, admin)
            try await produce("stock", from: 0, count: 10, to: broker)
            let server = ["--broker", broker.brokerArgument]
            let once = try await runSluice(["consume", "--topic", "stock", "--group", "inventory", "--max-messages", "10"] + server, in: broker.root)
            #expect(once.status == 0, "\(once.stderr)")
            #expect(once.stdout.split(separator: "\n").count == 10)
            #expect(!once.stderr.contains("sluice: lost") && once.stderr.contains("sluice: left group inventory"),
                    "a graceful exit leaves the group, it does not lose it: \(once.stderr)")

            let list = try await runSluice(["group", "list"] + server, in: broker.root)
            #expect(list.status == 0 && list.stdout.contains("inventory") && list.stdout.contains("Empty"), "\(list.stdout)\(list.stderr)")
            let described = try await runSluice(["group", "describe", "inventory"] + server, in: broker.root)
            #expect(described.status == 0, "\(described.stderr)")
            let header = described.stdout.split(separator: "\n").first { $0.hasPrefix("TOPIC") }
            #expect(header?.split(separator: " ", omittingEmptySubsequences: true)
                == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "OWNER"])
            let rows = described.stdout.split(separator: "\n").filter { $0.hasPrefix("stock ") }.map {
                $0.split(separator: " ", omittingEmptySubsequences: true)
            }
            #expect(rows.count == 2 && rows.allSatisfy { $0[4] == "0" && $0[2] == $0[3] }, "\(described.stdout)")

            let dry = try await runSluice(
                ["group", "reset-offsets", "inventory", "--topic", "stock", "--to-earliest", "--dry-run"] + server, in: broker.root)
            #expect(dry.status == 0 && dry.stdout.contains("dry run"), "\(dry.stderr)")
            let unchanged = try await admin.fetchOffsets(group: "inventory")
            #expect(unchanged.map(\.offset).reduce(0, +) == 10, "a dry run changes nothing")
            let reset = try await runSluice(
                ["group", "reset-offsets", "inventory", "--topic", "stock", "--to-offset", "0", "--partitions", "0,1"] + server,
                in: broker.root)
            #expect(reset.status == 0, "\(reset.stderr)")
            let zeroed = try await admin.fetchOffsets(group: "inventory")
            #expect(!zeroed.isEmpty && zeroed.allSatisfy { $0.offset == 0 })
            let again = try await runSluice(["consume", "--topic", "stock", "--group", "inventory", "--max-messages", "10"] + server, in: broker.root)
            #expect(again.stdout.split(separator: "\n").count == 10, "after the reset the group reads everything again")

            // A negative number after a flag is its value, not a missing one.
            let before = try await admin.fetchOffsets(group: "inventory")
            let shifted = try await runSluice(
                ["group", "reset-offsets", "inventory", "--topic", "stock", "--shift-by", "-2"] + server, in: broker.root)
            #expect(shifted.status == 0, "\(shifted.stderr)")
            let after = try await admin.fetchOffsets(group: "inventory")
            let expected = Dictionary(uniqueKeysWithValues: before.map { ($0.partition, max(0, $0.offset - 2)) })
            #expect(Dictionary(uniqueKeysWithValues: after.map { ($0.partition, $0.offset) }) == expected, "\(before) -> \(after)")

            let noTarget = try await runSluice(["group", "reset-offsets", "inventory", "--topic", "stock"] + server, in: broker.root)
            #expect(noTarget.status == 2, "a usage error exits 2: \(noTarget.stderr)")
            let deleted = try await runSluice(["group", "delete", "inventory"] + server, in: broker.root)
            #expect(deleted.status == 0, "\(deleted.stderr)")
            let gone = try await runSluice(["group", "describe", "inventory"] + server, in: broker.root)
            #expect(gone.status == 1 && gone.stderr.split(separator: "\n").count == 1, "\(gone.stderr)")
        }
    }
}
