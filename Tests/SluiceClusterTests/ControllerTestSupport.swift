import Logging
import NIOCore
import SluiceAPI
import SluiceCluster
import Foundation
import SluiceTestSupport

/// The first snapshot of `cache` for which `condition` holds; throws `NeverHappened` when
/// none has within `bound` (a hang guard, not a timing assertion). Waits on the cache's
/// stream of snapshots: nothing polls.
func firstSnapshot(
    of cache: ClusterMetadataCache, within bound: Duration = .seconds(40), _ what: String,
    where condition: @escaping @Sendable (ClusterSnapshot) -> Bool
) async throws -> ClusterSnapshot {
    let found = try await withThrowingTaskGroup(of: ClusterSnapshot?.self) { group in
        group.addTask {
            for await snapshot in cache.snapshots() where condition(snapshot) { return snapshot }
            return nil
        }
        group.addTask {
            // A hang guard: the bound is far above how long the change takes.
            try? await Task.sleep(for: bound)
            return nil
        }
        defer { group.cancelAll() }
        return try await group.next() ?? nil
    }
    guard let found else { throw NotObserved(description: "not within \(bound): \(what)") }
    return found
}

/// Puts a broker's registration key (no lease: it stays until deleted) as a test fixture.
func putBroker(_ id: UInt32, rack: String? = nil, keys: ClusterKeys, client: EtcdClient) async throws {
    try await client.kv.put(key: keys.broker(id), value: BrokerInfo(id: id, address: "127.0.0.1:\(9100 + id)", rack: rack).encoded())
}

/// Stands `info` for controller and returns its term and a `Controller` for it.
func elect(_ info: BrokerInfo, keys: ClusterKeys, client: EtcdClient, ttl: Int64 = 2) async throws -> (ControllerTerm, Controller) {
    let term = try await ControllerElection.stand(info, keys: keys, client: client, leaseTTLSeconds: ttl, logger: etcdTestLogger)
    return (term, Controller(info: info, electionRevision: term.electionRevision, client: client, keys: keys, logger: etcdTestLogger))
}

/// A state a test waited for did not come within its bound.
struct NotObserved: Error, CustomStringConvertible {
    let description: String
}

/// The running member that most recently became etcd's raft leader, by its log ("... became
/// leader at term N"); nil when no running member says so.
func etcdLeader(_ members: [EtcdProcess]) -> EtcdProcess? {
    func term(_ member: EtcdProcess) -> Int {
        let log = (try? String(contentsOf: member.directory.appendingPathComponent("etcd.log"), encoding: .utf8)) ?? ""
        guard let last = log.components(separatedBy: "became leader at term ").dropFirst().last else { return -1 }
        return Int(last.prefix { $0.isNumber }) ?? -1
    }
    return members.filter { $0.isRunning && term($0) >= 0 }.max { term($0) < term($1) }
}
