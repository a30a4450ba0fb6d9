import Foundation
import SluiceCluster
import SluiceStorage
import SluiceTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 15's faults on real processes: three `sluice serve --cluster` brokers in network
/// namespaces, a 3-member etcd, a topic of 3 partitions with replication factor 3 and
/// `min.insync.replicas=2`, written with acks=all while each fault happens. Afterwards the
/// checker (`FaultChecker`, `ReplicaCopies`) says whether every acknowledged record is
/// read exactly once, in order per key, at its acknowledged offset, and whether every
/// replica's files are byte-identical below the high watermark; the report is printed.
/// Partition 0 is the one every fault aims at; the others ride along.
/// $SLUICE_FAULT_ROUNDS repeats each fault (docs/testing.md, "The fault suite").
@Suite(
    "replication under faults", .serialized, .timeLimit(.minutes(5)),
    .enabled(if: EtcdProcess.binary != nil && FaultNetwork.isAvailable, "needs etcd, root and ip netns"))
struct ReplicationFaultTests {
    let target: UInt32 = 0

    @Test("kill -9 the leader during produce, then bring it back", arguments: ["always", "interval:100"])
    func killLeader(fsync: String) async throws {
        var settings = FaultSettings()
        settings.fsync = fsync
        try await leaderFault("kill -9 the leader (--fsync \(fsync))", settings) { cluster, history, victim in
            await cluster.broker(victim).crash()
            let moved = try await cluster.newLeader(of: target, replacing: victim)
            try await cluster.broker(victim).start()
            return "killed leader \(victim), restarted; \(describe(moved))"
        }
    }

    @Test("kill -9 a follower during produce and bring it back")
    func killFollower() async throws {
        try await leaderFault("kill -9 a follower") { cluster, history, leader in
            let state = try #require(cluster.current.partition(FaultCluster.topic, target))
            let follower = try #require(state.isr.first { $0 != leader })
            await cluster.broker(follower).crash()
            let before = history.ackedCount
            try await eventually("writes go on without the follower", within: .seconds(60)) { history.ackedCount >= before + 40 }
            try await cluster.broker(follower).start()
            return "killed follower \(follower) at \(before) acked, restarted at \(history.ackedCount)"
        }
    }

    @Test("SIGSTOP the leader past its lease, then SIGCONT: its late appends are fenced, none acknowledged")
    func pauseLeader() async throws {
        try await leaderCutOff("SIGSTOP the leader past its lease, then SIGCONT") { cluster, victim in
            cluster.broker(victim).signal(SIGSTOP)
        } restore: { cluster, victim in
            cluster.broker(victim).signal(SIGCONT)
        }
    }

    @Test("isolate the leader from etcd and the other brokers, then heal")
    func isolateLeader() async throws {
        try await leaderCutOff("isolate the leader, then heal") { cluster, victim in
            try cluster.network.isolate(victim)
        } restore: { cluster, victim in
            try cluster.network.heal(victim)
        }
    }

    /// The leader of the target partition cut off (`cut`) during produce until another
    /// leads and 40 more records are acknowledged there, then restored: the old leader
    /// comes back believing it leads, and nothing it appends alone may be acknowledged.
    func leaderCutOff(
        _ fault: String, cut: @escaping @Sendable (FaultCluster, UInt32) throws -> Void,
        restore: @escaping @Sendable (FaultCluster, UInt32) throws -> Void
    ) async throws {
        try await leaderFault(fault) { cluster, history, victim in
            try cut(cluster, victim)
            let moved = try await cluster.newLeader(of: target, replacing: victim)
            let before = history.ackedCount
            try await eventually("writes go on at the new leader", within: .seconds(60)) { history.ackedCount >= before + 40 }
            try restore(cluster, victim)
            return "cut off leader \(victim), \(describe(moved)), restored at \(history.ackedCount) acked"
        }
    }

