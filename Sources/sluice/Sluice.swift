import ArgumentParser

@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Sluice: a persistent, partitioned message queue with a gRPC API.",
        subcommands: [ServeCommand.self, TopicCommand.self, ProduceCommand.self, ConsumeCommand.self, GroupCommand.self, BenchCommand.self, DebugCommand.self])
}
