import SluiceCluster
import Testing

/// `PartitionState.following(live:uncleanElection:)`, the controller's failover rule: a
/// leader only from ISR ∩ live, an ISR that shrinks to its live members but never empties
/// and never takes a replica back, unclean election only when the topic asks for it.
/// Pure functions, no etcd.
@Suite("Failover from the ISR")
struct FailoverRuleTests {
    @Test("a controlled shutdown waits for the partitions it leads that another live in-sync replica can take")
    func partitionsToHandOver() {
        let brokers = Dictionary(uniqueKeysWithValues: [2, 3].map { (UInt32($0), BrokerInfo(id: UInt32($0), address: "h:\($0)")) })
        let topic = ClusterTopic(name: "t", configs: [:], partitions: [
            PartitionState(replicas: [1, 2, 3], leader: 1, leaderEpoch: 0, isr: [1, 2, 3]),  // movable
            PartitionState(replicas: [1, 2, 3], leader: 2, leaderEpoch: 0, isr: [2, 1]),  // led elsewhere
            PartitionState(replicas: [1], leader: 1, leaderEpoch: 0, isr: [1]),  // nobody else to lead it
            PartitionState(replicas: [1, 3], leader: 1, leaderEpoch: 0, isr: [1]),  // 3 is out of sync
        ])
        let other = ClusterTopic(name: "a", configs: [:], partitions: [PartitionState(replicas: [1, 3], leader: 1, leaderEpoch: 2, isr: [3, 1])])
        let snapshot = ClusterSnapshot(clusterName: "c", revision: 1, brokers: brokers, controller: 2, topics: ["t": topic, "a": other])
        #expect(snapshot.partitionsToHandOver(from: 1) == ["a/0", "t/0"])
        var gone = snapshot
        gone.brokers[3] = nil
        #expect(gone.partitionsToHandOver(from: 1) == ["t/0"], "a/0's other in-sync replica is not live")
        #expect(snapshot.partitionsToHandOver(from: 2).isEmpty, "t/1's other in-sync replica is the broker leaving... or not live")
    }

    @Test("preferred-leader election: back to the first replica only when it is live and in sync and the leader is live")
    func preferredLeader() {
        let away = PartitionState(replicas: [1, 2, 3], leader: 2, leaderEpoch: 4, isr: [2, 3, 1])
        #expect(away.preferringFirstReplica(live: [1, 2, 3]) == PartitionState(replicas: [1, 2, 3], leader: 1, leaderEpoch: 5, isr: [2, 3, 1]))
        let outOfSync = PartitionState(replicas: [1, 2, 3], leader: 2, leaderEpoch: 4, isr: [2, 3])
        #expect(outOfSync.preferringFirstReplica(live: [1, 2, 3]) == outOfSync, "broker 1 may lack acknowledged records")
        #expect(away.preferringFirstReplica(live: [2, 3]) == away, "broker 1 is not live")
        #expect(away.preferringFirstReplica(live: [1, 3]) == away, "a leader that left is following(live:)'s to replace")
        let home = PartitionState(replicas: [1, 2, 3], leader: 1, leaderEpoch: 4, isr: [1, 2, 3])
        #expect(home.preferringFirstReplica(live: [1, 2, 3]) == home)
    }

    @Test("a live leader stays at its epoch; the ISR drops the replicas that left")
    func liveLeaderStays() {
        let state = PartitionState(replicas: [1, 2, 3], leader: 1, leaderEpoch: 4, isr: [1, 2, 3])
        #expect(state.following(live: [1, 3]) == PartitionState(replicas: [1, 2, 3], leader: 1, leaderEpoch: 4, isr: [1, 3]))
        #expect(state.following(live: [1, 2, 3]) == state, "nothing changed, nothing written")
    }

    @Test("a leader that left is replaced by the first live ISR member in ISR order, at epoch + 1")
    func newLeaderFromTheISR() {
        let state = PartitionState(replicas: [1, 2, 3], leader: 1, leaderEpoch: 4, isr: [1, 3, 2])
        #expect(state.following(live: [2, 3]) == PartitionState(replicas: [1, 2, 3], leader: 3, leaderEpoch: 5, isr: [3, 2]))
    }

