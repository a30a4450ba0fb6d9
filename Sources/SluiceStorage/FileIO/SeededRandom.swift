/// A small deterministic pseudo-random generator (SplitMix64) for fault injection and
/// randomised tests. The whole sequence follows from the seed, so a failing run that
/// prints its seed replays exactly. Not for anything that needs unpredictability.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    public let seed: UInt64
    private var state: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        self.state = seed
    }

    public mutating func next() -> UInt64 {
        // SplitMix64 (Steele, Lea, Flood 2014): a Weyl sequence passed through a mixer.
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `rate` (0 never draws, so a zero rate leaves the sequence alone).
    public mutating func chance(_ rate: Double) -> Bool {
        guard rate > 0 else { return false }
        return Double(next() >> 11) * 0x1.0p-53 < rate
    }
}
