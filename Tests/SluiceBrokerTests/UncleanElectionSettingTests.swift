import Foundation
import Logging
import SluiceBroker
import SluiceCluster
import SluiceTestSupport
import Testing

/// `unclean.leader.election.enable`: a topic setting like the others on a single node
/// (checked, stored in canonical text, shown with its default), under the name the
/// controller reads from the topic's record.
@Suite(.timeLimit(.minutes(1))) struct UncleanElectionSettingTests {
    func withRegistry(_ body: (TopicRegistry) throws -> Void) throws {
        let (directory, registry) = try TemporaryDirectory.holding {
            try TopicRegistry(directory: DataDirectory.open($0.path), configuration: .init(), logger: Logger(label: "test"))
        }
        defer { directory.remove() }
        try body(registry)
    }

    @Test("false by default; CreateTopic and AlterTopicConfig take true or false in any case and store it lowercase")
    func acceptedAndCanonical() throws {
        try withRegistry { registry in
            let plain = try registry.createTopic(named: "plain", partitions: 1)
            #expect(plain.config.uncleanLeaderElection == false)
            #expect(plain.effectiveConfigs["unclean.leader.election.enable"] == "false")

            let created = try registry.createTopic(named: "t", partitions: 1, configs: ["unclean.leader.election.enable": "TRUE"])
            #expect(created.config.uncleanLeaderElection)
            #expect(created.configOverrides == ["unclean.leader.election.enable": "true"])

            let altered = try registry.alterTopicConfig(named: "t", set: ["unclean.leader.election.enable": "False"], reset: [])
            #expect(altered.config.uncleanLeaderElection == false)
            #expect(altered.configOverrides == ["unclean.leader.election.enable": "false"])
        }
    }

    @Test("anything but a boolean is refused with INVALID_ARGUMENT naming the setting", arguments: ["", "yes", "1", " true", "truee"])
    func refused(_ value: String) throws {
        try withRegistry { registry in
            expectBrokerError(.invalidConfig, containing: "unclean.leader.election.enable") {
                _ = try registry.createTopic(named: "t", partitions: 1, configs: ["unclean.leader.election.enable": value])
            }
        }
    }

    @Test("the controller reads the setting by the broker's name for it, and only its canonical true enables unclean election")
    func controllerReadsTheSameName() {
        #expect(TopicRecord.uncleanLeaderElectionSetting == TopicSetting.uncleanLeaderElectionEnable.rawValue)
        #expect(TopicRecord(configs: [TopicRecord.uncleanLeaderElectionSetting: "true"], partitions: 1).allowsUncleanElection)
        #expect(!TopicRecord(configs: [TopicRecord.uncleanLeaderElectionSetting: "false"], partitions: 1).allowsUncleanElection)
        #expect(!TopicRecord(configs: [:], partitions: 1).allowsUncleanElection)
    }
}
