import ArgumentParser
import Foundation

@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Sluice: a persistent, partitioned message queue with a gRPC API.",
        discussion: """
            Exit status: 0 on success, 1 when a request is refused or fails, 2 for a usage error \
            (an unknown flag, a missing or malformed value).
            """,
        subcommands: [ServeCommand.self, TopicCommand.self, ClusterCommand.self, ProduceCommand.self, ConsumeCommand.self, GroupCommand.self, BenchCommand.self, DebugCommand.self])

    /// Exit status of a usage error. ArgumentParser uses 64 (sysexits' EX_USAGE); Sluice
    /// follows the shell and getopt convention of 2, which is what its docs have promised.
    static let usageErrorStatus: Int32 = 2

    static func main() async {
        do {
            var command = try parseAsRoot(CommandLineArguments.joiningNegativeNumbers(Array(CommandLine.arguments.dropFirst())))
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(usageErrorStatus)
            }
            exit(withError: error)
        }
    }
}

/// Rewrites of the raw arguments before ArgumentParser sees them.
enum CommandLineArguments {
    /// ArgumentParser reads `-2` as a short option, so `--shift-by -2` failed as a missing
    /// value. A negative number right after a long option without `=` is joined to it
    /// (`--shift-by=-2`), which ArgumentParser reads as the option's value; the option's own
    /// type then accepts or refuses it with a clear message. Sluice has no short options
    /// named by digits and no positional argument that is a negative number, so nothing else
    /// is affected. Arguments after `--` are left alone.
    static func joiningNegativeNumbers(_ arguments: [String]) -> [String] {
        var result: [String] = []
        result.reserveCapacity(arguments.count)
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                result.append(contentsOf: arguments[index...])
                break
            }
            if argument.hasPrefix("--"), argument.count > 2, !argument.contains("="),
               index + 1 < arguments.count, isNegativeNumber(arguments[index + 1]) {
                result.append("\(argument)=\(arguments[index + 1])")
                index += 2
                continue
            }
            result.append(argument)
            index += 1
        }
        return result
    }

    static func isNegativeNumber(_ text: String) -> Bool {
        guard text.hasPrefix("-"), text.count > 1 else { return false }
        return Double(text.dropFirst()) != nil && text.dropFirst().first?.isNumber == true
    }
}
