import SluiceStorage

/// The seeded generator every randomised test uses. It draws from the storage layer's
/// `SeededRandom` (SplitMix64, Steele, Lea and Flood 2014), so fault injection and the
/// tests share one implementation, without every test target importing SluiceStorage. A
/// failing case replays from its seed, on any machine, in any order of tests.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var source: SeededRandom

    public init(seed: UInt64) { source = SeededRandom(seed: seed) }

    public mutating func next() -> UInt64 { source.next() }

    /// A number in 0..<bound by plain modulo: not uniform for large bounds, but the same
    /// sequence the seeds of older runs were recorded with.
    public mutating func next(below bound: Int) -> Int {
        precondition(bound > 0, "an empty range has no member")
        return Int(next() % UInt64(bound))
    }
}