    @Test("back-to-back failovers, each killed leader with an unacknowledged tail")
    func backToBackFailovers() async throws {
        try await leaderFault("back-to-back failovers") { cluster, _, first in
            await cluster.broker(first).crash()
            let second = try #require(try await cluster.newLeader(of: target, replacing: first).partition(FaultCluster.topic, target)?.leader)
            try await cluster.broker(first).start()
            // The second leader dies before the first can have caught up with it.
            await cluster.broker(second).crash()
            let moved = try await cluster.newLeader(of: target, replacing: second)
            try await cluster.broker(second).start()
            return "killed \(first), then \(second) at once: \(describe(moved))"
        }
    }

    @Test("an idempotent producer's leader killed between append and answer, three times in a row: nothing stored twice")
    func repeatedLeaderKills() async throws {
        // Each kill lands while acks=all batches are appended and waiting for the
        // followers' syncs, so some are stored but unanswered; the producer retries them
        // at the next leader, which knows their sequences from the copied producer state.
        // Without idempotence ($SLUICE_FAULT_IDEMPOTENT=0) such retries are stored twice:
        // docs/testing.md quotes that calibration.
        try await faultRounds("kill the leader three times under an idempotent producer") { cluster, history, round, notes in
            var kills: [String] = []
            try await underLoad(cluster, history, round: round, records: 480) {
                for _ in 0..<3 {
                    let victim = try #require(cluster.leader(of: target))
                    await cluster.broker(victim).crash()
                    let moved = try await cluster.newLeader(of: target, replacing: victim)
                    try await cluster.broker(victim).start()
                    kills.append("killed \(victim), \(describe(moved))")
                    let before = history.ackedCount
                    try await eventually("writes go on at the new leader", within: .seconds(60)) { history.ackedCount >= before + 30 }
                }
            }
            notes.append("round \(round): \(kills.joined(separator: "; "))")
        }
    }

    @Test("kill the etcd leader during a leadership change")
    func killEtcdLeader() async throws {
        try await leaderFault("kill the etcd leader during a leadership change") { cluster, _, victim in
            let member = try #require(etcdLeader(cluster.etcd))
            await cluster.broker(victim).crash()
            await member.crash()
            let moved = try await cluster.newLeader(of: target, replacing: victim)
            try member.restart()
            try await cluster.broker(victim).start()
            return "killed leader \(victim) and etcd leader \(member.name): \(describe(moved))"
        }
    }

    @Test("a flipped bit in a follower's stored batch: detected, refetched, never elected while damaged")
    func flippedBit() async throws {
        try await faultRounds("a flipped bit in a follower's batch") { cluster, history, round, notes in
            await FaultWorkload(records: 120).run(bootstrap: cluster.bootstrap, history: history, firstSequence: round * 1000)
            let ready = try await cluster.fullyReplicated("every replica in sync before the damage")
            let state = try #require(ready.partition(FaultCluster.topic, target))
            let leader = try #require(state.leader)
            let damaged = try #require(state.isr.first { $0 != leader })
            await cluster.broker(damaged).crash()
            _ = try await cluster.snapshot("broker \(damaged) out of partition \(target)'s ISR") {
                $0.partition(FaultCluster.topic, target)?.isr.contains(damaged) == false
            }
            notes.append("round \(round): " + flipBit(in: cluster.broker(damaged), partition: Int(target)))
            try await cluster.broker(damaged).start()
            // The leader dies before the damaged replica could be repaired and put back.
            await cluster.broker(leader).crash()
            let moved = try await cluster.newLeader(of: target, replacing: leader)
            let elected = moved.partition(FaultCluster.topic, target)?.leader
            #expect(elected != damaged, "the damaged replica \(damaged) was elected: \(describe(moved))")
            notes.append("round \(round): killed leader \(leader): \(describe(moved))")
            try await cluster.broker(leader).start()
            await FaultWorkload(records: 60).run(bootstrap: cluster.bootstrap, history: history, firstSequence: round * 1000 + 500)
        }
    }

    // MARK: Driving a fault

