public import ArgumentParser
import Logging
import SluiceAPI
import SluiceClient
import SluiceWire

struct TopicCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topic",
        abstract: "Create, list, describe, alter and delete topics on a broker.",
        discussion: "Failures print one line to stderr and exit non-zero (1 for a refused request, 2 for a usage error).",
        subcommands: [Create.self, List.self, Describe.self, Alter.self, AddPartitions.self, Delete.self])
}

struct BrokerOptions: ParsableArguments {
    @Option(help: "The bootstrap brokers, host:port or a comma list (a:9092,b:9092,c:9092): the first that answers is used.")
    var broker: BrokerList = .local

    @Option(help: "Seconds to wait for the broker's answer.")
    var timeout: Double = 30

    /// Connects, runs `body`, closes; any failure becomes one line on stderr and exit 1.
    func withAdminClient<Result>(_ body: (SluiceAdminClient) async throws -> Result) async -> Result {
        var logger = Logger(label: "sluice")
        logger.logLevel = .critical
        let client: SluiceAdminClient
        do {
            client = try await SluiceAdminClient(
                bootstrap: broker.brokers.map { BrokerAddress(host: $0.host, port: $0.port) },
                timeout: .milliseconds(Int64(max(timeout, 0.001) * 1000)), logger: logger)
        } catch {
            fail("cannot connect to \(broker): \(error)")
        }
        do {
            let result = try await body(client)
            await client.close()
            return result
        } catch let status as GRPCStatus {
            await client.close()
            fail(status.message.isEmpty ? "\(status.code)" : "\(status.message) (\(status.code))")
        } catch {
            await client.close()
            fail("\(error)")
        }
    }
}

/// The broker and the topic a topic subcommand acts on.
struct TopicTarget: ParsableArguments {
    @OptionGroup var options: BrokerOptions
    @Argument(help: "Topic name.") var name: String
}

/// `key=value` for topic settings.
struct Setting: ExpressibleByArgument {
    var key: String
    var value: String

    init?(argument: String) {
        guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex else { return nil }
        key = String(argument[..<equals])
        value = String(argument[argument.index(after: equals)...])
    }

    static var defaultValueDescription: String { "key=value" }
}

extension Array where Element == Setting {
    func dictionary() throws -> [String: String] {
        var result: [String: String] = [:]
        for setting in self {
            guard result.updateValue(setting.value, forKey: setting.key) == nil else {
                throw ValidationError("setting \(setting.key) is given twice")
            }
        }
        return result
    }
}

extension TopicCommand {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a topic.")
        @OptionGroup var options: BrokerOptions
        @Argument(help: "Topic name: 1-249 characters of [a-zA-Z0-9._-].") var name: String
        @Option(help: "Number of partitions (at least 1).") var partitions: UInt32 = 1
        @Option(help: "Replicas per partition; 0 means the broker's default.") var replicationFactor: UInt32 = 0
        @Option(name: .customLong("config"), help: "A topic setting, repeatable (see docs/operations.md).") var configs: [Setting] = []
        @Flag(help: "Only check the request; create nothing.") var validateOnly = false

        func run() async throws {
            let request = CreateTopicRequest(
                name: name, partitions: partitions, replicationFactor: replicationFactor,
                configs: try configs.dictionary(), validateOnly: validateOnly)
            let topic = await options.withAdminClient { try await $0.createTopic(request) }
            print(validateOnly ? "topic \(topic.name) is valid (not created)" : "created topic \(topic.name) (id \(topic.topicId), \(topic.partitionCount) partitions)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List topics: name, partitions, replication factor, id.")
        @OptionGroup var options: BrokerOptions

        func run() async throws {
            let topics = await options.withAdminClient { try await $0.listTopics() }
            for topic in topics {
                print("\(topic.name)\t\(topic.partitionCount)\t\(topic.replicationFactor)\t\(topic.topicId)")
            }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a topic's settings and partitions.")
        @OptionGroup var target: TopicTarget

        func run() async throws {
            let topic = await target.options.withAdminClient { try await $0.describeTopic(named: target.name) }
            print(TopicText.describe(topic), terminator: "")
        }
    }

    struct Alter: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a topic's settings (all or nothing).")
        @OptionGroup var target: TopicTarget
        @Option(help: "A setting to set, repeatable.") var set: [Setting] = []
        @Option(help: "A setting to return to its default, repeatable.") var reset: [String] = []

        func validate() throws {
            guard !set.isEmpty || !reset.isEmpty else { throw ValidationError("give at least one --set or --reset") }
        }

        func run() async throws {
            let settings = try set.dictionary()
            let topic = await target.options.withAdminClient { try await $0.alterTopicConfig(named: target.name, set: settings, reset: reset) }
            print(TopicText.describe(topic), terminator: "")
        }
    }

    struct AddPartitions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Grow a topic to a larger partition count.")
        @OptionGroup var target: TopicTarget
        @Option(help: "The new total number of partitions.") var total: UInt32

        func run() async throws {
            let topic = await target.options.withAdminClient { try await $0.createPartitions(named: target.name, totalCount: total) }
            print("topic \(topic.name) now has \(topic.partitionCount) partitions")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a topic and its data.")
        @OptionGroup var target: TopicTarget

        func run() async throws {
            await target.options.withAdminClient { try await $0.deleteTopic(named: target.name) }
            print("deleted topic \(target.name)")
        }
    }
}

enum TopicText {
    static func describe(_ topic: TopicDescription) -> String {
        var text = "topic \(topic.name)\n"
        text += "  id: \(topic.topicId)\n"
        text += "  partitions: \(topic.partitionCount)\n"
        text += "  replication factor: \(topic.replicationFactor)\n"
        text += "  settings:\n"
        for (key, value) in topic.configs.sorted(by: { $0.key < $1.key }) {
            text += "    \(key)=\(value)\n"
        }
        if !topic.partitions.isEmpty {
            text += "  partition  leader  replicas  in-sync  log-start  log-end  high-watermark  bytes\n"
            for partition in topic.partitions {
                let replicas = partition.replicas.map(String.init).joined(separator: ",")
                let inSync = partition.inSyncReplicas.map(String.init).joined(separator: ",")
                // An offline partition's offsets are unknown, not 0: say so, and why.
                let positions = partition.offline
                    ? "OFFLINE: \(partition.offlineReason)"
                    : "\(partition.logStartOffset)  \(partition.logEndOffset)  \(partition.highWatermark)  \(partition.sizeBytes)"
                text += "  \(partition.partition)  \(partition.leader)  \(replicas)  \(inSync)  \(positions)\n"
            }
        }
        return text
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
