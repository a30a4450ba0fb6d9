import Foundation

/// The text `sluice bench` prints.
public enum BenchReport {
    /// Kafka's `kafka-producer-perf-test` summary shape, with p99.99 added and
    /// sub-millisecond precision ("MB" is 10^6 bytes here, not Kafka's MiB):
    /// `500000 records sent, 98425.2 records/sec (96.12 MB/sec), 2.31 ms avg latency, 45.00 ms max latency, 2.00 ms 50th, 5.00 ms 95th, 9.00 ms 99th, 30.00 ms 99.9th, 41.00 ms 99.99th.`
    public static func summaryLine(_ result: BenchResult) -> String {
        let verb = result.mode == "consume" ? "read" : "sent"
        var line = "\(result.measuredMessages) records \(verb), \(fixed(result.messagesPerSecond, 1)) records/sec (\(fixed(result.megabytesPerSecond, 2)) MB/sec)"
        if let latency = result.headlineLatency, latency.count > 0 {
            line += ", \(fixed(latency.mean / 1000, 2)) ms avg latency, \(ms(latency.max)) ms max latency"
            line += ", \(ms(latency.p50)) ms 50th, \(ms(latency.p95)) ms 95th, \(ms(latency.p99)) ms 99th"
            line += ", \(ms(latency.p999)) ms 99.9th, \(ms(latency.p9999)) ms 99.99th"
        }
        return line + "."
    }

    /// The full human report: summary line, a table, the checks.
    public static func text(_ result: BenchResult) -> String {
        var lines = [summaryLine(result), ""]
        lines.append("| | value |")
        lines.append("|---|---:|")
        lines.append("| mode | \(result.mode) |")
        lines.append("| topic | \(result.topic) |")
        lines.append("| producers / consumers | \(result.producers) / \(result.consumers) |")
        lines.append("| message size | \(result.messageSize) B |")
        lines.append("| acks / profile | \(result.acks) / \(result.profile) |")
        lines.append("| offered rate | \(result.rate.map { "\(fixed($0, 0)) msgs/s" } ?? "unthrottled") |")
        lines.append("| measured | \(fixed(result.seconds, 2)) s |")
        if result.mode != "consume" {
            lines.append("| sent / acked / failed | \(result.sent) / \(result.acked) / \(result.failed) |")
        }
        lines.append("| throughput | \(fixed(result.messagesPerSecond, 1)) msgs/s, \(fixed(result.megabytesPerSecond, 2)) MB/s |")
        if let consumed = result.consumed, result.mode != "consume" {
            lines.append("| consumed | \(consumed) (\(fixed(result.consumedPerSecond ?? 0, 1)) msgs/s, \(fixed(result.consumedMegabytesPerSecond ?? 0, 2)) MB/s) |")
        }
        if let backlog = result.backlog { lines.append("| backlog | \(backlog) records |") }
        if let missing = result.missing { lines.append("| missing / duplicates | \(missing) / \(result.duplicates ?? 0) |") }
        if let foreign = result.foreign, foreign > 0 { lines.append("| records of other runs skipped | \(foreign) |") }
        for (title, latency) in [("produce-to-ack", result.ackLatency), ("end-to-end", result.endToEndLatency)] {
            guard let latency, latency.count > 0 else { continue }
            let cells = latency.rows.map { "\($0.0) \(ms($0.1))" }.joined(separator: ", ")
            lines.append("| \(title) latency (ms) | \(cells) |")
        }
        if result.timeLimitReached { lines.append("| time limit | reached |") }
        for error in result.errors { lines.append("| error | \(error.replacingOccurrences(of: "|", with: "/")) |") }
        lines.append("")
        lines.append(result.passed ? "result: ok" : "result: FAILED (see failed, missing, duplicates, errors)")
        return lines.joined(separator: "\n") + "\n"
    }

    public static func json(_ result: BenchResult) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(result), as: UTF8.self) + "\n"
    }

    static func progressLine(
        elapsedSeconds: Double, intervalSeconds: Double, mode: BenchSettings.Mode, messageSize: Int,
        previous: BenchTally.Snapshot, current: BenchTally.Snapshot
    ) -> String {
        let interval = max(intervalSeconds, 1e-9)
        var parts = ["[\(fixed(elapsedSeconds, 1)) s]"]
        if mode != .consume {
            let rate = Double(current.acked - previous.acked) / interval
            parts.append("acked \(fixed(rate, 0)) msgs/s \(fixed(rate * Double(messageSize) / 1e6, 2)) MB/s")
            if let p99 = current.ackP99 { parts.append("ack p99 \(ms(p99)) ms") }
        }
        if mode != .produce {
            let rate = Double(current.consumed - previous.consumed) / interval
            let bytes = Double(current.consumedBytes - previous.consumedBytes) / interval
            parts.append("consumed \(fixed(rate, 0)) msgs/s \(fixed(bytes / 1e6, 2)) MB/s")
            if let p99 = current.endToEndP99 { parts.append("e2e p99 \(ms(p99)) ms") }
        }
        return parts.joined(separator: ", ")
    }

    /// Microseconds as milliseconds with 3 decimals.
    static func ms(_ microseconds: UInt64) -> String { fixed(Double(microseconds) / 1000, 3) }

    static func fixed(_ value: Double, _ decimals: Int) -> String {
        String(format: "%.\(decimals)f", value)
    }
}