    @Test("a live replica outside the ISR is neither elected nor put back into the ISR")
    func outOfSyncReplicaStaysOut() {
        let state = PartitionState(replicas: [1, 2, 3], leader: 2, leaderEpoch: 1, isr: [2, 3])
        #expect(state.following(live: [1, 2, 3]) == state, "broker 1 returns: its leader adds it once it caught up")
        // The leader leaves: 3 (in sync) leads, not 1 (first replica, live, out of sync).
        #expect(state.following(live: [1, 3]) == PartitionState(replicas: [1, 2, 3], leader: 3, leaderEpoch: 2, isr: [3]))
    }

    @Test("no ISR member live: no leader at epoch + 1, the ISR kept as it was, never empty")
    func noLiveISRMember() {
        let last = PartitionState(replicas: [1, 2, 3], leader: 2, leaderEpoch: 1, isr: [2])
        #expect(last.following(live: [1, 3]) == PartitionState(replicas: [1, 2, 3], leader: nil, leaderEpoch: 2, isr: [2]))
        let together = PartitionState(replicas: [1, 2, 3], leader: 2, leaderEpoch: 1, isr: [2, 3])
        #expect(together.following(live: [1]) == PartitionState(replicas: [1, 2, 3], leader: nil, leaderEpoch: 2, isr: [2, 3]))
        #expect(together.following(live: []) == PartitionState(replicas: [1, 2, 3], leader: nil, leaderEpoch: 2, isr: [2, 3]))
    }

    @Test("a partition without a leader gets one as soon as an ISR member is live again, and only then")
    func leaderlessGetsALeaderBack() {
        let leaderless = PartitionState(replicas: [1, 2, 3], leader: nil, leaderEpoch: 2, isr: [2, 3])
        #expect(leaderless.following(live: [1]) == leaderless, "1 is out of sync: still no leader, nothing written")
        #expect(leaderless.following(live: [1, 3]) == PartitionState(replicas: [1, 2, 3], leader: 3, leaderEpoch: 3, isr: [3]))
        #expect(leaderless.following(live: [1, 2, 3]) == PartitionState(replicas: [1, 2, 3], leader: 2, leaderEpoch: 3, isr: [2, 3]))
    }

    @Test("unclean election, when the topic enables it: the first live replica leads alone, only when no ISR member is live")
    func uncleanElection() {
        let leaderless = PartitionState(replicas: [1, 2, 3], leader: nil, leaderEpoch: 2, isr: [2])
        #expect(leaderless.following(live: [3, 1], uncleanElection: true)
            == PartitionState(replicas: [1, 2, 3], leader: 1, leaderEpoch: 3, isr: [1]))
        #expect(leaderless.following(live: [], uncleanElection: true) == leaderless, "nobody live: nobody leads")
        let led = PartitionState(replicas: [1, 2, 3], leader: 2, leaderEpoch: 1, isr: [2, 3])
        #expect(led.following(live: [1, 3], uncleanElection: true)
            == PartitionState(replicas: [1, 2, 3], leader: 3, leaderEpoch: 2, isr: [3]), "an ISR member live: a clean election")
        #expect(led.following(live: [1], uncleanElection: true) == PartitionState(replicas: [1, 2, 3], leader: 1, leaderEpoch: 2, isr: [1]))
        #expect(led.following(live: [1]) == PartitionState(replicas: [1, 2, 3], leader: nil, leaderEpoch: 2, isr: [2, 3]))
    }

    @Test("a new partition has every replica in its ISR; failovers in a row keep the state well formed with the epoch counting leader changes")
    func epochsCountLeaderChanges() {
        var state = PartitionState(newOn: [1, 2, 3])
        #expect(state.isr == [1, 2, 3])
        var changes: UInt32 = 0
        for live: Set<UInt32> in [[2, 3], [3], [], [1], [1, 2], [1, 2, 3], [2]] {
            let next = state.following(live: live)
            #expect(next.isWellFormed && !next.isr.isEmpty, "\(next)")
            if next.leader != state.leader { changes += 1 }
            state = next
        }
        // 1 → 2 → 3 → none; 1 and 2 return out of sync (no leader); 3 returns and leads; 3 leaves.
        #expect(state == PartitionState(replicas: [1, 2, 3], leader: nil, leaderEpoch: 5, isr: [3]))
        #expect(changes == 5)
    }
}
