import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceService
import SluiceStorage
import SluiceWire
import Testing

/// What each `--profile` resolves to, on the broker and in the client, and that a
/// setting given on its own wins over the profile. Profiles never touch durability.
@Suite(.timeLimit(.minutes(1))) struct ProfileTests {
    func configuration() -> BrokerServer.Configuration {
        BrokerServer.Configuration(dataDirectory: "/unused", transport: GRPCServerConfiguration())
    }

    @Test func withoutAProfileTheBrokerKeepsItsDefaults() {
        var configured = configuration()
        configured.apply(profile: nil)
        let defaults = configuration()
        #expect(configured.storage.groupCommitWindow == .zero)
        #expect(configured.transport.initialWindowBytes == defaults.transport.initialWindowBytes)
        #expect(configured.transport.connectionWindowBytes == defaults.transport.connectionWindowBytes)
        #expect(configured.transport.maxFrameBytes == defaults.transport.maxFrameBytes)
        #expect(configured.transport.inboundBufferBytes == defaults.transport.inboundBufferBytes)
        #expect(configured.subscribeLimits.defaultMaxBytes == defaults.subscribeLimits.defaultMaxBytes)
    }

    @Test func theLatencyProfileOnTheBroker() {
        var configured = configuration()
        configured.apply(profile: .latency)
        #expect(configured.storage.groupCommitWindow == .zero)
        #expect(configured.transport.initialWindowBytes == 1 << 20)
        #expect(configured.transport.connectionWindowBytes == 8 << 20)
        #expect(configured.transport.maxFrameBytes == 16 << 10)
        #expect(configured.transport.inboundBufferBytes == 256 << 10)
        #expect(configured.subscribeLimits.defaultMaxBytes == 256 << 10)
    }

    @Test func theThroughputProfileOnTheBroker() {
        var configured = configuration()
        configured.apply(profile: .throughput)
        #expect(configured.storage.groupCommitWindow == .milliseconds(2))
        #expect(configured.transport.initialWindowBytes == 4 << 20)
        #expect(configured.transport.connectionWindowBytes == 32 << 20)
        #expect(configured.transport.maxFrameBytes == 64 << 10)
        #expect(configured.transport.inboundBufferBytes == 1 << 20)
        #expect(configured.subscribeLimits.defaultMaxBytes == (4 << 20) - (64 << 10))
    }

    @Test func explicitBrokerSettingsWinOverTheProfile() {
        var overrides = BrokerTuning()
        overrides.groupCommitWindow = .milliseconds(7)
        overrides.maxFrameBytes = 32 << 10
        var configured = configuration()
        configured.apply(profile: .throughput, overrides: overrides)
        #expect(configured.storage.groupCommitWindow == .milliseconds(7))
        #expect(configured.transport.maxFrameBytes == 32 << 10)
        #expect(configured.transport.initialWindowBytes == 4 << 20, "the rest stays the profile's")
        var latency = configuration()
        latency.apply(profile: .latency, overrides: overrides)
        #expect(latency.storage.groupCommitWindow == .milliseconds(7))
        var plain = configuration()
        plain.apply(profile: nil, overrides: overrides)
        #expect(plain.transport.maxFrameBytes == 32 << 10)
        #expect(plain.transport.initialWindowBytes == GRPCServerConfiguration().initialWindowBytes)
    }

    @Test(arguments: PerformanceProfile.allCases)
    func noProfileChangesDurabilityOrTheMemoryBudget(profile: PerformanceProfile) {
        for policy in [FsyncPolicy.always, .never, .interval(milliseconds: 50)] {
            var configured = configuration()
            configured.storage.fsyncPolicy = policy
            let budget = configured.produceLimits.memoryBudget
            configured.apply(profile: profile)
            #expect(configured.storage.fsyncPolicy == policy)
            #expect(configured.produceLimits.memoryBudget === budget)
        }
        let producer = ProducerConfiguration(profile: profile)
        #expect(producer.acks == ProducerConfiguration().acks)
    }

    @Test func producerProfiles() {
        let plain = ProducerConfiguration()
        #expect(plain.linger == .milliseconds(5) && plain.maxBatchBytes == 256 << 10 && plain.compression == .none)
        let latency = ProducerConfiguration(profile: .latency)
        #expect(latency.linger == .zero && latency.maxBatchBytes == 64 << 10 && latency.compression == .none)
        #expect(latency.maxBufferedBytes == 32 << 20)
        let throughput = ProducerConfiguration(profile: .throughput)
        #expect(throughput.linger == .milliseconds(20) && throughput.maxBatchBytes == 512 << 10)
        #expect(throughput.compression == .lz4 && throughput.maxBufferedBytes == 128 << 20)
        #expect(ProducerConfiguration.throughput.compression == .lz4, "the static presets are the profiles")
        var explicit = ProducerConfiguration(profile: .throughput)
        explicit.compression = .zstd
        explicit.linger = .milliseconds(1)
        #expect(explicit.compression == .zstd && explicit.linger == .milliseconds(1) && explicit.maxBatchBytes == 512 << 10)
    }

    @Test func clientTransportProfiles() {
        let plain = BrokerAddress(host: "127.0.0.1", port: 1).transport
        let latency = BrokerAddress(host: "127.0.0.1", port: 1, profile: .latency).transport
        #expect(latency.initialWindowBytes == plain.initialWindowBytes && latency.maxFrameBytes == plain.maxFrameBytes)
        #expect(latency.connectionWindowBytes == plain.connectionWindowBytes && latency.inboundBufferBytes == plain.inboundBufferBytes)
        var throughput = BrokerAddress(host: "127.0.0.1", port: 1, profile: .throughput)
        #expect(throughput.transport.initialWindowBytes == 4 << 20 && throughput.transport.connectionWindowBytes == 32 << 20)
        #expect(throughput.transport.maxFrameBytes == 64 << 10 && throughput.transport.inboundBufferBytes == 1 << 20)
        throughput.transport.maxFrameBytes = 16 << 10
        #expect(throughput.transport.maxFrameBytes == 16 << 10, "an explicit setting wins")
    }

    @Test func consumerProfiles() {
        let plain = ConsumerConfiguration()
        #expect(plain.minBytes == 0 && plain.maxWait == .zero && plain.maxBytes == 0)
        let latency = ConsumerConfiguration(profile: .latency)
        #expect(latency.minBytes == 0 && latency.maxWait == .zero && latency.maxBytes == 0)
        let throughput = ConsumerConfiguration(profile: .throughput)
        #expect(throughput.minBytes == 64 << 10 && throughput.maxWait == .milliseconds(10))
        #expect(throughput.maxBytes == (4 << 20) - (64 << 10))
    }
}
