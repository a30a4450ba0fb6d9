public import NIOCore

/// What a broker says about itself in etcd, the value of `/sluice/<cluster>/brokers/<id>`.
///
/// On the wire: one UTF-8 JSON object, keys sorted, no whitespace, for example
/// `{"address":"10.0.0.5:9092","id":3,"rack":"eu-1a"}`:
///
/// - `id`: number, the broker id (the same as the key's last segment);
/// - `address`: string, `host:port` (`[v6]:port`) where clients and other brokers reach it;
/// - `rack`: string, its failure domain; the field is absent when it has none.
///
/// Readers ignore fields they do not know, so later versions may add some. JSON rather
/// than protobuf so that `etcdctl get --prefix /sluice/` shows an operator what it means.
public struct BrokerInfo: Codable, Sendable, Hashable, CustomStringConvertible {
    public var id: UInt32
    public var address: String
    public var rack: String?

    public init(id: UInt32, address: String, rack: String? = nil) {
        self.id = id
        self.address = address
        self.rack = rack
    }

    /// The value bytes described above.
    public func encoded() -> ByteBuffer {
        MetadataJSON.encode(self)
    }

    /// The info in a key's value; nil when it is not such a JSON object.
    public init?(decoding value: ByteBuffer) {
        guard let info = MetadataJSON.decode(BrokerInfo.self, from: value) else { return nil }
        self = info
    }

    public var description: String {
        "broker \(id) at \(address)" + (rack.map { " (rack \($0))" } ?? "")
    }
}
