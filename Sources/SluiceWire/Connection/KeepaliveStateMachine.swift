/// Keepalive PINGs: every `interval` a PING goes out; if its ACK is not back within
/// `timeout`, the peer is considered dead and the connection closes. One PING outstanding
/// at a time. A plain struct: the handler owns the timers and acts on the returned actions.
struct KeepaliveStateMachine {
    enum State: Equatable {
        case idle
        case awaitingAck(payload: UInt64)
    }

    enum OnTimer: Equatable {
        /// Send PING with this payload and arm the ACK timeout.
        case sendPing(payload: UInt64)
        /// A PING is already outstanding; nothing to do.
        case none
    }

    enum OnTimeout: Equatable {
        case closeConnection
        case none
    }

    private(set) var state: State = .idle
    private var nextPayload: UInt64

    init(firstPayload: UInt64 = 0x736c_7569_6365_0000) {  // "sluice\0\0"
        self.nextPayload = firstPayload
    }

    mutating func intervalElapsed() -> OnTimer {
        guard case .idle = state else { return .none }
        nextPayload &+= 1
        state = .awaitingAck(payload: nextPayload)
        return .sendPing(payload: nextPayload)
    }

    /// nghttp2 does not expose the ACK payload through our callback; any ACK counts.
    mutating func ackReceived() {
        state = .idle
    }

    mutating func timeoutElapsed() -> OnTimeout {
        guard case .awaitingAck = state else { return .none }
        return .closeConnection
    }
}
