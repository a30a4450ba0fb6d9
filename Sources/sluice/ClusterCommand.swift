import ArgumentParser
import SluiceAPI
import SluiceClient

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Look at a cluster: brokers, the controller, leaders and in-sync replicas.",
        subcommands: [Status.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Brokers, the controller, and every partition's leader and in-sync replicas, worst first.",
            discussion: """
                A partition is offline (no leader: no reads or writes), below-min-isr (fewer in-sync \
                replicas than its min.insync.replicas: acks=all writes are refused), under-replicated \
                (a replica is out of sync) or ok. With --check the exit status is 3 unless every \
                partition is ok: wait for it between the brokers of a rolling restart.
                """)
        @OptionGroup var options: BrokerOptions
        @Flag(help: "List only partitions that are not ok.") var problems = false
        @Flag(help: "Exit 3 unless every partition is ok.") var check = false

        func run() async throws {
            let status = await options.withAdminClient { client in
                let metadata = try await client.metadata()
                let topics = try await client.listTopics()
                let minInSync = Dictionary(uniqueKeysWithValues: topics.map {
                    ($0.name, $0.configs["min.insync.replicas"].flatMap(Int.init) ?? 1)
                })
                return ClusterStatus(metadata, minInSync: minInSync)
            }
            print(ClusterStatusText.render(status, onlyProblems: problems), terminator: "")
            if check && !status.isHealthy { throw ExitCode(3) }
        }
    }
}

enum ClusterStatusText {
    static func render(_ status: ClusterStatus, onlyProblems: Bool) -> String {
        var text = status.cluster.isEmpty ? "single node" : "cluster \(status.cluster)"
        text += ", controller: " + (status.controller.map { "broker \($0)" } ?? "none")
        text += ", metadata revision \(status.revision), answered by broker \(status.answeredBy)\n"
        text += "brokers (\(status.brokers.count) live):\n"
        for broker in status.brokers {
            let rack = broker.rack.isEmpty ? "" : "  rack \(broker.rack)"
            text += "  \(broker.id)  \(broker.address)\(rack)\(broker.id == status.controller ? "  (controller)" : "")\n"
        }
        text += "partitions: \(status.partitions.count), offline: \(status.count(.offline)), "
        text += "below min ISR: \(status.count(.belowMinInSync)), under-replicated: \(status.count(.underReplicated))\n"
        let shown = status.partitions.filter { !onlyProblems || $0.health != .healthy }
            .sorted { ($0.health, $0.topic, $0.partition) < ($1.health, $1.topic, $1.partition) }
        guard !shown.isEmpty else { return text }
        text += "topic\tpartition\tleader\tepoch\treplicas\tin-sync\tstate\n"
        for partition in shown {
            let list = { (ids: [UInt32]) in ids.map(String.init).joined(separator: ",") }
            text += "\(partition.topic)\t\(partition.partition)\t\(partition.leader.map(String.init) ?? "none")\t"
            text += "\(partition.leaderEpoch)\t\(list(partition.replicas))\t\(list(partition.inSyncReplicas))\t\(partition.health)\n"
        }
        return text
    }
}
