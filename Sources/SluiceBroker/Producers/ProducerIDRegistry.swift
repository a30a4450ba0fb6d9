#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SluiceAPI
import SluiceStorage
import Synchronization

/// Hands out idempotent producers' ids and epochs (InitProducerId) and remembers them
/// durably in `<data-dir>/producers.json`, so an id is never handed out twice, even
/// across restarts, and a name keeps its id.
///
/// - No name: a fresh id with epoch 0. Such ids are not listed in the file; the
///   counter `next_id` is, so everything below it was handed out.
/// - A name: the first call gives a fresh id with epoch 0; each later call gives the
///   same id with the epoch one higher, which fences the older incarnation on every
///   partition (produce checks the batch's epoch against this registry). When the epoch
///   would pass Int16.max the name gets a fresh id at epoch 0 instead.
///
/// Names are never forgotten: forgetting one would let a zombie of its old id produce
/// unfenced. The file is rewritten whole (tmp, fsync, rename, directory fsync) before
/// each answer, so an answer the producer saw survives a crash.
///
///     {
///       "format" : 1,             other values are refused
///       "names" : [               sorted by name, names unique
///         { "epoch" : 3, "id" : 7, "name" : "billing-1" }
///       ],
///       "next_id" : 12            every id below it was handed out; ids start at 1
///     }
///
/// A missing file means nothing was handed out; an unreadable one stops the broker
/// (`.metadataCorrupt`) rather than risk reusing ids.
///
/// In a cluster every broker hands out ids from its own range, so no two brokers ever
/// hand out the same id without asking anyone: the id is the broker id in bits 40-62 and
/// the file's counter in bits 0-39 (`ProducerIDSpace`). A batch whose id is from another
/// broker's range (its producer called InitProducerId there, and the partition's leader
/// moved here, or it bootstrapped elsewhere) is left to the partition's own producer
/// state, which a follower copies from the leader's log batch by batch: a retry to the new
/// leader after a failover is recognised there as a duplicate. This registry's broker-wide
/// fence (an epoch older than the one it handed out) holds for the ids it handed out;
/// for others the partitions fence by epoch as Kafka does for non-transactional
/// producers. Names are this broker's: the same name on two brokers gets two ids
/// (cluster-wide names are issue 16's).
public final class ProducerIDRegistry: Sendable {
    public static let fileName = "producers.json"
    static let formatVersion = 1
    /// Like Kafka's transactional.id limit, and the proto's.
    public static let maxNameLength = BrokerLimits.defaults.maxNameLength.value

    private struct State {
        var nextID: Int64 = 1
        var byName: [String: Identity] = [:]
        /// The current epoch of every named id (ids without a name are at epoch 0).
        var epochs: [Int64: Int16] = [:]
    }

    public struct Identity: Sendable, Equatable, Codable {
        public var id: Int64
        public var epoch: Int16
    }

    private struct Document: MetadataDocument {
        var format: Int
        var nextID: Int64
        var names: [Entry]

        enum CodingKeys: String, CodingKey {
            case format, names
            case nextID = "next_id"
        }
    }

    private struct Entry: Codable {
        var name: String
        var id: Int64
        var epoch: Int16
    }

    private let path: String
    private let state: Mutex<State>
    let space: ProducerIDSpace

    init(directory: DataDirectory, space: ProducerIDSpace = .singleNode) throws(BrokerError) {
        self.space = space
        path = directory.file(Self.fileName)
        DurableFiles.remove(DurableFiles.temporaryPath(for: path))
        var loaded = State()
        if let bytes = try DurableFiles.readFile(path) {
            loaded = try Self.decode(bytes, path: path)
        }
        state = Mutex(loaded)
    }

    /// A new identity for a producer (see the type comment), durable when returned.
    public func initProducerID(name: String) throws(BrokerError) -> Identity {
        guard name.utf8.count <= Self.maxNameLength else {
            throw BrokerError(.invalidRequest, "producer_name is \(name.utf8.count) bytes; at most \(Self.maxNameLength)")
        }
        return try state.withLock { (s) throws(BrokerError) -> Identity in
            var next = s
            let identity: Identity
            if !name.isEmpty, let known = next.byName[name], known.epoch < Int16.max, space.owns(known.id) {
                identity = Identity(id: known.id, epoch: known.epoch + 1)
            } else {
                guard next.nextID <= ProducerIDSpace.counterMask else {
                    throw BrokerError(.invalidRequest, "this broker has handed out every producer id of its range")
                }
                identity = Identity(id: space.id(counter: next.nextID), epoch: 0)
                next.nextID += 1
                if !name.isEmpty, let old = next.byName[name] { next.epochs[old.id] = nil }
            }
            if !name.isEmpty {
                next.byName[name] = identity
                next.epochs[identity.id] = identity.epoch
            }
            try DurableFiles.replace(path, with: Self.encode(next))
            s = next
            return identity
        }
    }

