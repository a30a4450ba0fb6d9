import Foundation
import SluiceTestSupport
import Testing

/// Conventions of the `sluice` command line that hold for every command: help text shows
/// values as a user types them, usage errors exit 2, and docs/operations.md lists every
/// flag of `sluice serve`. Needs no broker.
@Suite("Command-line conventions", .timeLimit(.minutes(3)))
struct CommandLineConventionsTests {
    /// Every command path, found by walking the SUBCOMMANDS sections of `--help` from the
    /// root, so a command added later is covered without touching this test.
    static func commandPaths(in directory: URL) async throws -> [[String]] {
        var paths: [[String]] = []
        var pending: [[String]] = [[]]
        while let path = pending.popLast() {
            guard paths.count < 100 else { break }  // a bound, far above the ~20 commands
            paths.append(path)
            let help = try await runSluice(path + ["--help"], in: directory)
            guard let section = help.stdout.range(of: "SUBCOMMANDS:\n") else { continue }
            // The section's rows are "  name   abstract", continuation lines are indented
            // further, and a blank line ends it.
            for line in help.stdout[section.upperBound...].split(separator: "\n", omittingEmptySubsequences: false) {
                if line.isEmpty { break }
                guard line.hasPrefix("  "), !line.hasPrefix("   "), let name = line.split(separator: " ").first,
                      name.allSatisfy({ $0.isLowercase || $0 == "-" }) else { continue }
                pending.append(path + [String(name)])
            }
        }
        return paths
    }

    /// Text that is Swift's description of a value, never what a user would type:
    /// `AcksArgument(acks: SluiceAPI.Acks.all)`, `Optional(3)`, `StartArgument(start: ...)`.
    static let swiftValueText = #"[A-Z][A-Za-z0-9]*\([a-z][A-Za-z0-9]*: [^)]*\)?|\b[A-Z][a-z][A-Za-z0-9]*\.[A-Z][a-z][A-Za-z0-9]*\b|Optional\(|\.Type\b"#

    @Test("--help of every command is plain text, no Swift type names")
    func helpShowsNoTypeNames() async throws {
        let swiftValueText = try Regex(Self.swiftValueText)
        let directory = try temporaryDirectory()
        let paths = try await Self.commandPaths(in: directory)
        #expect(paths.count >= 15 && paths.count < 100, "found \(paths.count) commands: \(paths.prefix(30).map { $0.joined(separator: " ") })")
        #expect(paths.contains(["debug", "cut-to-synced"]), "the documented debug command is listed")
        for path in paths {
            let help = try await runSluice(path + ["--help"], in: directory)
            #expect(help.status == 0, "\(path): \(help.stderr)")
            // Wrapped lines are joined, so a value split over two lines is still seen whole.
            let text: String = help.stdout.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
            for match in text.matches(of: swiftValueText) {
                let found = String(text[match.range])
                Issue.record("sluice \(path.joined(separator: " ")) --help shows Swift text: \(found)")
            }
        }
    }

    @Test("usage errors exit 2 with one message naming the problem", arguments: [
        (["topic", "create"], "Missing expected argument"),
        (["topic", "create", "t", "--partitions"], "Missing value"),
        (["topic", "create", "t", "--partitions", "many"], "many"),
        (["topic", "create", "t", "--partitions", "-3"], "-3"),
        (["produce", "--topic", "t", "--no-such-flag"], "--no-such-flag"),
        (["produce", "--topic", "t", "--acks", "sometimes"], "sometimes"),
        (["consume", "--topic", "t", "--from", "yesterday"], "yesterday"),
        (["group", "reset-offsets", "g", "--topic", "t"], "give exactly one of"),
        (["group", "reset-offsets", "g", "--topic", "t", "--to-offset", "-1"], "--to-offset must be 0 or more"),
        (["no-such-command"], "no-such-command"),
        (["serve", "--fsync", "sometimes"], "sometimes"),
    ])
    func usageErrorsExit2(arguments: [String], mentions: String) async throws {
        // Each is refused while parsing, before any connection is tried.
        let result = try await runSluice(arguments, in: try temporaryDirectory())
        #expect(result.status == 2, "sluice \(arguments.joined(separator: " ")): exit \(result.status): \(result.stderr)")
        #expect(result.stderr.contains(mentions), "\(result.stderr)")
    }

    @Test("a negative number after a flag is its value (a refused request exits 1, not a usage error)")
    func negativeNumbersAreValues() async throws {
        // Nothing listens on port 1, so a correctly parsed command fails to connect: exit 1.
        for arguments in [
            ["group", "reset-offsets", "g", "--topic", "t", "--shift-by", "-2", "--timeout", "2"],
            ["produce", "--topic", "t", "--acks", "-1", "--timeout", "2"],
        ] {
            let result = try await runSluice(arguments + ["--broker", "127.0.0.1:1"], input: "x\n", in: try temporaryDirectory())
            #expect(result.status == 1, "sluice \(arguments.joined(separator: " ")): exit \(result.status): \(result.stderr)")
            #expect(!result.stderr.contains("Missing value"), "\(result.stderr)")
        }
    }

    @Test("docs/operations.md's synopsis and table name every flag of sluice serve")
    func serveFlagsAreDocumented() async throws {
        let help = try await runSluice(["serve", "--help"], in: try temporaryDirectory())
        let flags = Set(help.stdout.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("  --"), let flag = line.dropFirst(2).split(separator: " ").first else { return nil }
            return String(flag)
        }).subtracting(["--help"])
        #expect(flags.count >= 20, "\(flags)")
        let docs = try String(contentsOf: repositoryRoot().appendingPathComponent("docs/operations.md"), encoding: .utf8)
        let synopsis = docs.components(separatedBy: "```sh\nsluice serve ").dropFirst().first?.components(separatedBy: "```").first ?? ""
        for flag in flags.sorted() {
            #expect(synopsis.contains("[\(flag)"), "the synopsis lacks \(flag)")
            #expect(docs.contains("| `\(flag)` |"), "the flag table lacks \(flag)")
        }
    }

    func temporaryDirectory() throws -> URL { TemporaryDirectory("sluice-cli").url }

    func repositoryRoot() -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
}
