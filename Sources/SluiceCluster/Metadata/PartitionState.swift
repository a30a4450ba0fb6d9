public import NIOCore

/// Who holds a partition and who leads it: the value of
/// `/sluice/<cluster>/partitions/<topic>/<partition>`, written by the controller, in a Txn
/// fenced by its election revision and by this key's `mod_revision` as it read it, and, its
/// `isr` alone, by the partition's leader (`PartitionISRWriter`, fenced by the key's
/// `mod_revision` and the leader and epoch it read).
///
/// On the wire: one UTF-8 JSON object, keys sorted, no whitespace, for example
/// `{"isr":[1,3],"leader":3,"leaderEpoch":4,"replicas":[1,2,3]}`:
///
/// - `replicas`: array of broker ids, the preferred leader first; never empty; no id twice;
/// - `leader`: number, the leading broker's id, one of `replicas`; absent while the
///   partition has no leader (no in-sync replica is alive);
/// - `leaderEpoch`: number, bumped by one on every change of `leader` (absent → present
///   included); never goes back;
/// - `isr`: array of broker ids, the in-sync replicas, a subset of `replicas` that holds
///   `leader` whenever there is one.
///
/// Readers ignore fields they do not know.
public struct PartitionState: Codable, Sendable, Hashable, CustomStringConvertible {
    public var replicas: [UInt32]
    public var leader: UInt32?
    public var leaderEpoch: UInt32
    public var isr: [UInt32]

    public init(replicas: [UInt32], leader: UInt32?, leaderEpoch: UInt32, isr: [UInt32]) {
        self.replicas = replicas
        self.leader = leader
        self.leaderEpoch = leaderEpoch
        self.isr = isr
    }

    /// A new partition on `replicas`: led by the first, at epoch 0, every replica in sync.
    public init(newOn replicas: [UInt32]) {
        precondition(!replicas.isEmpty, "a partition needs at least one replica")
        self.init(replicas: replicas, leader: replicas[0], leaderEpoch: 0, isr: replicas)
    }

    /// Whether the value keeps the rules above; a value that does not is never written,
    /// and one read that does not is treated as unreadable.
    public var isWellFormed: Bool {
        guard !replicas.isEmpty, Set(replicas).count == replicas.count else { return false }
        guard Set(isr).count == isr.count, Set(isr).isSubset(of: Set(replicas)) else { return false }
        if let leader { return isr.contains(leader) }
        return true
    }

    /// The value bytes described above.
    public func encoded() -> ByteBuffer {
        precondition(isWellFormed, "refusing to encode a malformed partition state: \(self)")
        return MetadataJSON.encode(self)
    }

    /// The state in a key's value; nil when it is not such a JSON object or breaks a rule.
    public init?(decoding value: ByteBuffer) {
        guard let state = MetadataJSON.decode(PartitionState.self, from: value), state.isWellFormed else { return nil }
        self = state
    }

    public var description: String {
        "replicas \(replicas), leader \(leader.map(String.init) ?? "none") at epoch \(leaderEpoch), isr \(isr)"
    }
}
