/// The seeded generator every randomised test uses (SplitMix64, Steele, Lea and Flood
/// 2014): a failing case replays from its seed, on any machine, in any order of tests.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in 0..<bound by plain modulo: not uniform for large bounds, but the same
    /// sequence the seeds of older runs were recorded with.
    public mutating func next(below bound: Int) -> Int {
        precondition(bound > 0, "an empty range has no member")
        return Int(next() % UInt64(bound))
    }
}
