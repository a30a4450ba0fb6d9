import Foundation
import SluiceClient
import SluiceTestSupport
import Testing

/// The README walk-through with the real `sluice` binary: create a topic, produce lines,
/// consume them as JSON; and the one-line errors.
@Suite("Command-line walk-through", .serialized, .timeLimit(.minutes(5)))
struct CommandLineWalkthroughTests {
    struct JSONLine: Decodable, Equatable {
        var topic: String
        var partition: Int
        var offset: Int64
        var timestamp_ms: Int64
        var key: String?
        var value: String
    }

    @Test("topic create, produce with keys and --report, consume --format json", .timeLimit(.minutes(2)))
    func walkthrough() async throws {
        try await withBroker { broker in
            let directory = broker.root
            let server = ["--broker", broker.brokerArgument]

            let created = try await runSluice(["topic", "create", "greetings", "--partitions", "3"] + server, in: directory)
            #expect(created.status == 0, "\(created.stderr)")

            let lines = ["alice:hello", "bob:hi there", "alice:again", "carol:", "dave:a:b"]
            let produced = try await runSluice(
                ["produce", "--topic", "greetings", "--key-separator", ":", "--report"] + server,
                input: lines.joined(separator: "\n") + "\n", in: directory)
            #expect(produced.status == 0, "\(produced.stderr)")
            #expect(produced.stderr.contains("produced 5 records to greetings"))
            let reports = produced.stdout.split(separator: "\n").map { $0.split(separator: "\t") }
            #expect(reports.count == 5)
            let keys = ["alice", "bob", "alice", "carol", "dave"]
            for (report, key) in zip(reports, keys) {
                #expect(Int(report[0]) == Partitioner.partition(forKey: Array(key.utf8), partitionCount: 3), "\(key)")
            }

            let consumed = try await runSluice(["consume", "--topic", "greetings", "--format", "json"] + server, in: directory)
            #expect(consumed.status == 0, "\(consumed.stderr)")
            let records = try consumed.stdout.split(separator: "\n").map {
                try JSONDecoder().decode(JSONLine.self, from: Data($0.utf8))
            }
            #expect(records.count == 5)
            let byValue = Dictionary(uniqueKeysWithValues: records.map { ($0.value, $0) })
            #expect(byValue["hello"]?.key == "alice" && byValue["again"]?.key == "alice")
            #expect(byValue["hello"]?.partition == byValue["again"]?.partition)
            #expect(byValue["hello"].map { $0.offset < (byValue["again"]?.offset ?? -1) } == true, "per-key order")
            #expect(byValue[""]?.key == "carol", "an empty value")
            #expect(byValue["a:b"]?.key == "dave", "split at the first separator only")
            #expect(records.allSatisfy { $0.topic == "greetings" && $0.timestamp_ms > 0 })
            for (report, key) in zip(reports, keys) {
                let match = records.first { $0.key == key && $0.partition == Int(report[0]) && $0.offset == Int64(report[1]) }
                #expect(match != nil, "--report line \(report) matches a consumed record")
            }

            // text format, one partition, from an offset, bounded count.
            let alicePartition = byValue["hello"]?.partition ?? 0
            let text = try await runSluice(
                ["consume", "--topic", "greetings", "--partition", "\(alicePartition)", "--from", "1", "--max-messages", "1"] + server,
                in: directory)
            #expect(text.status == 0, "\(text.stderr)")
            let fields = text.stdout.split(separator: "\n").first?.split(separator: "\t", omittingEmptySubsequences: false) ?? []
            #expect(fields.count == 5 && fields[0] == "\(alicePartition)" && fields[1] == "1")

            // Keyless lines, --follow with --max-messages ends after that many.
            let keyless = try await runSluice(["produce", "--topic", "greetings", "--partition", "2"] + server,
                                              input: "x\ny\n", in: directory)
            #expect(keyless.status == 0, "\(keyless.stderr)")
            let follow = try await runSluice(
                ["consume", "--topic", "greetings", "--partition", "2", "--follow", "--max-messages", "2", "--format", "json"] + server,
                in: directory)
            #expect(follow.status == 0 && follow.stdout.split(separator: "\n").count == 2, "\(follow.stderr)")
        }
    }

    @Test("errors are one line on stderr with a non-zero exit", .timeLimit(.minutes(2)))
    func errors() async throws {
        try await withBroker { broker in
            let server = ["--broker", broker.brokerArgument]
            let cases: [([String], String)] = [
                (["produce", "--topic", "missing"] + server, "x\n"),
                (["consume", "--topic", "missing"] + server, ""),
                (["produce", "--topic", "missing", "--broker", "127.0.0.1:1"], "x\n"),
            ]
            for (arguments, input) in cases {
                let result = try await runSluice(arguments, input: input, in: broker.root)
                #expect(result.status != 0, "\(arguments)")
                #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
            }
            let created = try await runSluice(["topic", "create", "one", "--partitions", "1"] + server, in: broker.root)
            #expect(created.status == 0)
            let noSeparator = try await runSluice(
                ["produce", "--topic", "one", "--key-separator", "="] + server, input: "no separator here\n", in: broker.root)
            #expect(noSeparator.status == 1 && noSeparator.stderr.contains("line 1 has no key separator"))
            let badPartition = try await runSluice(["consume", "--topic", "one", "--partition", "4"] + server, in: broker.root)
            #expect(badPartition.status == 1 && badPartition.stderr.contains("no partition 4"))
        }
    }
}
