/// The throughput/latency switch (`--profile`), shared by the broker (`sluice serve`)
/// and the client (`ProducerConfiguration(profile:)`, `ConsumerConfiguration(profile:)`).
///
/// A profile is only a named set of individual settings; docs/profiles.md lists every
/// one with its value per profile, and each can be set on its own, an explicit setting
/// winning over the profile. No profile touches durability: the fsync policy and `acks`
/// are always chosen separately.
public enum PerformanceProfile: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Send at once, push at once, small frames and batches: the lowest delay per record.
    case latency
    /// Linger, batch, compress (lz4), hold pushes and syncs briefly, large windows and
    /// frames: the most records per second and per fdatasync.
    case throughput

    public var description: String { rawValue }
}
