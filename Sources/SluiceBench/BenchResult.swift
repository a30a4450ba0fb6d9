import SluiceAPI

/// What a run measured; `--json` prints it as one object (latencies in microseconds).
public struct BenchResult: Sendable, Codable {
    public var mode: String
    public var topic: String
    public var producers: Int
    public var consumers: Int
    public var messageSize: Int
    public var acks: String
    public var profile: String
    /// Offered messages per second (all producers); nil when unthrottled.
    public var rate: Double?
    /// The measured window: from the end of the warm-up to the last answer (produce,
    /// end-to-end; with acks none, to the log end reaching what was sent) or the last record
    /// read (consume).
    public var seconds = 0.0
    public var sent = 0
    public var acked = 0
    public var failed = 0
    /// Messages in the measured window and their rate; MB are 10^6 bytes of values.
    public var measuredMessages = 0
    public var messagesPerSecond = 0.0
    public var megabytesPerSecond = 0.0
    public var consumed: Int?
    public var consumedPerSecond: Double?
    public var consumedMegabytesPerSecond: Double?
    /// Consume mode: records between log start and high watermark when the run began.
    public var backlog: Int?
    /// End-to-end mode: acknowledged messages no subscriber received, messages received
    /// more than once, and records of other runs that were skipped.
    public var missing: Int?
    public var duplicates: Int?
    public var foreign: Int?
    /// Produce call (due time under --rate) to the broker's answer.
    public var ackLatency: LatencySummary?
    /// Produce call (due time under --rate) to delivery at a subscriber.
    public var endToEndLatency: LatencySummary?
    /// How the end of a produce run was found: "answers" (the last acknowledgement) or,
    /// with acks none, "log end" (the topic's high watermarks reached what was sent).
    public var completion = "answers"
    public var errors: [String] = []
    public var timeLimitReached = false
    /// No failed send, nothing missing or repeated, within the time limit.
    public var passed = true

    public init(settings: BenchSettings) {
        mode = settings.mode.rawValue
        topic = settings.topic
        producers = settings.producers
        consumers = settings.consumers
        messageSize = settings.messageSize
        acks = Self.name(of: settings.acks)
        profile = (settings.profile ?? .default).rawValue
        rate = settings.rate
    }

    static func name(of acks: Acks) -> String {
        switch acks {
        case .none: "none"
        case .leader: "leader"
        case .durable: "durable"
        default: "all"
        }
    }

    /// The latency the summary line leads with: end to end when measured, else produce-to-ack.
    public var headlineLatency: LatencySummary? { endToEndLatency ?? ackLatency }
}

/// A produce run with acks none whose records never all reached the log before the time limit.
struct BenchLogEndTimeout: Error, CustomStringConvertible {
    let expected: Int
    var description: String { "the log end did not reach the \(expected) records sent before the time limit" }
}
