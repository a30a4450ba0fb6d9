public import SluiceAPI
import SluiceWire

extension BrokerAddress {
    /// This address with the client side of `profile`'s HTTP/2 settings (docs/profiles.md):
    /// what the client advertises for the broker's responses and pushes. Set
    /// `transport` fields afterwards to override single settings.
    ///
    /// | setting               | default | latency | throughput |
    /// |-----------------------|---------|---------|------------|
    /// | initialWindowBytes    | 1 MiB   | 1 MiB   | 4 MiB      |
    /// | connectionWindowBytes | 8 MiB   | 8 MiB   | 32 MiB     |
    /// | maxFrameBytes         | 16 KiB  | 16 KiB  | 64 KiB     |
    /// | inboundBufferBytes    | 256 KiB | 256 KiB | 1 MiB      |
    public init(host: String, port: Int, profile: PerformanceProfile) {
        self.init(host: host, port: port)
        switch profile {
        case .latency:
            transport.initialWindowBytes = 1024 * 1024
            transport.connectionWindowBytes = 8 * 1024 * 1024
            transport.maxFrameBytes = 16 * 1024
            transport.inboundBufferBytes = 256 * 1024
        case .throughput:
            transport.initialWindowBytes = 4 * 1024 * 1024
            transport.connectionWindowBytes = 32 * 1024 * 1024
            transport.maxFrameBytes = 64 * 1024
            transport.inboundBufferBytes = 1024 * 1024
        }
    }
}