    /// Runs `round` of a fault `FaultSettings.rounds` times on one cluster (each round
    /// starts with every replica in sync), then the verdict; expects it passed.
    func faultRounds(
        _ fault: String, _ settings: FaultSettings = FaultSettings(),
        _ round: (FaultCluster, FaultHistory, Int, inout [String]) async throws -> Void
    ) async throws {
        try await FaultCluster.run(settings) { cluster in
            let history = FaultHistory()
            var notes: [String] = []
            // A fault that cannot run to its end (a broker died, a leader never moved)
            // still gets its report of what was acknowledged up to then; then it fails.
            var interrupted: (any Error)?
            do {
                for number in 0..<FaultSettings.rounds {
                    if number > 0 { _ = try await cluster.fullyReplicated("every replica in sync before round \(number)") }
                    try await round(cluster, history, number, &notes)
                }
            } catch {
                interrupted = error
            }
            let report = try await cluster.verdict(fault, history: history, notes: notes, interruption: interrupted)
            #expect(report.passed, "\(report)")
            if let interrupted { throw interrupted }
        }
    }

    /// Rounds of `inject`, given the target partition's leader, during produce; what it
    /// returns goes into the report's notes.
    func leaderFault(
        _ fault: String, _ settings: FaultSettings = FaultSettings(),
        _ inject: @escaping (FaultCluster, FaultHistory, UInt32) async throws -> String
    ) async throws {
        try await faultRounds(fault, settings) { cluster, history, round, notes in
            let leader = try #require(cluster.leader(of: target))
            var done = ""
            try await underLoad(cluster, history, round: round) { done = try await inject(cluster, history, leader) }
            notes.append("round \(round): \(done)")
        }
    }

    /// Runs the workload and, once `faultAfter` records of this round are acknowledged,
    /// `fault` while the workload goes on; returns when both are done.
    func underLoad(
        _ cluster: FaultCluster, _ history: FaultHistory, round: Int, records: Int = 240, faultAfter: Int = 40,
        _ fault: () async throws -> Void
    ) async throws {
        let base = history.ackedCount
        async let produced: Void = FaultWorkload(records: records).run(bootstrap: cluster.bootstrap, history: history, firstSequence: round * 1000)
        do {
            // Past the producer's delivery timeout (30 s), so the failures it names are there.
            try await eventually("\(faultAfter) records acknowledged before the fault", within: .seconds(40)) {
                if let exit = cluster.unexpectedExits.first { throw NotObserved(description: exit) }
                return history.ackedCount >= base + faultAfter
            }
        } catch {
            // Named with what may explain it: the sends' failures.
            let failures = history.failureSummary
            throw failures.isEmpty ? error : NotObserved(description: "\(error); sends failed: \(failures.joined(separator: "; "))")
        }
        try await fault()
        await produced
    }

    func describe(_ snapshot: ClusterSnapshot) -> String {
        guard let state = snapshot.partition(FaultCluster.topic, target) else { return "partition \(target) unknown" }
        return "partition \(target) now \(state)"
    }

    /// Flips one bit in the records of the first batch of `broker`'s copy of `partition`
    /// (below the high watermark: every replica was in sync); what it did, for the notes.
    func flipBit(in broker: FaultBroker, partition: Int) -> String {
        guard let directory = broker.partitionDirectory(topic: FaultCluster.topic, partition: partition),
              let copy = try? ReplicaCopy(directory: directory), let batch = copy.batches.first
        else { return "broker \(broker.id) holds no batch of partition \(partition) to damage" }
        let position = UInt64(batch.position + BatchHeader.size)
        guard let handle = FileHandle(forUpdatingAtPath: batch.segment) else { return "cannot open \(batch.segment)" }
        defer { try? handle.close() }
        handle.seek(toFileOffset: position)
        let byte = handle.readData(ofLength: 1)
        handle.seek(toFileOffset: position)
        handle.write(Data([byte.first! ^ 0x04]))
        return "flipped bit 2 of byte \(position) (the batch at offset \(batch.header.baseOffset)) in broker \(broker.id)'s \(batch.segment)"
    }
}
