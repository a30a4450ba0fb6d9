/// Every size, count and time limit of the transport, with its default and why it is that
/// value: the one place they are stated (the way TigerBeetle keeps `constants.zig`).
/// `GRPCServerConfiguration`, `GRPCClientConfiguration` and `HTTP2SessionSettings` take
/// their defaults from here, `sluice serve`'s flags their defaults and reasons, and
/// docs/limits.md shows this table (`LimitsDocumentTests` checks it, row by row).
///
/// Each limit is `(value, why)`; read the value as `WireLimits.defaults.NAME.value`. The
/// limits are stored properties of one value so that a test can list them all by name.
public struct WireLimits: Sendable {
    public static let defaults = WireLimits()
    private init() {}

    // MARK: Streams and messages

    public let maxConcurrentStreams = (value: 100, why: "RFC 9113 §6.5.2 recommends no fewer; a producer or subscriber needs one stream per call, and each stream's memory is bounded by the buffers below")
    public let maxReceiveMessageBytes = (value: 4 * 1024 * 1024, why: "the receive limit every stock gRPC stack defaults to, so a broker and its polyglot clients agree; a topic's default max.message.bytes (1 MiB) fits with room")
    public let maxHeaderListBytes = (value: 16 * 1024, why: "a gRPC call's headers take a few hundred bytes; this leaves room for metadata while a header flood costs little per stream")
    /// Bytes of a gRPC status message (`grpc-message`) once percent-encoded, marker included.
    public let maxStatusMessageBytes = (value: 1024, why: "a status must fit in a header block every peer accepts (stock grpcio refuses metadata over about 8 KiB); longer messages are cut, marked \"...\"")
    public let eagerReserveBytes = (value: 1024 * 1024, why: "a partial message's buffer grows at most this far ahead of the bytes that arrived: its length prefix is the peer's word, not yet a promise")

    // MARK: Flow control and buffers

    public let initialWindowBytes = (value: 1024 * 1024, why: "a producer keeps a batch of the default max.message.bytes in flight per stream without waiting a round trip for window")
    public let connectionWindowBytes = (value: 8 * 1024 * 1024, why: "several streams of a connection can run at full window at once, while one connection's unread input stays bounded")
    public let maxFrameBytes = (value: 16 * 1024, why: "HTTP/2's initial SETTINGS_MAX_FRAME_SIZE, which every peer accepts; small frames keep a latency-sensitive message from queueing behind a large one")
    public let allowedFrameBytes = (value: 16_384...16_777_215, why: "the SETTINGS_MAX_FRAME_SIZE values RFC 9113 §6.5.2 allows")
    public let inboundBufferBytes = (value: 256 * 1024, why: "decoded requests a slow handler may leave unread per stream before the stream's window stops reopening, so a slow handler costs at most this plus the window")
    public let sendQueueBytes = (value: 1024 * 1024, why: "responses of a connection waiting for a closed window or a slow socket; beyond it writers suspend, so a peer that does not read costs at most this")
    public let outputChunkBytes = (value: 64 * 1024, why: "frames serialised per pass before socket writability is checked again, so output never piles up in memory ahead of the socket")

    // MARK: Timers

    public let sendStallTimeout = (value: Duration.seconds(300), why: "a peer whose writers made no progress for five minutes stopped reading; long enough that a paused subscriber is not cut off")
    public let prefaceTimeout = (value: Duration.seconds(10), why: "a real client sends its preface at once; this bounds how long a silent socket holds a connection")
    public let connectTimeout = (value: Duration.seconds(10), why: "a client's TCP connect plus the server's SETTINGS: a reachable broker answers in milliseconds, a loaded one within this")
    public let keepaliveInterval = (value: Duration?.some(.seconds(120)), why: "the server finds a vanished client (a NAT that forgot the mapping, a host switched off) within minutes; 0 or nil turns it off")
    public let clientKeepaliveInterval = (value: Duration?.none, why: "gRPC servers penalise frequent pings from clients (grpc-go allows one per 5 minutes by default), so a client sends none unless asked")
    public let keepaliveTimeout = (value: Duration.seconds(20), why: "gRPC's default keepalive timeout: a PING not answered by then means the connection is dead")
    public let shutdownGracePeriod = (value: Duration.seconds(10), why: "streams never end by themselves; this lets answers in flight leave after GOAWAY and keeps a stop well inside systemd's 90 s")
    public let shutdownUnaryLimit = (value: Duration.seconds(30), why: "unary calls are short and are let finish; the bound makes every shutdown end")

    // MARK: HTTP/2 defences (nghttp2 options)

    public let maxOutboundAcks = (value: 1000, why: "nghttp2's default: PING/SETTINGS acks queued for a peer that floods them without reading; the connection is dropped beyond it")
    public let resetRateBurst = (value: 1000, why: "nghttp2's default burst of RST_STREAMs a peer may send (rapid reset, CVE-2023-44487) before GOAWAY")
    public let resetRatePerSecond = (value: 33, why: "nghttp2's default refill of that burst per second")
    public let maxContinuations = (value: 8, why: "nghttp2's default: CONTINUATION frames after one HEADERS (CONTINUATION floods)")
    public let maxSettingsEntries = (value: 32, why: "nghttp2's default: entries in one received SETTINGS frame (HTTP/2 defines seven)")
    public let hpackEncoderTableBytes = (value: 4096, why: "HTTP/2's default SETTINGS_HEADER_TABLE_SIZE: what each connection keeps for compressing the headers it sends")
    public let streamCapHeadroom = (value: 100, why: "refused streams above the cap a peer may have open before nghttp2's own check would end the connection; also how many refusals one pass of input may queue (docs/wire.md, \"Stream cap\")")
}
