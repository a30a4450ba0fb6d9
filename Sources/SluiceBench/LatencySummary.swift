public import Histogram

/// Latencies in microseconds, kept in an HDR histogram (3 significant digits, so every
/// recorded value is within 0.1% of the truth up to an hour).
public struct LatencyRecorder: Sendable {
    /// One hour: a latency above it is clamped (and still counted), never dropped.
    public static let highestTrackableMicroseconds: UInt64 = 3_600_000_000

    public private(set) var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: LatencyRecorder.highestTrackableMicroseconds,
        numberOfSignificantValueDigits: .three)

    public init() {}

    public mutating func record(microseconds: UInt64) {
        // record returns false only above the highest trackable value.
        _ = histogram.record(min(max(microseconds, 1), Self.highestTrackableMicroseconds))
    }

    public mutating func record(nanoseconds: Int64) {
        record(microseconds: UInt64(max(nanoseconds, 0) / 1000))
    }

    public mutating func add(_ other: LatencyRecorder) {
        histogram.add(other.histogram)
    }

    public var count: UInt64 { histogram.totalCount }

    /// nil before anything was recorded.
    public func percentile(_ percentile: Double) -> UInt64? {
        count > 0 ? histogram.valueAtPercentile(percentile) : nil
    }

    public var summary: LatencySummary { LatencySummary(histogram) }
}

/// The percentiles `sluice bench` reports, in microseconds.
public struct LatencySummary: Sendable, Codable, Equatable {
    public var count: UInt64
    public var mean: Double
    public var min: UInt64
    public var p50: UInt64
    public var p95: UInt64
    public var p99: UInt64
    public var p999: UInt64
    public var p9999: UInt64
    public var max: UInt64

    public init(_ histogram: Histogram<UInt64>) {
        count = histogram.totalCount
        guard count > 0 else {
            mean = 0
            min = 0
            p50 = 0
            p95 = 0
            p99 = 0
            p999 = 0
            p9999 = 0
            max = 0
            return
        }
        mean = histogram.mean
        min = histogram.min
        p50 = histogram.valueAtPercentile(50)
        p95 = histogram.valueAtPercentile(95)
        p99 = histogram.valueAtPercentile(99)
        p999 = histogram.valueAtPercentile(99.9)
        p9999 = histogram.valueAtPercentile(99.99)
        // The highest equivalent value of the largest bucket: an upper bound, so a stall
        // is never reported shorter than it was.
        max = histogram.max
    }

    /// (label, microseconds) in report order.
    public var rows: [(String, UInt64)] {
        [("p50", p50), ("p95", p95), ("p99", p99), ("p99.9", p999), ("p99.99", p9999), ("max", max)]
    }
}
