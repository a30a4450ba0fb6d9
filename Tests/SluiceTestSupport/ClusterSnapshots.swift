import Foundation
import SluiceCluster

/// The first snapshot of `cache` for which `condition` holds; throws `NeverHappened` when
/// none has within `bound` (a hang guard, not a timing assertion). Waits on the cache's
/// stream of snapshots: nothing polls.
public func firstSnapshot(
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

/// A state a test waited for did not come within its bound.
public struct NotObserved: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// The running member that most recently became etcd's raft leader, by its log ("... became
/// leader at term N"); nil when no running member says so.
public func etcdLeader(_ members: [EtcdProcess]) -> EtcdProcess? {
    func term(_ member: EtcdProcess) -> Int {
        let log = (try? String(contentsOf: member.directory.appendingPathComponent("etcd.log"), encoding: .utf8)) ?? ""
        guard let last = log.components(separatedBy: "became leader at term ").dropFirst().last else { return -1 }
        return Int(last.prefix { $0.isNumber }) ?? -1
    }
    return members.filter { $0.isRunning && term($0) >= 0 }.max { term($0) < term($1) }
}
