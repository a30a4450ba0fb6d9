import Foundation
import SluiceBroker
import SluiceCluster
import SluiceService
import SluiceStorage
import SluiceWire
import Testing

/// docs/limits.md is the limits files (`WireLimits`, `StorageLimits`, `BrokerLimits`,
/// `ClusterLimits`) as a
/// reader sees them: one table per file, a row per limit with its default and why. This
/// test lists every limit of each file by name and fails on a row that is missing, stale,
/// or says another default or reason; its message is the table as it should read.
@Suite("docs/limits.md states every limit of the limits files")
struct LimitsDocumentTests {
    /// A limits file: its type's name and the limits it holds, as (name, default, why).
    struct LimitsFile {
        var typeName: String
        var rows: [(name: String, shown: String, why: String)]

        init(_ limits: some Sendable) {
            typeName = "\(type(of: limits))"
            rows = Mirror(reflecting: limits).children.map { child in
                let name = child.label ?? "?"
                let fields = Dictionary(uniqueKeysWithValues: Mirror(reflecting: child.value).children.map { ($0.label ?? "", $0.value) })
                return (name, LimitsDocumentTests.shown(fields["value"] as Any, name: name), fields["why"] as? String ?? "")
            }
        }

        /// The table docs/limits.md holds for this file.
        var table: String {
            (["| limit | default | why |", "|---|---|---|"] + rows.map { "| `\($0.name)` | \($0.shown) | \($0.why) |" })
                .joined(separator: "\n")
        }
    }

    static let files = [
        LimitsFile(WireLimits.defaults), LimitsFile(StorageLimits.defaults), LimitsFile(BrokerLimits.defaults),
        LimitsFile(ClusterLimits.defaults),
    ]

    @Test("each limits file's table in docs/limits.md lists its limits, defaults and reasons", arguments: files.map(\.typeName))
    func tableMatches(typeName: String) throws {
        let file = try #require(Self.files.first { $0.typeName == typeName })
        #expect(file.rows.count >= 5, "\(typeName) holds \(file.rows.count) limits")
        for row in file.rows {
            #expect(!row.why.isEmpty && !row.why.contains("|"), "\(typeName).\(row.name): a reason, and no | in it")
        }
        let document = try String(contentsOf: Self.repositoryRoot.appendingPathComponent("docs/limits.md"), encoding: .utf8)
        // The file's section runs from its heading, which names the type, to the next heading.
        let sections = document.components(separatedBy: "\n## ")
        let section = try #require(sections.first { $0.split(separator: "\n").first?.contains("`\(typeName)`") == true },
                                   "docs/limits.md has no section headed with `\(typeName)`")
        let documented = section.split(separator: "\n").filter { $0.hasPrefix("| `") }.map(String.init)
        let expected = file.table.split(separator: "\n").filter { $0.hasPrefix("| `") }.map(String.init)
        if documented != expected { Issue.record("docs/limits.md's table for \(typeName) should read:\n\(file.table)") }
    }

    @Test("the limits that restate another layer's agree with it")
    func layersAgree() {
        let wire = WireLimits.defaults, broker = BrokerLimits.defaults, storage = StorageLimits.defaults
        #expect(broker.maxMessageBytesCeiling.value == wire.maxReceiveMessageBytes.value - broker.produceRequestOverheadBytes.value)
        #expect(broker.subscribeMaxMaxBytes.value < wire.maxReceiveMessageBytes.value)
        #expect(TopicConfig.defaults.maxMessageBytes == storage.maxBatchBytes.value)
        #expect(TopicConfig.defaults.maxMessageBytes <= broker.maxMessageBytesCeiling.value)
    }

    /// A default as the table shows it: sizes (names with Bytes in them) in the largest
    /// binary unit that divides them, times (Durations, names ending in Ms or Seconds) in the
    /// largest unit that divides them, ranges as "low ... high", nil as "none".
    static func shown(_ value: Any, name: String) -> String {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first?.value else { return "none" }
            return shown(wrapped, name: name)
        }
        switch value {
        case let duration as Duration:
            let (seconds, attoseconds) = duration.components
            return time(milliseconds: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        case let range as ClosedRange<Int>: return "\(shown(range.lowerBound, name: name)) ... \(shown(range.upperBound, name: name))"
        case let range as ClosedRange<UInt32>: return "\(shown(range.lowerBound, name: name)) ... \(shown(range.upperBound, name: name))"
        case let number as any BinaryInteger:
            if name.hasSuffix("Ms") { return time(milliseconds: Int64(number)) }
            if name.hasSuffix("Seconds") { return time(milliseconds: Int64(number) * 1000) }
            if name.contains("Bytes") { return bytes(Int64(number)) }
            return "\(number)"
        default:
            return "\(value)"
        }
    }

    static func bytes(_ count: Int64) -> String {
        for (unit, name) in [(Int64(1) << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] where count >= unit && count % unit == 0 {
            return "\(count / unit) \(name)"
        }
        return "\(count) bytes"
    }

    static func time(milliseconds: Int64) -> String {
        guard milliseconds != 0 else { return "0" }
        for (unit, name) in [(Int64(86_400_000), "days"), (3_600_000, "h"), (60_000, "min"), (1000, "s")]
        where milliseconds % unit == 0 {
            return "\(milliseconds / unit) \(name)"
        }
        return "\(milliseconds) ms"
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
}
