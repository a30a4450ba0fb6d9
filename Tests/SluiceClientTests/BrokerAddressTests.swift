import SluiceClient
import SluiceWire
import Testing

@Suite("BrokerAddress defaults")
struct BrokerAddressTests {
    @Test("connections from the Sluice client ping when idle, so a silent broker is noticed")
    func keepaliveIsOn() {
        let address = BrokerAddress(host: "127.0.0.1", port: 9092)
        #expect(address.transport.keepaliveInterval == BrokerAddress.keepaliveInterval)
        #expect(address.transport.keepaliveInterval != nil)
    }
}