    /// Whether every partition must refuse a batch from `id` at `epoch`: an id never
    /// handed out, or an epoch other than the current one, is refused in the words of the
    /// partitions' own producer checks (`ProducerState.Verdict`); `.append` lets it on to
    /// the partition's sequence check.
    func check(producerID id: Int64, epoch: Int16) -> ProducerState.Verdict {
        // Another broker's id: the partition's producer state decides (see the type comment).
        guard space.owns(id) else { return .append }
        return state.withLock { s -> ProducerState.Verdict in
            guard space.counter(of: id) < s.nextID else {
                return .unknownProducer("producer id \(id) was never handed out by this broker; call InitProducerId")
            }
            let current = s.epochs[id] ?? 0
            if epoch < current {
                return .fenced("producer id \(id) epoch \(epoch) is fenced: InitProducerId handed out epoch \(current) since")
            }
            if epoch > current {
                return .unknownProducer("producer id \(id) epoch \(epoch) was never handed out (the current epoch is \(current))")
            }
            return .append
        }
    }

    private static func encode(_ state: State) -> [UInt8] {
        let entries = state.byName.sorted { $0.key < $1.key }.map { Entry(name: $0.key, id: $0.value.id, epoch: $0.value.epoch) }
        return MetadataJSON.encode(Document(format: formatVersion, nextID: state.nextID, names: entries), what: "producer ids")
    }

    private static func decode(_ bytes: [UInt8], path: String) throws(BrokerError) -> State {
        let document = try MetadataJSON.decode(Document.self, from: bytes, path: path, what: "producer id state", format: formatVersion)
        guard document.nextID >= 1 else { throw BrokerError(.metadataCorrupt, "\(path): next_id \(document.nextID) is below 1") }
        var state = State()
        state.nextID = document.nextID
        for entry in document.names {
            guard entry.id >= 1, entry.id & ProducerIDSpace.counterMask < document.nextID, entry.epoch >= 0, state.byName[entry.name] == nil,
                  state.epochs[entry.id] == nil
            else {
                throw BrokerError(.metadataCorrupt, "\(path): bad or repeated entry for name \"\(entry.name)\" (id \(entry.id), epoch \(entry.epoch))")
            }
            state.byName[entry.name] = Identity(id: entry.id, epoch: entry.epoch)
            state.epochs[entry.id] = entry.epoch
        }
        return state
    }
}

/// Which producer ids a broker hands out: on a single node 1, 2, 3...; in a cluster the
/// broker id in bits 40-62 above a 40-bit counter, so brokers never collide (2^40 ids per
/// broker; broker ids below 2^23). Ids stay positive (bit 63 clear): -1 means "none".
public struct ProducerIDSpace: Sendable, Equatable {
    /// The broker whose range this is; 0 on a single node (whose ids are the counter alone).
    public let brokerID: UInt32
    static let counterBits: Int64 = 40
    static let counterMask: Int64 = (1 << counterBits) - 1
    /// Broker ids whose range fits below bit 63.
    public static let maxBrokerID: UInt32 = (1 << 23) - 1

    public static let singleNode = ProducerIDSpace(brokerID: 0)

    public init(brokerID: UInt32) {
        precondition(brokerID <= Self.maxBrokerID, "broker id \(brokerID) leaves no room for producer ids")
        self.brokerID = brokerID
    }

    func id(counter: Int64) -> Int64 {
        precondition(counter >= 1 && counter <= Self.counterMask, "producer id counter \(counter) out of range")
        return Int64(brokerID) << Self.counterBits | counter
    }

    /// Whether `id` is from this range (a single node owns every id).
    func owns(_ id: Int64) -> Bool {
        brokerID == 0 || id >> Self.counterBits == Int64(brokerID)
    }

    func counter(of id: Int64) -> Int64 { brokerID == 0 ? id : id & Self.counterMask }
}
